// Weight-only quantized Linears: codes and block scales in memory, f32 activations. Each product
// decodes a row of weights (code -> value through a table, times its block's scale) into an L1
// buffer and takes its dot product with every input row, so a decode step reads 4 or 8 bits per
// weight instead of 16 or 32. Every element format of numfmt.h, at every granularity:
//   int8, int4 (per tensor, row or group), e4m3, e5m2 (scaled by absmax), mxfp4, mxfp8, nvfp4.
// The values are fake_quant's exactly (tested), so this path and the fake-quant reference agree up
// to summation order.
// W4A8: 4-bit codes in blocks of 32 (mxfp4, int4/g32) with activations quantized per block of 32
// to int8 (int8/g32, as fake_quant does it) and integer dot products (vec().dot_w4a8): the design
// of llama.cpp's MXFP4 and Q4_0 products, whose activations are Q8_0.
#pragma once
#include <memory>
#include <vector>

#include "quant/numfmt.h"
#include "quant/quant_format.h"

namespace clm::quant {

class WeightOnlyFormat : public QuantFormat {
 public:
  // w [rows, cols] f32; spec's format must not be "none".
  // act: "none" (f32 activations) or int8/g32 (W4A8; w4a8_possible(spec, act, cols) must hold: any
  // number of inputs, the rows padded to a multiple of 32 in memory).
  WeightOnlyFormat(const Tensor& w, const ElemSpec& spec, std::shared_ptr<LayerReport> rep, std::string name,
                   const ElemSpec& act = ElemSpec{"none"});
  static bool w4a8_possible(const ElemSpec& w, const ElemSpec& act, int64_t cols);
  void matmul(const float* x, int64_t n, float* y) const override;
  void dequantize(float* out) const override;
  size_t bytes() const override { return codes_.size() + scale_codes_.size() + (scale_codes_.empty() ? scales_.size() * 4 : 0); }
  bool store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const override;
  static std::unique_ptr<kernels::WeightFormat> restore(const nlohmann::json& meta,
                                                        const std::function<const Tensor&(const std::string&)>& tensor);

 private:
  WeightOnlyFormat() = default;
  void init(const ElemSpec& spec, int64_t rows, int64_t cols, const ElemSpec& act);  // sizes, tables
  void matmul_w4a8(const float* x, int64_t n, float* y) const;
  void finish();  // kscales_ from scales_
  void decode_row(int64_t r, float* out) const;
  const uint8_t* row_codes(int64_t r, std::vector<uint8_t>& buf) const;  // row r's codes in row order

  ElemSpec spec_;
  int64_t block_ = 0, nb_ = 0, row_bytes_ = 0;  // elements per scale, scales per row, code bytes per row
  bool nibbles_ = false;
  bool fused_ = false;              // int8 / 4-bit codes: vec().dot_w8 / dot_w4 without a decoded row
  float lut_[256] = {};             // code -> element value (before the block scale)
  int8_t lut4_[16] = {};            // 4-bit codes -> int8 (E2M1 doubled, with kscales_ halved)
  ElemSpec act_{"none"};            // int8/g32: W4A8
  uint8_t lutu_[16] = {};           // W4A8: lut4_ + offset_, unsigned
  int offset_ = 0;
  int64_t kp_ = 0;                  // W4A8: cols rounded up to 32, the padded row length of codes_
  std::vector<float> kscales_;      // E2M1 only: the halved scales its fused kernels apply (else empty: scales_)
  std::vector<uint8_t> codes_;      // [rows, row_bytes_]; W4A8: in the four-row layout (kernels/cpu/quads.h)
  bool interleaved_ = false;
  std::vector<float> scales_;       // [rows, nb_]: each block's multiplier, decoded
  std::vector<uint8_t> scale_codes_;  // mxfp4 / mxfp8: E8M0, nvfp4: unsigned E4M3 ([rows, nb_]); empty for f32 scales
  float tensor_scale_ = 1;          // nvfp4's s_t
};

}  // namespace clm::quant
