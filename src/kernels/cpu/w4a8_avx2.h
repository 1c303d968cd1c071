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
// The lanes' scales for 32 elements from element i: one block of 32, or two of 16 (lanes 0-3, 4-7).
inline __m256 w4a8_scales32_avx2(const float* ws, const float* xs, int64_t i, int64_t block) {
  if (block == 32) return _mm256_set1_ps(ws[i / 32] * xs[i / 32]);
  return _mm256_set_m128(_mm_set1_ps(ws[i / 16 + 1] * xs[i / 16 + 1]), _mm_set1_ps(ws[i / 16] * xs[i / 16]));
}

inline float dot_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb,
                           int64_t n, int64_t block) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  auto step = [&](int64_t i, __m256 acc) {
    return w4a8_step32_avx2(w + i / 2, t, _mm256_loadu_si256((const __m256i*)(x + i)), _mm256_loadu_si256((const __m256i*)(xb + i / 4)),
                            w4a8_scales32_avx2(ws, xs, i, block), acc);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) a0 = step(i, a0), a1 = step(i + 32, a1);
  if (i < n) a0 = step(i, a0);
  return hsum8_avx2(_mm256_add_ps(a0, a1));
}

// Four rows in the four-row layout (kernels/cpu/quads.h), 32 elements at a time, x and its offset
// term loaded once for the four. Row r's bytes for elements i..i+31: w + 2·(i - i%64) + 32·r +
// 16·(i%64 / 32), or in a last 32 elements starting a piece of 64, w + 2·i + 16·r.
inline void dot4_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs,
                           const int32_t* xb, int64_t n, int64_t block, float* out) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t i = 0; i < n; i += 32) {
    if (i % 64 == 0) prefetch_ahead<128>(w + 2 * i);
    const __m256i xv = _mm256_loadu_si256((const __m256i*)(x + i)), bias = _mm256_loadu_si256((const __m256i*)(xb + i / 4));
    const uint8_t* wp = w + 2 * (i - i % 64) + 16 * (i % 64 / 32);
    const int64_t stride = i % 64 == 0 && i + 32 == n ? 16 : 32;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) a[r] = w4a8_step32_avx2(wp + stride * r, t, xv, bias, w4a8_scales32_avx2(ws + r * ldws, xs, i, block), a[r]);
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum8_avx2(a[r]);
}

// Four rows times four tokens: four passes of dot4_w4a8_avx2 (the 256-bit tier has too few registers
// for a tile that keeps the expanded codes).
inline void gemm4x4_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, int64_t ldx,
                              const float* xs, int64_t ldxs, const int32_t* xb, int64_t ldxb, int64_t n, int64_t block, float* out) {
  for (int t = 0; t < 4; ++t) dot4_w4a8_avx2(w, lut, ws, ldws, x + t * ldx, xs + t * ldxs, xb + t * ldxb, n, block, out + 4 * t);
}

}  // namespace
}  // namespace clm::kernels
