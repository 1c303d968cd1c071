// Per-variant options. Each slot variant declares the options it takes (name, default, help, and a
// check); a model config carries one JSON object per slot (config.json "attention_opt", ...; on the
// command line --attention-opt key=value). A new hyperparameter is one line in its variant's
// registration, not a ModelConfig field, a CLI flag and a validate() clause.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace clm::nn {

struct OptionSpec {
  std::string name;
  nlohmann::json default_value;  // its JSON type is the option's type (number, integer, bool, string)
  std::string help;
  // Returns an error ("" when fine), e.g. a range check. Optional.
  std::function<std::string(const nlohmann::json&)> check = nullptr;
};

// A variant's resolved options: every declared name has a value (given or default).
class Options {
 public:
  Options() = default;
  // Checks `given` against `specs` (unknown names, types, each check) and fills the defaults.
  // Errors name `what` ("attention 'tensorcoder'") and the option.
  Options(const nlohmann::json& given, const std::vector<OptionSpec>& specs, const std::string& what);
  double num(const std::string& k) const { return v_.at(k).get<double>(); }
  int64_t integer(const std::string& k) const { return v_.at(k).get<int64_t>(); }
  bool flag(const std::string& k) const { return v_.at(k).get<bool>(); }
  std::string str(const std::string& k) const { return v_.at(k).get<std::string>(); }
  const nlohmann::json& json() const { return v_; }

 private:
  nlohmann::json v_ = nlohmann::json::object();
};

// "key=value" from the command line into `obj`: value parsed as JSON when it is (1e-3, true, 4),
// else kept as a string.
void set_option(nlohmann::json& obj, const std::string& key_eq_value, const std::string& flag);

std::string describe_options(const std::vector<OptionSpec>& specs);  // for --help and errors

// A check for a string option: one of `names` ("must be a | b | c" otherwise).
std::function<std::string(const nlohmann::json&)> one_of(std::vector<std::string> names);

}  // namespace clm::nn
