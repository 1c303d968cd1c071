// NVFP4 W4A4 on integer kernels (vec().dot4_w4a8 with blocks of 16): weights stored as E2M1 codes, two per byte, with
// an unsigned-E4M3 scale per 16 and an FP32 tensor scale; activations quantized per call the same
// way (tensor scale over the call's tokens) and multiplied as doubled E2M1 int8 values. With a
// channel order and KE > 0 it is ARCQuant: x is permuted, the residual of its last KE channels is
// quantized again (same tensor scale) and appended, and the weights carry the matching KE columns.
// The per-element arithmetic is the fake-quant path's; the two agree up to summation order.
#pragma once
#include <memory>
#include <vector>

#include "kernels/format.h"
#include "quant/quant_format.h"

namespace clm::quant {

class Nvfp4Format : public QuantFormat {
 public:
  // w [rows, K] f32 in the original channel order; perm (empty = identity) the channel order;
  // w_amax the weight tensor scale's amax (max|W|, or the official code's signed max).
  Nvfp4Format(const Tensor& w, std::vector<int64_t> perm, int64_t ke, float w_amax, bool bf16_residual,
              std::shared_ptr<LayerReport> rep, std::string name);
  void matmul(const float* x, int64_t n, float* y) const override;
  void dequantize(float* out) const override;  // [rows, K + KE], permuted order
  size_t bytes() const override { return codes_.size() + scales_.size() + 4; }
  bool store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const override;
  static std::unique_ptr<kernels::WeightFormat> restore(const nlohmann::json& meta,
                                                        const std::function<const Tensor&(const std::string&)>& tensor);

 private:
  Nvfp4Format() = default;
  int64_t ke_ = 0, ka_ = 0, kp_ = 0;  // residual channels, K + KE, padded to 32
  std::vector<int64_t> perm_;
  std::vector<uint8_t> codes_;  // [rows, kp_ / 2] in the four-row layout (kernels/cpu/quads.h)
  std::vector<uint8_t> scales_;  // [rows, kp_ / 16]: unsigned E4M3 block scales, decoded per group of rows as the kernels go
  float st_w_ = 1;
  bool bf16_res_ = false;
};

}  // namespace clm::quant
