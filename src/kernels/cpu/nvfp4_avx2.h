// The NVFP4 block dot product (vec.h dot_nvfp4) in 256-bit AVX2 instructions, shared by the AVX2
// and AVX-512 tiers (whose files are compiled with AVX2 enabled): 32 elements (two blocks) per
// step, codes decoded to doubled E2M1 int8 values by one byte shuffle.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec.h"

namespace clm::kernels {
namespace {

// 32 elements (two blocks of 16) of one row: acc += their products, scaled per block by s0, s1.
inline __m256 nvfp4_step32_avx2(const uint8_t* w16, __m256i xv, float s0, float s1, __m256 acc) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)kE2M1Doubled));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i packed = _mm_loadu_si128((const __m128i*)w16);
  const __m128i lo = _mm_and_si128(packed, low4), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
  const __m256i codes = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
  const __m256i wv = _mm256_shuffle_epi8(table, codes);
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
  const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));  // lanes 0-3: block 0, 4-7: block 1
  return _mm256_fmadd_ps(p, _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0)), acc);
}
inline float hsum8_avx2(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float dot_nvfp4_avx2(const uint8_t* w, const float* ws, const int8_t* x, const float* xs, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 32)
    acc = nvfp4_step32_avx2(w + i / 2, _mm256_loadu_si256((const __m256i*)(x + i)), ws[i / 16] * xs[i / 16], ws[i / 16 + 1] * xs[i / 16 + 1], acc);
  return hsum8_avx2(acc) * 0.25f;
}

// Four rows in the four-row layout (kernels/cpu/quads.h), 32 elements at a time, x loaded once.
inline void dot4_nvfp4_avx2(const uint8_t* w, const float* ws, int64_t ldws, const int8_t* x, const float* xs, int64_t n, float* out) {
  __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t i = 0; i < n; i += 32) {
    const __m256i xv = _mm256_loadu_si256((const __m256i*)(x + i));
    const uint8_t* wp = w + 2 * (i / 64 * 64) + 16 * (i / 32 % 2);
    const int64_t stride = i % 64 == 0 && i + 32 == n ? 16 : 32;
    const float x0 = xs[i / 16], x1 = xs[i / 16 + 1];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) a[r] = nvfp4_step32_avx2(wp + stride * r, xv, ws[r * ldws + i / 16] * x0, ws[r * ldws + i / 16 + 1] * x1, a[r]);
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum8_avx2(a[r]) * 0.25f;
}

}  // namespace
}  // namespace clm::kernels
