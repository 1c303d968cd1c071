// Quantization methods: each a named entry with its options that turns the Linears of a model into
// quantized weight formats. The formats made here are the fake-quant path -- weights stored
// quantized-then-dequantized in f32, activations quantized and dequantized in f32 on every call --
// the accuracy reference that the integer kernels are checked against.
//
//   rtn         round to nearest: weights (w=...) and optionally activations (a=...), any format
//   smoothquant s_j = max|X_j|^α / max|W_j|^(1−α) moved from activations into weights, W8A8
//   crossquant  Δ_ij = t_i^α · c_j^(1−α) / 127 for activations (c static or dynamic), INT8 weights
//   arcquant    NVFP4 W4A4, channels ordered by absmax, the salient channels' residual appended (K+KE)
//
// Linears that read the same input (q/k/v, gate/up; found by calibration) share what depends on the
// input: SmoothQuant's scales (folded into the norm that produces the input where there is one),
// ARCQuant's order and KE. The output head stays in high precision unless head=true.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/format.h"
#include "models/lm.h"
#include "nn/options.h"
#include "quant/calibrate.h"
#include "quant/numfmt.h"
#include "quant/quant_format.h"

namespace clm::quant {

// A fake-quant weight format: dequantized weights W' [rows, k_eff] and an activation transform
// x [n, in] -> x' [n, k_eff] (scaling, permutation, quantize-dequantize, augmentation).
class FakeQuantFormat : public QuantFormat {
 public:
  using ActFn = std::function<void(const float* x, int64_t n, float* xq, LayerReport& rep)>;
  FakeQuantFormat(std::string name, Tensor w_eff, ActFn act, std::shared_ptr<LayerReport> rep, double w_bits);
  void matmul(const float* x, int64_t n, float* y) const override;
  void dequantize(float* out) const override;  // W' (k_eff columns)
  size_t bytes() const override { return size_t(double(rows_ * k_eff_) * w_bits_ / 8); }

 private:
  Tensor w_;
  int64_t k_eff_;
  ActFn act_;
  double w_bits_;
};

// What a method may do to a group's shared input beyond its own formats.
struct GroupInput {
  bool norm_output = false;  // in: the input is a norm's output that only this group reads
  std::vector<float> fold;   // out: divide the input by this per channel (folded into that norm)
};

struct QuantMethod {
  std::string name, about;
  std::vector<nn::OptionSpec> options;
  bool needs_calibration = false;
  // One group of Linears sharing an input: their weights [out_i, in] and the input's statistics
  // (null without calibration). Returns one format per weight.
  std::function<std::vector<std::shared_ptr<kernels::WeightFormat>>(
      const std::vector<std::string>& names, const std::vector<Tensor>& weights, const InputStats* stats,
      const nn::Options& opt, std::vector<std::shared_ptr<LayerReport>>& reports, GroupInput& input)>
      make;
};

class MethodRegistry {
 public:
  static MethodRegistry& get();
  bool add(QuantMethod m);
  const QuantMethod& at(const std::string& name) const;  // throws naming the known methods
  std::string describe() const;
  std::string names() const;  // "rtn, smoothquant, ..."

 private:
  std::vector<QuantMethod> methods_;
};

struct QuantResult {
  std::string method;
  nlohmann::json options;
  std::vector<std::shared_ptr<LayerReport>> layers;
  double avg_w_bits = 0, avg_a_bits = 0;  // weighted by each Linear's weight elements / MACs
  double kernel() const;                   // over every quantized activation element
};

// Quantizes the model's Linears in place (Linear::packed); `calib` may be null for methods that
// need none. opts: the method's options as given (unknown keys, types and ranges are errors).
QuantResult quantize_model(LanguageModel& model, const std::string& method, const nlohmann::json& opts,
                           const Calibration* calib);

}  // namespace clm::quant
