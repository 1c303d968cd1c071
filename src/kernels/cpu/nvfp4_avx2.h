// The NVFP4 block dot product (vec.h dot_nvfp4) in 256-bit AVX2 instructions, shared by the AVX2
// and AVX-512 tiers (whose files are compiled with AVX2 enabled): 32 elements (two blocks) per
// step, codes decoded to doubled E2M1 int8 values by one byte shuffle.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec.h"

namespace clm::kernels {
namespace {

inline float dot_nvfp4_avx2(const uint8_t* w, const float* ws, const int8_t* x, const float* xs, int64_t n) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)kE2M1Doubled));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 32) {
    const __m128i packed = _mm_loadu_si128((const __m128i*)(w + i / 2));
    const __m128i lo = _mm_and_si128(packed, low4), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
    const __m256i codes = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
    const __m256i wv = _mm256_shuffle_epi8(table, codes);
    const __m256i xv = _mm256_loadu_si256((const __m256i*)(x + i));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));  // lanes 0-3: block 0, 4-7: block 1
    const __m256 sc = _mm256_set_m128(_mm_set1_ps(ws[i / 16 + 1] * xs[i / 16 + 1]), _mm_set1_ps(ws[i / 16] * xs[i / 16]));
    acc = _mm256_fmadd_ps(p, sc, acc);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s))) * 0.25f;
}

}  // namespace
}  // namespace clm::kernels
