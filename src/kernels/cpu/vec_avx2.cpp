// AVX2 + FMA tier (this file is compiled with -mavx2 -mfma): the registers for vec_simd.h.
#include <immintrin.h>

#include "kernels/cpu/i8_panels_avx2.h"
#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/w4a8_avx2.h"
#include "kernels/cpu/vec_simd.h"

namespace clm::kernels {

namespace {
struct Avx2 {
  using V = __m256;
  static constexpr int64_t N = 8;
  static constexpr int G = 3;  // 12 accumulators + 3 vectors + 1 broadcast: the 16 registers
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // bf16 -> f32 is a 16-bit left shift of the pattern.
  static V load_bf16(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static void store_i8(int8_t* p, V v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i*)p, _mm_packs_epi16(p16, p16));
  }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale2(V p, V n) {  // p * 2^n through the exponent bits
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)));
  }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static float hmax(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
  }
  // Four rows of a panel share each load of x; the panel is one contiguous stream (one 64-byte
  // line per bf16 chunk), which the hardware prefetcher follows far better than four row streams.
  template <class W, class LoadW>
  static void panel4(const W* p, const float* x, int64_t n, float* out, LoadW loadw) {
    V a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    for (int64_t i = 0; i < n; i += 8, p += 32) {
      prefetch_ahead<32 * sizeof(W)>(p);
      V xv = load(x + i);
      a0 = fmadd(loadw(p), xv, a0);
      a1 = fmadd(loadw(p + 8), xv, a1);
      a2 = fmadd(loadw(p + 16), xv, a2);
      a3 = fmadd(loadw(p + 24), xv, a3);
    }
    out[0] = hsum(a0), out[1] = hsum(a1), out[2] = hsum(a2), out[3] = hsum(a3);
  }
  static void panel4_f32(const float* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load); }
  static void panel4_bf16(const uint16_t* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load_bf16); }
  // Four vectors in two passes of two (16 registers: eight accumulators, four panel rows, two x).
  template <class W, class LoadW>
  static void panel4x2(const W* p, const float* x0, const float* x1, int64_t n, float* out, LoadW loadw) {
    V a[8];
    for (auto& v : a) v = zero();
    for (int64_t i = 0; i < n; i += 8, p += 32) {
      prefetch_ahead<32 * sizeof(W)>(p);
      const V xa = load(x0 + i), xb = load(x1 + i);
      for (int r = 0; r < 4; ++r) {
        const V w = loadw(p + 8 * r);
        a[r] = fmadd(w, xa, a[r]);
        a[4 + r] = fmadd(w, xb, a[4 + r]);
      }
    }
    for (int r = 0; r < 8; ++r) out[r] = hsum(a[r]);
  }
  template <class W, class LoadW>
  static void panel4x4(const W* p, const float* x, int64_t ldx, int64_t n, float* out, LoadW loadw) {
    panel4x2(p, x, x + ldx, n, out, loadw);
    panel4x2(p, x + 2 * ldx, x + 3 * ldx, n, out + 8, loadw);
  }
  static void panel4x4_f32(const float* p, const float* x, int64_t ldx, int64_t n, float* out) { panel4x4(p, x, ldx, n, out, load); }
  static void panel4x4_bf16(const uint16_t* p, const float* x, int64_t ldx, int64_t n, float* out) {
    panel4x4(p, x, ldx, n, out, load_bf16);
  }

  using I = __m256i;
  static constexpr int64_t B = 32;
  static I zero_i() { return _mm256_setzero_si256(); }
  static I load_i(const int8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
  // maddubs multiplies unsigned by signed bytes: |w| times x with w's sign moved onto x. Pairs
  // sum to at most 2·127·127 < 2^15, so the int16 step cannot saturate.
  static I dot_i8(I acc, I w, I x) {
    const I p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
  static constexpr auto dot_w4a8 = dot_w4a8_avx2;
  static constexpr auto dot4_w4a8 = dot4_w4a8_avx2;
  static constexpr auto gemm4x4_w4a8 = gemm4x4_w4a8_avx2;
  static constexpr bool kU8Dot = false;  // maddubs would saturate (w + 128)·x pairs in int16
  static constexpr GemmI8Panels gemm_i8_panels = gemm_i8_panels_avx2;  // int16 vpmaddwd on widened blocks
  static V u8_bits(const uint8_t* p, int shift, int floor) {  // 8 bytes, each (b << shift) max floor, as float bits
    const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
    return _mm256_castsi256_ps(_mm256_max_epi32(_mm256_sll_epi32(b, _mm_cvtsi32_si128(shift)), _mm256_set1_epi32(floor)));
  }
  static V load_w8(const int8_t* p) {
    int64_t b;
    std::memcpy(&b, p, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(b)));
  }
  static V load_w4(const uint8_t* p, const int8_t* lut) {  // 8 nibbles from 4 bytes, in element order
    int32_t b;
    std::memcpy(&b, p, 4);
    const __m128i v = _mm_cvtsi32_si128(b), m = _mm_set1_epi8(0x0F);
    const __m128i idx = _mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
    const __m128i vals = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)lut), idx);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(vals));
  }
  static int32_t hsum_i(I v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
  }
};
}  // namespace

const VecKernels* vec_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // constant-initialised: building the table runs no instruction of this ISA on a CPU without it
  static constexpr VecKernels k = SimdVec<Avx2>::table("avx2");
  return ok ? &k : nullptr;
}

}  // namespace clm::kernels
