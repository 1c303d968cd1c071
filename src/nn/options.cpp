#include "nn/options.h"

#include <stdexcept>

namespace clm::nn {

namespace {
bool same_type(const nlohmann::json& def, const nlohmann::json& v) {
  if (def.is_number_integer()) return v.is_number_integer();
  if (def.is_number()) return v.is_number();
  return def.type() == v.type();
}
const char* type_name(const nlohmann::json& def) {
  return def.is_number_integer() ? "an integer" : def.is_number() ? "a number" : def.is_boolean() ? "true or false" : "a string";
}
}  // namespace

Options::Options(const nlohmann::json& given, const std::vector<OptionSpec>& specs, const std::string& what) {
  if (!given.is_null() && !given.is_object()) throw std::invalid_argument(what + ": options must be a JSON object");
  if (given.is_object())
    for (auto it = given.begin(); it != given.end(); ++it) {
      bool known = false;
      for (auto& s : specs) known |= s.name == it.key();
      if (!known)
        throw std::invalid_argument(what + " has no option '" + it.key() + "'" +
                                    (specs.empty() ? " (it takes none)" : " (options: " + describe_options(specs) + ")"));
    }
  for (auto& s : specs) {
    nlohmann::json v = given.is_object() && given.contains(s.name) ? given.at(s.name) : s.default_value;
    if (!same_type(s.default_value, v))
      throw std::invalid_argument(what + ": option '" + s.name + "' must be " + type_name(s.default_value) + ", got " +
                                  v.dump().substr(0, 40));
    if (s.check)
      if (std::string e = s.check(v); !e.empty())
        throw std::invalid_argument(what + ": option '" + s.name + "' = " + v.dump().substr(0, 40) + ": " + e);
    v_[s.name] = v;
  }
}

void set_option(nlohmann::json& obj, const std::string& kv, const std::string& flag) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) throw std::invalid_argument(flag + " takes key=value, got '" + kv.substr(0, 80) + "'");
  const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
  nlohmann::json parsed = nlohmann::json::parse(v, nullptr, false);
  if (!obj.is_object()) obj = nlohmann::json::object();
  obj[k] = parsed.is_discarded() || parsed.is_object() || parsed.is_array() ? nlohmann::json(v) : parsed;
}

std::function<std::string(const nlohmann::json&)> one_of(std::vector<std::string> names) {
  return [names](const nlohmann::json& v) -> std::string {
    for (auto& n : names)
      if (v.get<std::string>() == n) return "";
    std::string s;
    for (auto& n : names) s += (s.empty() ? "" : " | ") + n;
    return "must be " + s;
  };
}

std::string describe_options(const std::vector<OptionSpec>& specs) {
  std::string s;
  for (auto& o : specs) s += (s.empty() ? "" : ", ") + o.name + "=" + o.default_value.dump();
  return s;
}

}  // namespace clm::nn
