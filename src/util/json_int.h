// Integers read from JSON. nlohmann's get<int64_t>() converts a float such as 1e300 with undefined
// behaviour (UBSan in fuzz/fuzz_config and fuzz/fuzz_tokenizer_json) and narrows 2^32 + 1 to a
// 32-bit 1 without a word. json_int takes integers in T's range and floats with an
// integral value in range (64.0, as some writers emit); nullopt for anything else.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace clm {

template <class T> std::optional<T> json_int(const nlohmann::json& j) {
  static_assert(std::is_signed_v<T> && std::is_integral_v<T>);
  using L = std::numeric_limits<T>;
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= uint64_t(L::max())) return T(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= int64_t(L::min()) && v <= int64_t(L::max())) return T(v);
  } else if (j.is_number_float()) {
    const double v = j.get<double>(), lim = std::ldexp(1.0, L::digits);  // 2^31 or 2^63, exact
    if (v == std::floor(v) && v >= -lim && v < lim) return T(v);
  }
  return std::nullopt;
}

// A field of a JSON object read as T, with a message naming `where` and the field:
// "'run/trainer_state.json': step must be an integer, not a string" rather than nlohmann's
// "type must be number, but is string". A missing field is an error too.
template <class T> T json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  auto fail = [&](const std::string& why) { return std::invalid_argument(where + ": " + key + " " + why); };
  if (!j.is_object() || !j.contains(key)) throw fail("is missing");
  const nlohmann::json& v = j.at(key);
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.get<bool>();
    throw fail(std::string("must be true or false, not ") + v.type_name());
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    if (auto i = json_int<int64_t>(v); i && *i >= 0 && uint64_t(*i) <= std::numeric_limits<T>::max()) return T(*i);
    if (v.is_number_unsigned() && v.get<uint64_t>() <= std::numeric_limits<T>::max()) return T(v.get<uint64_t>());
    throw fail(std::string("must be a non-negative integer in range, not ") + (v.is_number() ? "this number" : v.type_name()));
  } else if constexpr (std::is_integral_v<T>) {
    if (auto i = json_int<T>(v)) return *i;
    throw fail(std::string("must be an integer in range, not ") + (v.is_number() ? "this number" : v.type_name()));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_number()) return v.get<T>();
    throw fail(std::string("must be a number, not ") + v.type_name());
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.get<std::string>();
    throw fail(std::string("must be a string, not ") + v.type_name());
  } else {
    static_assert(sizeof(T) == 0, "json_field: bool, integers, floating point or std::string");
  }
}

}  // namespace clm
