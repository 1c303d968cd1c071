// The 4-bit-weight × int8 block dot products (vec.h dot_w4a8, dot4_w4a8) in 256-bit AVX2
// instructions, shared by the AVX2 and AVX-512 tiers (the latter for a last 32 elements): 32
// elements (one block of 32 or two of 16) per step.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/prefetch.h"

namespace clm::kernels {
namespace {

inline float hsum8_avx2(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// 16 bytes of codes -> their 32 nibbles in element order: byte k widened to word k (0x00hl), then
// (word | word << 4) & 0x0F0F puts l in the low byte (element 2k) and h in the high one (2k + 1).
inline __m256i w4_codes_avx2(const uint8_t* w) {
  const __m256i z = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)w));
  return _mm256_and_si256(_mm256_or_si256(z, _mm256_slli_epi16(z, 4)), _mm256_set1_epi16(0x0F0F));
}

// 32 elements of one row: eight int32 lanes of four products each, the offset taken out (xb), as
// floats, times the per-lane scale sc. Unsigned values <= 127 times |x| <= 127: maddubs' pair sums
// stay below 2^15.
inline __m256 w4a8_step32_avx2(const uint8_t* w16, __m256i lut, __m256i xv, __m256i xb, __m256 sc, __m256 acc) {
  const __m256i u = _mm256_shuffle_epi8(lut, w4_codes_avx2(w16));
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), _mm256_set1_epi16(1));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(p, xb)), sc, acc);
}
// The lanes' scales (ws·xs) for the 32 elements from element i, in a template over the block so that
// the loop has no branch on it: one block of 32 (every lane), or two of 16 (lanes 0-3, 4-7) by one
// multiply of the pairs and one permute. The product is the same float either way (one rounding).
template <int BLOCK>
inline __m256 w4a8_lane_scales_avx2(const float* ws, const float* xs, int64_t i) {
  if constexpr (BLOCK == 32) {  // two broadcasts from memory (loads only) and one multiply
    return _mm256_mul_ps(_mm256_broadcast_ss(ws + i / 32), _mm256_broadcast_ss(xs + i / 32));
  } else {
    const __m128 p = _mm_mul_ps(_mm_castpd_ps(_mm_load_sd((const double*)(ws + i / 16))), _mm_castpd_ps(_mm_load_sd((const double*)(xs + i / 16))));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(p), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
  }
}

inline float dot_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb,
                           int64_t n, int64_t block) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  auto step = [&](int64_t i, __m256 acc) {
    return w4a8_step32_avx2(w + i / 2, t, _mm256_loadu_si256((const __m256i*)(x + i)), _mm256_loadu_si256((const __m256i*)(xb + i / 4)),
                            block == 32 ? w4a8_lane_scales_avx2<32>(ws, xs, i) : w4a8_lane_scales_avx2<16>(ws, xs, i), acc);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) a0 = step(i, a0), a1 = step(i + 32, a1);
  if (i < n) a0 = step(i, a0);
  return hsum8_avx2(_mm256_add_ps(a0, a1));
}

// Blocks of 32 share one scale across the step's eight lanes, so the lanes may hold any grouping
// of the 32 products. Then the codes need no interleave: 16 bytes broadcast to both halves, the
// upper half shifted right by 4 (lane 0: the low nibbles = elements 0, 2, .., 30; lane 1: the high
// ones = 1, 3, .., 31), one mask; and x is split the same way once per step for the four rows
// (w4a8_split_x_avx2). The offset terms xb are added as they are: they sum, over the step, to the
// same block total (-offset · Σx), which is all a uniform block scale sees.
inline __m256i w4a8_split_x_avx2(__m256i x) {
  const __m256i evens_odds = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9,
                                              11, 13, 15);
  return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(x, evens_odds), 0xD8);
}
inline __m256 w4a8_step32_split_avx2(const uint8_t* w16, __m256i lut, __m256i xsplit, __m256i xb, __m256 sc, __m256 acc) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)w16));
  const __m256i c = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(lut, c), xsplit), _mm256_set1_epi16(1));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(p, xb)), sc, acc);
}

// Four rows in the four-row layout (kernels/cpu/quads.h), 64 elements (each row's 32 bytes) per
// step: x and its offset terms loaded once for the four rows, a last 32 elements (16 bytes a row,
// at w + 16·r) after the loop.
template <int BLOCK>
inline void dot4_w4a8_avx2_b(const uint8_t* w, __m256i t, const float* ws, int64_t ldws, const int8_t* x, const float* xs, const int32_t* xb,
                             int64_t n, float* out) {
  // four named accumulators: an array here is kept in memory by -O2 (a store per row and step)
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const float *w0 = ws, *w1 = ws + ldws, *w2 = ws + 2 * ldws, *w3 = ws + 3 * ldws;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64, w += 128) {
    prefetch_ahead<128>(w);
    __m256i x0 = _mm256_loadu_si256((const __m256i*)(x + i)), x1 = _mm256_loadu_si256((const __m256i*)(x + i + 32));
    if constexpr (BLOCK == 32) x0 = w4a8_split_x_avx2(x0), x1 = w4a8_split_x_avx2(x1);
    const __m256i b0 = _mm256_loadu_si256((const __m256i*)(xb + i / 4)), b1 = _mm256_loadu_si256((const __m256i*)(xb + i / 4 + 8));
    auto row = [&](const uint8_t* wr, const float* sr, __m256 acc) {
      if constexpr (BLOCK == 32) {
        acc = w4a8_step32_split_avx2(wr, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(sr, xs, i), acc);
        return w4a8_step32_split_avx2(wr + 16, t, x1, b1, w4a8_lane_scales_avx2<BLOCK>(sr, xs, i + 32), acc);
      }
      acc = w4a8_step32_avx2(wr, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(sr, xs, i), acc);
      return w4a8_step32_avx2(wr + 16, t, x1, b1, w4a8_lane_scales_avx2<BLOCK>(sr, xs, i + 32), acc);
    };
    a0 = row(w, w0, a0);
    a1 = row(w + 32, w1, a1);
    a2 = row(w + 64, w2, a2);
    a3 = row(w + 96, w3, a3);
  }
  if (i < n) {
    const __m256i x0 = _mm256_loadu_si256((const __m256i*)(x + i)), b0 = _mm256_loadu_si256((const __m256i*)(xb + i / 4));
    a0 = w4a8_step32_avx2(w, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(w0, xs, i), a0);
    a1 = w4a8_step32_avx2(w + 16, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(w1, xs, i), a1);
    a2 = w4a8_step32_avx2(w + 32, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(w2, xs, i), a2);
    a3 = w4a8_step32_avx2(w + 48, t, x0, b0, w4a8_lane_scales_avx2<BLOCK>(w3, xs, i), a3);
  }
  out[0] = hsum8_avx2(a0), out[1] = hsum8_avx2(a1), out[2] = hsum8_avx2(a2), out[3] = hsum8_avx2(a3);
}

inline void dot4_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs,
                           const int32_t* xb, int64_t n, int64_t block, float* out) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  if (block == 32) dot4_w4a8_avx2_b<32>(w, t, ws, ldws, x, xs, xb, n, out);
  else dot4_w4a8_avx2_b<16>(w, t, ws, ldws, x, xs, xb, n, out);
}

// Four rows times four tokens: four passes of dot4_w4a8_avx2 (the 256-bit tier has too few registers
// for a tile that keeps the expanded codes).
inline void gemm4x4_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, int64_t ldx,
                              const float* xs, int64_t ldxs, const int32_t* xb, int64_t ldxb, int64_t n, int64_t block, float* out) {
  for (int t = 0; t < 4; ++t) dot4_w4a8_avx2(w, lut, ws, ldws, x + t * ldx, xs + t * ldxs, xb + t * ldxb, n, block, out + 4 * t);
}

}  // namespace
}  // namespace clm::kernels
