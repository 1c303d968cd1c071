// The W4A8 block dot product (vec.h dot_w4a8) in 256-bit AVX2 instructions, shared by the AVX2 and
// AVX-512 tiers (the latter for a last block of 32): one block of 32 per step, two blocks per
// iteration on two accumulators.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/nvfp4_avx2.h"  // hsum8_avx2

namespace clm::kernels {
namespace {

// 16 bytes of codes -> their 32 nibbles in element order: byte k widened to word k (0x00hl), then
// (word | word << 4) & 0x0F0F puts l in the low byte (element 2k) and h in the high one (2k + 1).
inline __m256i w4_codes_avx2(const uint8_t* w) {
  const __m256i z = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)w));
  return _mm256_and_si256(_mm256_or_si256(z, _mm256_slli_epi16(z, 4)), _mm256_set1_epi16(0x0F0F));
}

// One block's eight int32 lanes (four elements each), the offset taken out, as floats. Unsigned
// values <= 127 times |x| <= 127: maddubs' pair sums stay below 2^15.
inline __m256 w4a8_block_avx2(const uint8_t* w, __m256i lut, const int8_t* x, const int32_t* xb) {
  const __m256i u = _mm256_shuffle_epi8(lut, w4_codes_avx2(w));
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i*)x)), _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(_mm256_add_epi32(p, _mm256_loadu_si256((const __m256i*)xb)));
}

inline float dot_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb,
                           int64_t n) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    a0 = _mm256_fmadd_ps(w4a8_block_avx2(w + 16 * b, t, x + 32 * b, xb + 8 * b), _mm256_set1_ps(ws[b] * xs[b]), a0);
    a1 = _mm256_fmadd_ps(w4a8_block_avx2(w + 16 * b + 16, t, x + 32 * b + 32, xb + 8 * b + 8), _mm256_set1_ps(ws[b + 1] * xs[b + 1]), a1);
  }
  if (b < nb) a0 = _mm256_fmadd_ps(w4a8_block_avx2(w + 16 * b, t, x + 32 * b, xb + 8 * b), _mm256_set1_ps(ws[b] * xs[b]), a0);
  return hsum8_avx2(_mm256_add_ps(a0, a1));
}

// Four interleaved rows (vec.h dot4_w4a8), one block at a time: x's block and its offset term
// loaded once for the four. Row r's bytes for block b: w + 128·(b/2) + 32·r + 16·(b%2), or in a last
// block of 32 (b even, b + 1 = n/32), w + 128·(b/2) + 16·r.
inline void dot4_w4a8_avx2(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs,
                           const int32_t* xb, int64_t n, float* out) {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)lut));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const int64_t nb = n / 32;
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i xv = _mm256_loadu_si256((const __m256i*)(x + 32 * b)), bias = _mm256_loadu_si256((const __m256i*)(xb + 8 * b));
    const uint8_t* wb = w + 128 * (b / 2) + 16 * (b % 2);
    const int64_t stride = b % 2 == 0 && b + 1 == nb ? 16 : 32;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256i u = _mm256_shuffle_epi8(t, w4_codes_avx2(wb + stride * r));
      const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), ones), bias);
      a[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(ws[r * ldws + b] * xs[b]), a[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum8_avx2(a[r]);
}

}  // namespace
}  // namespace clm::kernels
