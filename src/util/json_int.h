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

}  // namespace clm
