// PanelMatrix: a weight matrix laid out for batch-1 matrix-vector products (decoding).
// Rows are grouped in panels of four; a panel is stored as 8-column chunks, each chunk holding
// the four rows' 8 values one row after another (32 values: one 64-byte line in bf16, two in
// f32). A thread then streams one contiguous range instead of four interleaved row streams,
// which the hardware prefetcher follows much better (docs/RESULTS.md: +30-40% read bandwidth for
// bf16 on 2 cores); the kernels also prefetch it 4 KB ahead (prefetch.h). Rows and columns are padded
// with zeros to multiples of 4 and 8.
// Registered as the weight formats "f32" and "bf16" (kernels/format.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "kernels/format.h"
#include "tensor/tensor.h"

namespace clm::kernels {

class PanelMatrix final : public WeightFormat {
 public:
  enum class Type : uint8_t { f32, bf16 };
  // Products of up to kPanelBatch rows go panel by panel, four vectors at a time (decode batches);
  // up to kPanelGemm rows (prompts) through panel_gemm; more through BLAS on the dense original
  // when it was kept (f32), else panel_gemm too. panel_gemm beats OpenBLAS's sgemm on short
  // prompts (64 rows of the 110M shape, 2 threads: 1.12x on an AMD EPYC; bf16 panels 1.4x f32 BLAS
  // on a Xeon) and is level with it near 512 rows.
  static constexpr int64_t kPanelBatch = 32, kPanelGemm = 256;
  PanelMatrix() = default;
  // Packs a row-major [rows, cols] matrix of f32, bf16 or f16 (a checkpoint's own dtype); a bf16
  // panel rounds f32 to nearest even and copies bf16 as is. keep_dense (f32 sources): keep the
  // row-major original (shared, not copied) for batched products.
  explicit PanelMatrix(const Tensor& w, Type type, bool keep_dense = false);
  PanelMatrix(const float* w, int64_t rows, int64_t cols, Type type)
      : PanelMatrix(Tensor::external(const_cast<float*>(w), {rows, cols}, DType::f32,
                                     std::shared_ptr<const void>(w, [](const void*) {})),  // borrowed, not owned
                    type) {}

  // out[rows] = W x, x[cols]; multithreaded over panels (OpenMP). No allocation when cols % 8 == 0.
  void matvec(const float* x, float* out) const;
  // n == 1: matvec; n <= kPanelBatch: each panel times four vectors at a time (panel4x4); up to
  // kPanelGemm, or more without a dense original: panel_gemm over cache-sized blocks of vectors;
  // else BLAS on the dense original.
  void matmul(const float* x, int64_t n, float* y) const override;
  void dequantize(float* out) const override;
  const std::string& name() const override;

  Type type() const { return type_; }
  size_t bytes() const override { return bytes_; }  // read per product
  float at(int64_t r, int64_t c) const;  // unpacked element (tests)

 private:
  void unpack_rows(int64_t r0, int64_t n, float* out) const;  // rows r0..r0+n-1, row-major
  size_t offset(int64_t r, int64_t c) const { return size_t(((r / 4) * (pcols_ / 8) + c / 8) * 32 + (r % 4) * 8 + c % 8); }
  Type type_ = Type::f32;
  int64_t prows_ = 0, pcols_ = 0;
  // 64-byte aligned, so that each bf16 chunk is exactly one cache line
  std::unique_ptr<void, decltype(&std::free)> data_{nullptr, &std::free};
  size_t bytes_ = 0;
  Tensor dense_;
  const float* f32() const { return static_cast<const float*>(data_.get()); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data_.get()); }
};

}  // namespace clm::kernels
