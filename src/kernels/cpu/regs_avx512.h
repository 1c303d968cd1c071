// The AVX-512 registers for vec_simd.h, shared by the AVX-512 tier (vec_avx512.cpp, compiled with
// -mavx512f -mavx512bw -mavx512vl -mfma) and its VNNI tier (vec_avx512vnni.cpp, the same plus
// -mavx512vnni), which differ only in the int8 dot product.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/tiles.h"
#include "kernels/cpu/w4a8_avx2.h"
#include "kernels/cpu/vec_simd.h"

namespace clm::kernels {
// Internal linkage on purpose: each tier's file compiles these with its own flags.
namespace {

// The 4-bit-weight × int8 block dot products (vec.h dot_w4a8, dot4_w4a8) 64 elements per step: 32
// bytes of codes widened to their nibbles in element order (w4_codes_avx2's trick, the mask by one
// ternary-logic op), through the unsigned table by one byte shuffle, times x into int32 lanes
// starting from the offset term xb (Vnni: one dpbusd, else maddubs + madd); the lanes then take
// their block's ws·xs (two blocks of 32 or four of 16) by one permute. A last 32 elements: the
// 256-bit step.
// 32 bytes of codes -> 64 unsigned table values in element order.
inline __m512i w4a8_expand64_avx512(const uint8_t* w32, __m512i table) {
  const __m512i z = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i*)w32));
  return _mm512_shuffle_epi8(table, _mm512_ternarylogic_epi32(z, _mm512_slli_epi16(z, 4), _mm512_set1_epi16(0x0F0F), 0xA8));
}
// acc += the 64 products u·x (plus the offset term xb) as floats, times their lanes' scales sc.
template <bool Vnni>
inline __m512 w4a8_fma64_avx512(__m512i u, __m512i xv, __m512i xb, __m512 sc, __m512 acc) {
  __m512i p;
  if constexpr (Vnni) p = _mm512_dpbusd_epi32(xb, u, xv);
  else p = _mm512_add_epi32(_mm512_madd_epi16(_mm512_maddubs_epi16(u, xv), _mm512_set1_epi16(1)), xb);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc);
}
// The scales of the blocks that 64 elements from element i span: two of 32 or four of 16.
inline __m128 w4a8_load_scales(const float* s, int64_t i, int64_t block) {
  return block == 32 ? _mm_castpd_ps(_mm_load_sd((const double*)(s + i / 32))) : _mm_loadu_ps(s + i / 16);
}
// Those scales, each on the int32 lanes of its block.
inline __m512 w4a8_to_lanes(__m128 s, int64_t block) {
  const __m512i idx = block == 32 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                                  : _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}
// Each lane's ws·xs (one permute of the products).
inline __m512 w4a8_scales64_avx512(const float* ws, const float* xs, int64_t i, int64_t block) {
  return w4a8_to_lanes(_mm_mul_ps(w4a8_load_scales(ws, i, block), w4a8_load_scales(xs, i, block)), block);
}

template <bool Vnni>
inline float dot_w4a8_avx512(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb,
                             int64_t n, int64_t block) {
  const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)lut));
  auto step = [&](int64_t i, __m512 acc) {
    return w4a8_fma64_avx512<Vnni>(w4a8_expand64_avx512(w + i / 2, table), _mm512_loadu_si512(x + i), _mm512_loadu_si512(xb + i / 4),
                                   w4a8_scales64_avx512(ws, xs, i, block), acc);
  };
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) a0 = step(i, a0), a1 = step(i + 64, a1);
  if (i + 64 <= n) a0 = step(i, a0), i += 64;
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  if (i < n) s += dot_w4a8_avx2(w + i / 2, lut, ws + i / block, x + i, xs + i / block, xb + i / 4, n - i, block);
  return s;
}

// Four rows in the four-row layout (kernels/cpu/quads.h): the codes one stream, x, its offset term
// and its scales loaded once for the four.
template <bool Vnni>
inline void dot4_w4a8_avx512(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs,
                             const int32_t* xb, int64_t n, int64_t block, float* out) {
  const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)lut));
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    prefetch_ahead<128>(w + 2 * i);
    const __m512i xv = _mm512_loadu_si512(x + i), bias = _mm512_loadu_si512(xb + i / 4);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
      a[r] = w4a8_fma64_avx512<Vnni>(w4a8_expand64_avx512(w + 2 * i + 32 * r, table), xv, bias, w4a8_scales64_avx512(ws + r * ldws, xs, i, block),
                                     a[r]);
  }
  for (int r = 0; r < 4; ++r) {
    out[r] = _mm512_reduce_add_ps(a[r]);
    if (i < n) out[r] += dot_w4a8_avx2(w + 2 * i + 16 * r, lut, ws + r * ldws + i / block, x + i, xs + i / block, xb + i / 4, n - i, block);
  }
}

// Four rows times four tokens (vec.h gemm4x4_w4a8): per 64 elements each row's codes are expanded
// once (four shuffled byte vectors) and each row's and token's scales permuted to their lanes once;
// the 16 products then cost a dot, a conversion, a multiply of the two scale vectors and an FMA each.
template <bool Vnni>
inline void gemm4x4_w4a8_avx512(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, int64_t ldx,
                                const float* xs, int64_t ldxs, const int32_t* xb, int64_t ldxb, int64_t n, int64_t block, float* out) {
  const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)lut));
  __m512 a[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512i u[4];
    __m512 sw[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      u[r] = w4a8_expand64_avx512(w + 2 * i + 32 * r, table);
      sw[r] = w4a8_to_lanes(w4a8_load_scales(ws + r * ldws, i, block), block);
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      const __m512i xv = _mm512_loadu_si512(x + t * ldx + i), bias = _mm512_loadu_si512(xb + t * ldxb + i / 4);
      const __m512 sx = w4a8_to_lanes(w4a8_load_scales(xs + t * ldxs, i, block), block);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) a[4 * t + r] = w4a8_fma64_avx512<Vnni>(u[r], xv, bias, _mm512_mul_ps(sw[r], sx), a[4 * t + r]);
    }
  }
  for (int t = 0; t < 4; ++t)
    for (int r = 0; r < 4; ++r) {
      float v = _mm512_reduce_add_ps(a[4 * t + r]);
      if (i < n)
        v += dot_w4a8_avx2(w + 2 * i + 16 * r, lut, ws + r * ldws + i / block, x + t * ldx + i, xs + t * ldxs + i / block,
                           xb + t * ldxb + i / 4, n - i, block);
      out[4 * t + r] = v;
    }
}

struct Avx512 {
  using V = __m512;
  static constexpr int64_t N = 16;
  static constexpr int G = 6;  // 24 accumulators + 6 vectors + 1 broadcast of the 32 registers
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V load_bf16(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static void store_i8(int8_t* p, V v) { _mm_storeu_si128((__m128i*)p, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v))); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale2(V p, V n) { return _mm512_scalef_ps(p, n); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static float hmax(V v) { return _mm512_reduce_max_ps(v); }

  // A 512-bit register holds two rows of one 8-column chunk; x's 8 values are broadcast to both
  // halves, which are separated at the end.
  static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static void halves(V a, float* out) {
    out[0] = hsum8(_mm512_castps512_ps256(a));
    out[1] = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  }
  template <class W, class Load2>
  static void panel4(const W* p, const float* x, int64_t n, float* out, Load2 load2) {
    V a01 = zero(), a23 = zero();
    for (int64_t i = 0; i < n; i += 8, p += 32) {
      prefetch_ahead<32 * sizeof(W)>(p);
      V xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x + i))));
      a01 = fmadd(load2(p), xv, a01);
      a23 = fmadd(load2(p + 16), xv, a23);
    }
    halves(a01, out);
    halves(a23, out + 2);
  }
  static void panel4_f32(const float* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load); }
  static void panel4_bf16(const uint16_t* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load_bf16); }
  // Four vectors: two panel loads feed eight FMAs (eight accumulators, one pair per vector).
  template <class W, class Load2>
  static void panel4x4(const W* p, const float* x, int64_t ldx, int64_t n, float* out, Load2 load2) {
    V a[8];
    for (auto& v : a) v = zero();
    for (int64_t i = 0; i < n; i += 8, p += 32) {
      prefetch_ahead<32 * sizeof(W)>(p);
      const V w01 = load2(p), w23 = load2(p + 16);
      for (int k = 0; k < 4; ++k) {
        const V xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x + k * ldx + i))));
        a[2 * k] = fmadd(w01, xv, a[2 * k]);
        a[2 * k + 1] = fmadd(w23, xv, a[2 * k + 1]);
      }
    }
    for (int k = 0; k < 4; ++k) halves(a[2 * k], out + 4 * k), halves(a[2 * k + 1], out + 4 * k + 2);
  }
  static void panel4x4_f32(const float* p, const float* x, int64_t ldx, int64_t n, float* out) { panel4x4(p, x, ldx, n, out, load); }
  static void panel4x4_bf16(const uint16_t* p, const float* x, int64_t ldx, int64_t n, float* out) {
    panel4x4(p, x, ldx, n, out, load_bf16);
  }

  using I = __m512i;
  static constexpr int64_t B = 64;
  static I zero_i() { return _mm512_setzero_si512(); }
  static I load_i(const int8_t* p) { return _mm512_loadu_si512(p); }
  // |w| (unsigned) times x with w's sign moved onto x (AVX-512 has no sign_epi8: negate by mask).
  static I sign_moved(I w, I x) { return _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x); }
  static I dot_i8(I acc, I w, I x) {
    const I p16 = _mm512_maddubs_epi16(_mm512_abs_epi8(w), sign_moved(w, x));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  }
  static int32_t hsum_i(I v) { return _mm512_reduce_add_epi32(v); }
  static constexpr bool kU8Dot = false;  // no unsigned x signed byte dot into int32 without VNNI
  static constexpr GemmI8Panels gemm_i8_panels = nullptr;
  static constexpr auto dot_w4a8 = dot_w4a8_avx512<false>;
  static constexpr auto dot4_w4a8 = dot4_w4a8_avx512<false>;
  static constexpr auto gemm4x4_w4a8 = gemm4x4_w4a8_avx512<false>;
  static V u8_bits(const uint8_t* p, int shift, int floor) {  // 16 bytes, each (b << shift) max floor, as float bits
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
    return _mm512_castsi512_ps(_mm512_max_epi32(_mm512_sll_epi32(b, _mm_cvtsi32_si128(shift)), _mm512_set1_epi32(floor)));
  }
  static V load_w8(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p))); }
  static V load_w4(const uint8_t* p, const int8_t* lut) {  // 16 nibbles from 8 bytes, in element order
    const __m128i v = _mm_loadl_epi64((const __m128i*)p), m = _mm_set1_epi8(0x0F);
    const __m128i idx = _mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
    const __m128i vals = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)lut), idx);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(vals));
  }
};

#ifdef __AVX512VNNI__
// gemm_i8_panels' tile: T tokens x NP panels of 16 rows, T·NP accumulators (24 at most, + NP weights
// + one broadcast: 29 of the 32 registers). Per group of four columns: NP loads of 64 bytes and T
// broadcasts feed T·NP dpbusd, so the dot products run at the instruction's rate, not the loads'.
// The tile covers column groups [c0, c1): it starts from zero (first) or from `part` (int32 sums of
// the earlier groups, 64 per token), and ends in `part` or, after the last group, in y.
template <int NP, int T>
inline void i8_panel_tile(const uint8_t* wp, int64_t kp, int64_t c0, int64_t c1, const int8_t* x, int64_t ldx, int32_t* part,
                          bool first, bool last, const int32_t* xsum, const float* sx, const float* sw, int64_t rows, float* y, int64_t ldy) {
  __m512i acc[T][NP];
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) acc[t][p] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(part + 64 * t + 16 * p);
  const int64_t pstride = 16 * kp;
  for (int64_t c = c0; c < c1; ++c) {
    __m512i w[NP];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) w[p] = _mm512_loadu_si512(wp + p * pstride + 64 * c);
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) {
      int32_t four;
      std::memcpy(&four, x + t * ldx + 4 * c, 4);
      const __m512i xb = _mm512_set1_epi32(four);
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) acc[t][p] = _mm512_dpbusd_epi32(acc[t][p], w[p], xb);
    }
  }
  if (!last) {
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) _mm512_storeu_si512(part + 64 * t + 16 * p, acc[t][p]);
    return;
  }
#pragma GCC unroll 6
  for (int t = 0; t < T; ++t) {
    const __m512i corr = _mm512_set1_epi32(128 * xsum[t]);
    const __m512 s = _mm512_set1_ps(sx[t]);
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) {
      const int64_t n0 = 16 * p;
      if (n0 >= rows) break;
      const __mmask16 m = rows - n0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (rows - n0)) - 1);
      const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t][p], corr)), s);
      _mm512_mask_storeu_ps(y + t * ldy + n0, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, sw + n0)));
    }
  }
}
// Columns in blocks of kI8PanelCols, each block of the NP panels (NP·16·kI8PanelCols bytes, in L1)
// meeting every token before the next; the int32 sums between blocks wait in a per-thread buffer.
// Streaming each panel's whole K per tile of tokens instead read the weights from L2 ~nt/6 times.
inline constexpr int64_t kI8PanelCols = 512;
template <int NP>
inline void i8_panels_np(const uint8_t* wp, int64_t kp, const int8_t* x, int64_t ldx, int64_t nt, const int32_t* xsum, const float* sx,
                         const float* sw, int64_t rows, float* y, int64_t ldy) {
  thread_local std::vector<int32_t> part;
  const int64_t groups = kp / 4, step = kI8PanelCols / 4;
  if (groups > step && part.size() < size_t(64 * nt)) part.resize(size_t(64 * nt));
  for (int64_t c0 = 0; c0 < groups; c0 += step) {
    const int64_t c1 = std::min(groups, c0 + step);
    const bool first = c0 == 0, last = c1 == groups;
    int64_t t = 0;
    auto tile = [&]<int T>() {
      i8_panel_tile<NP, T>(wp, kp, c0, c1, x + t * ldx, ldx, groups > step ? part.data() + 64 * t : nullptr, first, last, xsum + t, sx + t, sw, rows, y + t * ldy, ldy);
    };
    token_tiles<6>(nt, t, tile);
  }
}
inline void gemm_i8_panels_vnni(const uint8_t* wp, int64_t np, int64_t kp, const int8_t* x, int64_t ldx, int64_t nt, const int32_t* xsum,
                                const float* sx, const float* sw, int64_t rows, float* y, int64_t ldy) {
  switch (np) {
    case 4: i8_panels_np<4>(wp, kp, x, ldx, nt, xsum, sx, sw, rows, y, ldy); break;
    case 3: i8_panels_np<3>(wp, kp, x, ldx, nt, xsum, sx, sw, rows, y, ldy); break;
    case 2: i8_panels_np<2>(wp, kp, x, ldx, nt, xsum, sx, sw, rows, y, ldy); break;
    case 1: i8_panels_np<1>(wp, kp, x, ldx, nt, xsum, sx, sw, rows, y, ldy); break;
    default: throw std::invalid_argument("gemm_i8_panels: 1 to 4 panels");
  }
}

// VNNI: one instruction for the unsigned × signed byte products and their sum into int32.
struct Avx512Vnni : Avx512 {
  static I dot_i8(I acc, I w, I x) { return _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(w), sign_moved(w, x)); }
  static constexpr auto dot_w4a8 = dot_w4a8_avx512<true>;
  static constexpr auto dot4_w4a8 = dot4_w4a8_avx512<true>;
  static constexpr auto gemm4x4_w4a8 = gemm4x4_w4a8_avx512<true>;
  static constexpr bool kU8Dot = true;
  static constexpr GemmI8Panels gemm_i8_panels = gemm_i8_panels_vnni;
  // vec_simd.h's 4x4 tile written out: 16 accumulators, 4 weights, one x, the sign flip (22 of the
  // 32 registers), so that nothing spills.
  static void gemm4x4(const int8_t* w, const int8_t* x, int64_t ldx, int64_t n, const int32_t* xsum, int32_t* out) {
    const I flip = _mm512_set1_epi8(char(0x80));
    I a00 = zero_i(), a01 = zero_i(), a02 = zero_i(), a03 = zero_i(), a10 = zero_i(), a11 = zero_i(), a12 = zero_i(), a13 = zero_i();
    I a20 = zero_i(), a21 = zero_i(), a22 = zero_i(), a23 = zero_i(), a30 = zero_i(), a31 = zero_i(), a32 = zero_i(), a33 = zero_i();
    const int8_t *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    for (int64_t i = 0; i < n; i += 64, w += 256) {
      const I w0 = _mm512_xor_si512(load_i(w), flip), w1 = _mm512_xor_si512(load_i(w + 64), flip);
      const I w2 = _mm512_xor_si512(load_i(w + 128), flip), w3 = _mm512_xor_si512(load_i(w + 192), flip);
      I xv = load_i(x0 + i);
      a00 = _mm512_dpbusd_epi32(a00, w0, xv), a01 = _mm512_dpbusd_epi32(a01, w1, xv);
      a02 = _mm512_dpbusd_epi32(a02, w2, xv), a03 = _mm512_dpbusd_epi32(a03, w3, xv);
      xv = load_i(x1 + i);
      a10 = _mm512_dpbusd_epi32(a10, w0, xv), a11 = _mm512_dpbusd_epi32(a11, w1, xv);
      a12 = _mm512_dpbusd_epi32(a12, w2, xv), a13 = _mm512_dpbusd_epi32(a13, w3, xv);
      xv = load_i(x2 + i);
      a20 = _mm512_dpbusd_epi32(a20, w0, xv), a21 = _mm512_dpbusd_epi32(a21, w1, xv);
      a22 = _mm512_dpbusd_epi32(a22, w2, xv), a23 = _mm512_dpbusd_epi32(a23, w3, xv);
      xv = load_i(x3 + i);
      a30 = _mm512_dpbusd_epi32(a30, w0, xv), a31 = _mm512_dpbusd_epi32(a31, w1, xv);
      a32 = _mm512_dpbusd_epi32(a32, w2, xv), a33 = _mm512_dpbusd_epi32(a33, w3, xv);
    }
    const int32_t c0 = 128 * xsum[0], c1 = 128 * xsum[1], c2 = 128 * xsum[2], c3 = 128 * xsum[3];
    out[0] = hsum_i(a00) - c0, out[1] = hsum_i(a01) - c0, out[2] = hsum_i(a02) - c0, out[3] = hsum_i(a03) - c0;
    out[4] = hsum_i(a10) - c1, out[5] = hsum_i(a11) - c1, out[6] = hsum_i(a12) - c1, out[7] = hsum_i(a13) - c1;
    out[8] = hsum_i(a20) - c2, out[9] = hsum_i(a21) - c2, out[10] = hsum_i(a22) - c2, out[11] = hsum_i(a23) - c2;
    out[12] = hsum_i(a30) - c3, out[13] = hsum_i(a31) - c3, out[14] = hsum_i(a32) - c3, out[15] = hsum_i(a33) - c3;
  }
};
#endif

}  // namespace
}  // namespace clm::kernels
