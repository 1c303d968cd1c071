// The layout of four-row kernels over 4-bit codes (vec.h dot4_w4a8): each full group of
// four rows of `row_bytes` bytes is interleaved per 32 bytes (64 elements), row r's bytes 32c..32c+31
// at 128·c + 32·r of the group (a last piece of 16 bytes: at 128·c + 16·r), so that a product reads
// the four rows as one sequential stream. Rows past the last full group stay row-major. row_bytes is
// a multiple of 16.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/vec.h"

namespace clm::kernels {

inline int64_t quad_offset(int64_t r, int64_t byte, int64_t row_bytes) {
  const int64_t c = byte / 32, len = std::min<int64_t>(32, row_bytes - 32 * c);
  return r / 4 * 4 * row_bytes + 128 * c + len * (r % 4) + byte % 32;
}
// Row-major codes [rows, row_bytes] -> the four-row layout, in place.
inline void interleave_quads(std::vector<uint8_t>& codes, int64_t rows, int64_t row_bytes) {
  std::vector<uint8_t> q(codes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < row_bytes; ++j)
      q[size_t(r < rows / 4 * 4 ? quad_offset(r, j, row_bytes) : r * row_bytes + j)] = codes[size_t(r * row_bytes + j)];
  codes.swap(q);
}
// Row r of codes in the four-row layout, in row order (gathered into buf where interleaved).
inline const uint8_t* quad_row(const uint8_t* codes, int64_t rows, int64_t row_bytes, int64_t r, std::vector<uint8_t>& buf) {
  if (r >= rows / 4 * 4) return codes + r * row_bytes;
  buf.resize(size_t(row_bytes));
  for (int64_t j = 0; j < row_bytes; ++j) buf[size_t(j)] = codes[quad_offset(r, j, row_bytes)];
  return buf.data();
}

// The offset terms of dot_w4a8 for count int8 values q (a multiple of 4): xb[j] = -offset·(q_4j + .. + q_4j+3).
inline void w4a8_offset_terms(const int8_t* q, int64_t count, int offset, int32_t* xb) {
  for (int64_t j = 0; j < count / 4; ++j) xb[j] = -offset * (q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3]);
}

// The block scales of 4-bit rows, [rows, kp / block]: f32 values, or one code byte per block
// (NVFP4's E4M3, MX's E8M0) decoded for each group of four rows just before its products, so a
// row streams kp/2 code bytes and kp/block scale bytes instead of 4 per block.
struct RowScales {
  const float* f32 = nullptr;
  const uint8_t* codes = nullptr;
  ScaleCode kind = ScaleCode::ue4m3;
};

// y[t·rows + r] = scale · (row r of codes · token t) for n tokens, through vec().dot4_w4a8 / dot_w4a8:
// codes in the four-row layout with rows of kp elements (a multiple of 32), their block scales ws,
// the tokens' int8 values x [n, kp], block scales xs [n, kp / block] and offset terms xb [n, kp / 4].
// Groups of four rows are spread over the threads; the last rows go one by one.
inline void gemv_w4a8_rows(const uint8_t* codes, const uint8_t* lut, const RowScales& ws, int64_t rows, int64_t kp, int64_t block,
                           const int8_t* x, const float* xs, const int32_t* xb, int64_t n, float scale, float* y) {
  const VecKernels& k = vec();
  const int64_t nb = kp / block, quads = (rows + 3) / 4;
#pragma omp parallel for schedule(static) if (rows * n * kp > (1 << 15))
  for (int64_t g = 0; g < quads; ++g) {
    const int64_t r0 = 4 * g;
    const float* wq = ws.f32 ? ws.f32 + r0 * nb : nullptr;  // this group's scales
    if (!wq) {
      thread_local std::vector<float> buf;
      const int64_t m = std::min<int64_t>(4, rows - r0) * nb;
      if (buf.size() < size_t(m)) buf.resize(size_t(m));
      k.decode_scales(ws.codes + r0 * nb, ws.kind, buf.data(), m);
      wq = buf.data();
    }
    int64_t t = 0;
    if (r0 + 4 <= rows)
      for (; t + 4 <= n; t += 4) {  // tiles of four tokens: the codes expanded once for the four
        float o[16];
        k.gemm4x4_w4a8(codes + r0 * kp / 2, lut, wq, nb, x + t * kp, kp, xs + t * nb, nb, xb + t * kp / 4, kp / 4, kp, block, o);
        for (int tt = 0; tt < 4; ++tt)
          for (int r = 0; r < 4; ++r) y[(t + tt) * rows + r0 + r] = scale * o[4 * tt + r];
      }
    for (; t < n; ++t) {
      const int8_t* xt = x + t * kp;
      const float* st = xs + t * nb;
      const int32_t* bt = xb + t * kp / 4;
      if (r0 + 4 <= rows) {
        float o[4];
        k.dot4_w4a8(codes + r0 * kp / 2, lut, wq, nb, xt, st, bt, kp, block, o);
        for (int r = 0; r < 4; ++r) y[t * rows + r0 + r] = scale * o[r];
      } else {
        for (int64_t r = r0; r < rows; ++r)
          y[t * rows + r] = scale * k.dot_w4a8(codes + r * kp / 2, lut, wq + (r - r0) * nb, xt, st, bt, kp, block);
      }
    }
  }
}

}  // namespace clm::kernels
