// W8A8 on integer kernels: weights INT8 per output channel, activations INT8 per token, int32 dot
// products (vec().dot4_i8: AVX2 maddubs, AVX-512BW, AVX-512 VNNI), one float scale per row and per
// token. The activation rule covers the methods that share this GEMM:
//   per-token (rtn, smoothquant): q = round(x'_j / (max_j |x'_j| / 127)), x' = x / s (s: smoothing, or 1)
//   cross (crossquant):           q = round(x_j / (t^α/127 · cw_j)), t = max_j |x_j|, cw = c^(1−α)
// The arithmetic per element is the fake-quant path's, so the two agree up to summation order.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/format.h"
#include "quant/quant_format.h"

namespace clm::quant {

class Int8Format : public QuantFormat {
 public:
  struct Act {
    std::vector<float> smooth;  // per-token rule: x / smooth[j] first (empty: none)
    bool cross = false;         // the cross rule
    double alpha = 1;
    std::vector<float> cw;      // cross rule: c_j^(1−α)
  };
  // w [rows, cols]: the weights with any column scaling already folded in (f32).
  Int8Format(const Tensor& w, Act act, std::shared_ptr<LayerReport> rep, std::string name);
  void matmul(const float* x, int64_t n, float* y) const override;
  void dequantize(float* out) const override;
  size_t bytes() const override { return size_t(rows_ * cols_ + rows_ * 4); }
  bool store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const override;
  static std::unique_ptr<kernels::WeightFormat> restore(const nlohmann::json& meta,
                                                        const std::function<const Tensor&(const std::string&)>& tensor);

 private:
  Int8Format() = default;
  size_t at(int64_t r, int64_t j) const;  // index of element (r, j) in q_
  int64_t kp_ = 0, rp_ = 0;     // columns padded to 64, rows to 4
  std::vector<int8_t> q_;       // [rp_, kp_], blocks of four rows interleaved in 64-column chunks (at())
  std::vector<float> sw_;       // [rows]
  Act act_;
  // Prompts on a VNNI or AVX2 CPU: the rows again in 16-row panels for the outer-product GEMM (vec.h
  // GemmI8Panels), made at the first call of kPanelTokens tokens or more; +1 byte per weight.
  static constexpr int64_t kPanelTokens = 16;
  const uint8_t* panels() const;
  mutable std::once_flag panels_once_;
  mutable std::vector<uint8_t> panels_;
};

}  // namespace clm::quant
