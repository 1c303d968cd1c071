#include "quant/calibrate.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/fs.h"

namespace clm::quant {

const InputStats& Calibration::at(const std::string& linear) const {
  auto it = inputs.find(linear);
  if (it == inputs.end()) throw std::invalid_argument("calibration has no statistics for '" + linear + "' (made for another model?)");
  return it->second;
}

Calibration calibrate(LanguageModel& model, const std::vector<int32_t>& stream, int64_t windows, int64_t window,
                      const std::string& source, const std::function<void(int64_t, int64_t)>& progress) {
  if (windows <= 0 || window <= 0) throw std::invalid_argument("calibrate: need windows > 0 and a window > 0");
  if (int64_t(stream.size()) < window) throw std::invalid_argument("calibrate: the calibration text is shorter than one window");
  windows = std::min<int64_t>(windows, int64_t(stream.size()) / window);
  Calibration c;
  c.source = source;
  c.windows = windows;
  c.window = window;
  // Observers on every Linear; consecutive calls with the same input buffer form a group.
  std::vector<std::pair<std::string, nn::Linear*>> lins;
  model.linears([&](const std::string& name, nn::Linear& l) { lins.push_back({name, &l}); });
  const float* last_x = nullptr;
  int next_group = 0;
  for (auto& [name, l] : lins) {
    InputStats* st = &c.inputs[name];
    st->in = l->in();
    st->absmax.assign(size_t(st->in), 0.0f);
    l->observer = [st, &last_x, &next_group](const float* x, int64_t n, int64_t in) {
      if (st->group < 0) st->group = x == last_x ? next_group - 1 : next_group++;
      last_x = x;
      for (int64_t t = 0; t < n; ++t) {
        const float* r = x + t * in;
        float amax = 0, smax = -INFINITY;
        for (int64_t j = 0; j < in; ++j) {
          const float a = std::fabs(r[j]);
          if (!std::isfinite(r[j])) throw std::runtime_error("calibrate: non-finite activation (the model produces NaN/Inf)");
          st->absmax[size_t(j)] = std::max(st->absmax[size_t(j)], a);
          amax = std::max(amax, a);
          smax = std::max(smax, r[j]);
        }
        for (int64_t j = 0; j < in; ++j) {
          st->above_abs += std::fabs(r[j]) > 0.125f * amax;
          st->above_signed += r[j] > 0.125f * smax;
        }
        st->token_absmax_mean += amax;
      }
      st->tokens += n;
    };
  }
  struct Reset {  // observers go away whatever happens
    std::vector<std::pair<std::string, nn::Linear*>>& l;
    ~Reset() {
      for (auto& p : l) p.second->observer = nullptr;
    }
  } reset{lins};
  InferState s = model.make_state(window);
  for (int64_t w = 0; w < windows; ++w) {
    s.reset();
    last_x = nullptr;
    model.infer(s, std::span<const int32_t>(stream.data() + w * window, size_t(window)));
    if (progress) progress(w + 1, windows);
  }
  for (auto& [name, st] : c.inputs)
    if (st.tokens) st.token_absmax_mean /= double(st.tokens);
  return c;
}

void Calibration::save(const std::string& path) const {
  nlohmann::json j;
  j["format"] = "clm-calibration-1";
  j["source"] = source;
  j["windows"] = windows;
  j["window"] = window;
  for (auto& [name, s] : inputs)
    j["inputs"][name] = {{"group", s.group}, {"in", s.in}, {"tokens", s.tokens}, {"token_absmax_mean", s.token_absmax_mean},
                         {"above_abs", s.above_abs}, {"above_signed", s.above_signed}, {"absmax", s.absmax}};
  write_file_atomic(path, j.dump());
}

Calibration Calibration::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, uint64_t(1) << 30));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "': not a calibration file (" + std::string(e.what()) + ")");
  }
  if (!j.is_object() || j.value("format", "") != "clm-calibration-1" || !j.contains("inputs") || !j["inputs"].is_object())
    throw std::runtime_error("'" + path + "': not a calibration file (no format \"clm-calibration-1\" with inputs)");
  Calibration c;
  try {
    c.source = j.value("source", "");
    c.windows = j.at("windows").get<int64_t>();
    c.window = j.at("window").get<int64_t>();
    for (auto& [name, v] : j["inputs"].items()) {
      InputStats s;
      s.group = v.at("group").get<int>();
      s.in = v.at("in").get<int64_t>();
      s.tokens = v.at("tokens").get<int64_t>();
      s.token_absmax_mean = v.at("token_absmax_mean").get<double>();
      s.above_abs = v.at("above_abs").get<int64_t>();
      s.above_signed = v.at("above_signed").get<int64_t>();
      s.absmax = v.at("absmax").get<std::vector<float>>();
      if (s.in <= 0 || int64_t(s.absmax.size()) != s.in || s.tokens <= 0)
        throw std::runtime_error("'" + name + "': absmax has " + std::to_string(s.absmax.size()) + " channels for in = " + std::to_string(s.in));
      for (float a : s.absmax)
        if (!std::isfinite(a) || a < 0) throw std::runtime_error("'" + name + "': non-finite or negative absmax");
      c.inputs[name] = std::move(s);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "': bad calibration file: " + std::string(e.what()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + path + "': bad calibration file: " + std::string(e.what()));
  }
  return c;
}

}  // namespace clm::quant
