// Calibration: windows of a text run through the model's inference path with an observer on every
// Linear's input, recording what the quantization methods need. Saved as JSON so that a sweep over
// methods and options does not recompute it.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/lm.h"

namespace clm::quant {

struct InputStats {
  int group = -1;              // Linears that read the same input share a group (q/k/v, gate/up)
  int64_t in = 0;              // input channels
  std::vector<float> absmax;   // per input channel: max over tokens |x_j|
  int64_t tokens = 0;
  double token_absmax_mean = 0;  // mean over tokens of max_j |x_tj|
  // ARCQuant's ratio rule: elements above 0.125 · (the token's max), counted two ways:
  int64_t above_abs = 0;     // |x_tj| > 0.125 · max_j |x_tj|   (magnitudes: the deliberate choice)
  int64_t above_signed = 0;  // x_tj > 0.125 · max_j x_tj       (signed, as the official code)
};

struct Calibration {
  std::string source;  // what was run (file, windows, window length)
  int64_t windows = 0, window = 0;
  std::map<std::string, InputStats> inputs;  // by Linear name
  const InputStats& at(const std::string& linear) const;  // throws naming the missing Linear
  void save(const std::string& path) const;  // atomic
  static Calibration load(const std::string& path);  // checks shapes and finiteness
};

// Runs `windows` windows of `window` tokens (non-overlapping, from the start of `stream`) through
// model.infer. progress(i, n) after each window.
Calibration calibrate(LanguageModel& model, const std::vector<int32_t>& stream, int64_t windows, int64_t window,
                      const std::string& source, const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace clm::quant
