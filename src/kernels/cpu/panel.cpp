#include "kernels/cpu/panel.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "tensor/tensor.h"

namespace clm::kernels {

PanelMatrix::PanelMatrix(const Tensor& w, Type type, bool keep_dense)
    : type_(type), prows_((w.dim(0) + 3) / 4 * 4), pcols_((w.dim(1) + 7) / 8 * 8) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  rows_ = rows, cols_ = cols;
  if (rows <= 0 || cols <= 0) throw std::invalid_argument("PanelMatrix: empty matrix");
  if (!w.is_contiguous()) throw std::invalid_argument("PanelMatrix: weights must be contiguous");
  if (keep_dense && w.dtype() == DType::f32) dense_ = w;  // shared, not copied
  bytes_ = size_t(prows_ * pcols_) * (type == Type::f32 ? 4 : 2);  // a multiple of 64
  data_.reset(std::aligned_alloc(64, bytes_));
  if (!data_) throw std::bad_alloc();
  std::memset(data_.get(), 0, bytes_);  // the padding
  float* f = static_cast<float*>(data_.get());
  uint16_t* h = static_cast<uint16_t*>(data_.get());
  // From the checkpoint's own dtype, 8 columns (one chunk row) at a time: a bf16 file packs to bf16
  // panels by copying, never passing through f32.
  const DType src = w.dtype();
  if (src != DType::f32 && src != DType::bf16 && src != DType::f16)
    throw std::invalid_argument(std::string("PanelMatrix: cannot pack ") + dtype_name(src) + " weights");
  const char* base = static_cast<const char*>(w.raw());
  const size_t es = dtype_size(src);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += 8) {
      const int64_t m = std::min<int64_t>(8, cols - c0);
      const char* in = base + size_t(r * cols + c0) * es;
      float v[8];
      if (src == DType::bf16 && type == Type::bf16) {
        std::memcpy(h + offset(r, c0), in, 2 * size_t(m));
        continue;
      }
      if (src == DType::f32) std::memcpy(v, in, 4 * size_t(m));
      else
        for (int64_t i = 0; i < m; ++i) {
          uint16_t u;
          std::memcpy(&u, in + 2 * i, 2);
          v[i] = src == DType::bf16 ? bf16_to_f32(u) : f16_to_f32(u);
        }
      if (type == Type::f32) std::memcpy(f + offset(r, c0), v, 4 * size_t(m));
      else
        for (int64_t i = 0; i < m; ++i) h[offset(r, c0) + i] = f32_to_bf16(v[i]);
    }
}

float PanelMatrix::at(int64_t r, int64_t c) const {
  return type_ == Type::f32 ? f32()[offset(r, c)] : bf16_to_f32(bf16()[offset(r, c)]);
}

void PanelMatrix::matvec(const float* x, float* out) const {
  const auto& v = vec();
  if (pcols_ != cols_) {  // the kernels read whole 8-column chunks: give them a zero-padded x
    thread_local std::vector<float> xp;
    xp.assign(size_t(pcols_), 0.0f);
    std::memcpy(xp.data(), x, sizeof(float) * size_t(cols_));
    x = xp.data();
  }
  const int64_t panels = prows_ / 4, full = rows_ / 4, step = 4 * pcols_;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < panels; ++b) {
    float tmp[4];
    float* o = b < full ? out + 4 * b : tmp;
    if (type_ == Type::f32)
      v.panel4_f32(f32() + b * step, x, pcols_, o);
    else
      v.panel4_bf16(bf16() + b * step, x, pcols_, o);
    if (o == tmp) std::copy(tmp, tmp + (rows_ - 4 * b), out + 4 * b);
  }
}


void PanelMatrix::unpack_rows(int64_t r0, int64_t n, float* out) const {
  for (int64_t r = r0; r < r0 + n; ++r) {
    float* o = out + (r - r0) * cols_;
    for (int64_t c0 = 0; c0 < cols_; c0 += 8) {
      const size_t off = offset(r, c0);
      const int64_t m = std::min<int64_t>(8, cols_ - c0);
      if (type_ == Type::f32)
        std::memcpy(o + c0, f32() + off, sizeof(float) * size_t(m));
      else
        for (int64_t i = 0; i < m; ++i) {  // bf16 -> f32: the pattern shifted into the high half
          const uint32_t u = uint32_t(bf16()[off + i]) << 16;
          std::memcpy(o + c0 + i, &u, 4);
        }
    }
  }
}

void PanelMatrix::dequantize(float* out) const { unpack_rows(0, rows_, out); }

void PanelMatrix::matmul(const float* x, int64_t n, float* y) const {
  if (n == 1) return matvec(x, y);
  if (n <= kPanelBatch) {  // a decode batch: each panel read from memory once, then n products from cache
    const auto& v = vec();
    const float* xs = x;
    thread_local std::vector<float> xp;
    if (pcols_ != cols_) {  // whole 8-column chunks: zero-padded rows
      xp.assign(size_t(n * pcols_), 0.0f);
      for (int64_t i = 0; i < n; ++i) std::memcpy(xp.data() + i * pcols_, x + i * cols_, sizeof(float) * size_t(cols_));
      xs = xp.data();
    }
    const int64_t panels = prows_ / 4, step = 4 * pcols_;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < panels; ++b) {
      const int64_t r = std::min<int64_t>(4, rows_ - 4 * b);
      float o[16];
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) {  // four vectors per pass over the panel
        if (type_ == Type::f32)
          v.panel4x4_f32(f32() + b * step, xs + i * pcols_, pcols_, pcols_, o);
        else
          v.panel4x4_bf16(bf16() + b * step, xs + i * pcols_, pcols_, pcols_, o);
        for (int k = 0; k < 4; ++k) std::copy(o + 4 * k, o + 4 * k + r, y + (i + k) * rows_ + 4 * b);
      }
      for (; i < n; ++i) {
        if (type_ == Type::f32)
          v.panel4_f32(f32() + b * step, xs + i * pcols_, pcols_, o);
        else
          v.panel4_bf16(bf16() + b * step, xs + i * pcols_, pcols_, o);
        std::copy(o, o + r, y + i * rows_ + 4 * b);
      }
    }
    return;
  }
  if (dense_.defined() && n > kPanelGemm) {
    gemm<float>(false, true, int(n), int(rows_), int(cols_), 1.0f, x, int(cols_), dense_.data<float>(), int(cols_), 0.0f, y,
                int(rows_));
    return;
  }
  const auto& v = vec();
  // Many rows (prefill): vectors packed column-major in blocks that stay in cache, and each bf16
  // panel widened to f32 once per block (a thread's own 4-row buffer, in L1) and multiplied by the
  // block tile by tile (vec.h panel_gemm). The weights are read as stored, never unpacked whole.
  const int64_t tile = v.gemm_tile, lanes = v.lanes;
  const int64_t block = std::max(tile, (int64_t(1) << 16) / pcols_ / tile * tile);  // ~256 KiB of vectors
  const int64_t panels = prows_ / 4, step = 4 * pcols_;
  thread_local std::vector<float> xpbuf;  // the calling thread's; the team writes into it through `xp`
  xpbuf.resize(size_t(pcols_ * std::min(block, (n + lanes - 1) / lanes * lanes)));
  float* xp = xpbuf.data();
  for (int64_t t0 = 0; t0 < n; t0 += block) {
    const int64_t m = std::min(block, n - t0), nt = (m + lanes - 1) / lanes * lanes;
#pragma omp parallel
    {
      // tile by tile (vec.h panel_gemm), columns zero-padded; the threads split the columns
#pragma omp for schedule(static)
      for (int64_t c0 = 0; c0 < pcols_; c0 += 8)
        for (int64_t t = 0; t < nt; t += tile) {
          const int64_t w = std::min(tile, nt - t);
          float* d = xp + t * pcols_ + c0 * w;
          for (int64_t k = 0; k < w; ++k) {
            const float* row = t + k < m ? x + (t0 + t + k) * cols_ : nullptr;
            for (int64_t c = c0; c < c0 + 8; ++c) d[(c - c0) * w + k] = row && c < cols_ ? row[c] : 0.0f;
          }
        }
      // groups of panels, so that each block of a tile's columns serves several panels from L1
      constexpr int64_t kGroup = 8;
      thread_local std::vector<float> wp, out;
      wp.resize(size_t(kGroup * step));
      out.resize(size_t(4 * kGroup * nt));
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < panels; b0 += kGroup) {
        const int64_t np = std::min(kGroup, panels - b0);
        const float* p = f32() + b0 * step;
        if (type_ == Type::bf16) {
          v.widen_bf16(bf16() + b0 * step, wp.data(), np * step);
          p = wp.data();
        }
        v.panel_gemm(p, np, xp, pcols_, nt, out.data(), nt);
        const int64_t r = std::min<int64_t>(4 * np, rows_ - 4 * b0);
        for (int64_t t = 0; t < m; ++t)
          for (int64_t k = 0; k < r; ++k) y[(t0 + t) * rows_ + 4 * b0 + k] = out[size_t(k * nt + t)];
      }
    }
  }
}

const std::string& PanelMatrix::name() const {
  static const std::string f32 = "f32", bf16 = "bf16";
  return type_ == Type::f32 ? f32 : bf16;
}

namespace {
const bool reg_f32 = FormatRegistry::get().add(
    {"f32", "f32", "f32 weights in four-row panels (the row-major original kept for batched products)",
     [](const Tensor& w) { return std::make_unique<PanelMatrix>(w, PanelMatrix::Type::f32, true); }});
const bool reg_bf16 = FormatRegistry::get().add(
    {"bf16", "f32", "bf16 weights (round to nearest even) in four-row panels",
     [](const Tensor& w) { return std::make_unique<PanelMatrix>(w, PanelMatrix::Type::bf16); }});
}  // namespace

}  // namespace clm::kernels
