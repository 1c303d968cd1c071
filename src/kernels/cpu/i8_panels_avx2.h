// gemm_i8_panels (vec.h) for AVX2, which has no byte dot product into int32: vpmaddubsw needs an
// unsigned operand and saturates in int16, so each product pays a sign trick and a widening
// vpmaddwd (the 4x4 tile's dot_i8). Here the bytes are widened to int16 once per block of columns
// and every product is one vpmaddwd (two int16 pairs into int32, exact for any int8 values) plus
// one vpaddd: the same number of multiplies per byte product and half the other instructions.
//
// Per block of kColsAvx2 columns: each 16-row panel's block (VNNI layout: groups of 4 columns x 16
// rows, sign-flipped) is rearranged into pairs of columns x 8 rows (one register per pair and 8
// rows: 16 KiB a panel, 64 KiB for four, in L2); then the tokens, kTokensAvx2 at a time, are widened
// into a per-thread buffer (in L1) and meet every panel (12 accumulators, 2 weight registers, a
// broadcast). Sums between blocks wait in int32 (64 per token), as the VNNI tier's.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/tiles.h"

namespace clm::kernels {
namespace {

inline constexpr int64_t kColsAvx2 = 512;
inline constexpr int kTokensAvx2 = 6;  // tokens per tile: 12 accumulators + 2 weights + a broadcast + a product

// One 64-byte group (16 rows x columns 4g..4g+3, row j's bytes at 4j, each w + 128) -> four int16
// registers: [rows 0-7, columns 0-1], [rows 8-15, 0-1], [rows 0-7, 2-3], [rows 8-15, 2-3], each
// row's two columns adjacent (the pair vpmaddwd sums).
inline void widen_group_avx2(const uint8_t* g, int16_t* out) {
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10,
                                        11, 14, 15);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int h = 0; h < 2; ++h) {  // rows 0-7, then 8-15
    __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(g + 32 * h)), flip);
    v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, pick), 0xD8);  // [rows 0-7 cols 0-1 | rows 0-7 cols 2-3]
    _mm256_storeu_si256((__m256i*)(out + 16 * h), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
    _mm256_storeu_si256((__m256i*)(out + 32 + 16 * h), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
  }
}

// T tokens (xw + t·ldx, int16) x one widened panel block (pairs of 16 rows, 32 int16 per pair) over
// `pairs` column pairs: acc[t][h] holds rows 8h..8h+7 of token t.
template <int T>
inline void i8_tile_avx2(const int16_t* w, const int16_t* xw, int64_t ldx, int64_t pairs, int32_t* part, bool first) {
  __m256i a[T][2];
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) a[t][h] = first ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i*)(part + 64 * t + 8 * h));
  for (int64_t c = 0; c < pairs; ++c, w += 32) {
    const __m256i w0 = _mm256_loadu_si256((const __m256i*)w), w1 = _mm256_loadu_si256((const __m256i*)(w + 16));
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) {
      int32_t two;
      std::memcpy(&two, xw + t * ldx + 2 * c, 4);
      const __m256i b = _mm256_set1_epi32(two);
      a[t][0] = _mm256_add_epi32(a[t][0], _mm256_madd_epi16(w0, b));
      a[t][1] = _mm256_add_epi32(a[t][1], _mm256_madd_epi16(w1, b));
    }
  }
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) _mm256_storeu_si256((__m256i*)(part + 64 * t + 8 * h), a[t][h]);
}

inline void gemm_i8_panels_avx2(const uint8_t* wp, int64_t np, int64_t kp, const int8_t* x, int64_t ldx, int64_t nt, const int32_t*,
                                const float* sx, const float* sw, int64_t rows, float* y, int64_t ldy) {
  if (np < 1 || np > 4) throw std::invalid_argument("gemm_i8_panels: 1 to 4 panels");
  thread_local std::vector<int16_t> xw, wb;
  thread_local std::vector<int32_t> part;
  if (xw.size() < size_t(kTokensAvx2 * kColsAvx2)) xw.resize(size_t(kTokensAvx2 * kColsAvx2));
  if (wb.size() < size_t(64 * kColsAvx2)) wb.resize(size_t(64 * kColsAvx2));
  if (part.size() < size_t(64 * nt)) part.resize(size_t(64 * nt));
  for (int64_t k0 = 0; k0 < kp; k0 += kColsAvx2) {
    const int64_t kb = std::min(kColsAvx2, kp - k0);  // a multiple of 64
    const bool first = k0 == 0, last = k0 + kb == kp;
    for (int64_t q = 0; q < np; ++q) {  // the panels' blocks widened (16 KiB each, in L2)
      const uint8_t* pq = wp + q * 16 * kp + 16 * k0;  // group k0/4 of panel q
      for (int64_t g = 0; g < kb / 4; ++g) widen_group_avx2(pq + 64 * g, wb.data() + q * 16 * kb + 64 * g);
    }
    int64_t t = 0;
    auto tile = [&]<int T>() {  // T tokens, widened into L1, against every panel
      for (int64_t u = 0; u < T; ++u)
        for (int64_t i = 0; i < kb; i += 16)
          _mm256_storeu_si256((__m256i*)(xw.data() + u * kb + i), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(x + (t + u) * ldx + k0 + i))));
      for (int64_t q = 0; q < np; ++q) i8_tile_avx2<T>(wb.data() + q * 16 * kb, xw.data(), kb, kb / 2, part.data() + 16 * q + 64 * t, first);
    };
    token_tiles<kTokensAvx2>(nt, t, tile);
    if (!last) continue;
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t r = 0; r < std::min<int64_t>(rows, 16 * np); ++r) y[t * ldy + r] = float(part[size_t(64 * t + r)]) * sx[t] * sw[r];
  }
}

}  // namespace
}  // namespace clm::kernels
