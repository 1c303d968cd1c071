// AVX-512 variants (compiled with -mavx512f -mavx512bw -mavx512vl -mfma).
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/vec.h"

namespace clm::kernels {

namespace {
inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

float dot(const float* x, const float* y, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}
void axpy(float a, const float* x, float* y, int64_t n) {
  __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
void scale(float a, float* x, int64_t n) {
  __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(va, _mm512_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] *= a;
}
float vmax(const float* x, int64_t n) {
  int64_t i = 0;
  float m = x[0];
  if (n >= 16) {
    __m512 v = _mm512_loadu_ps(x);
    for (i = 16; i + 16 <= n; i += 16) v = _mm512_max_ps(v, _mm512_loadu_ps(x + i));
    m = _mm512_reduce_max_ps(v);
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
float exp_sum(const float* x, float shift, float* y, int64_t n) {
  __m512 vs = _mm512_set1_ps(shift), acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
    _mm512_storeu_ps(y + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; i < n; ++i) s += (y[i] = std::exp(x[i] - shift));
  return s;
}
float sumsq(const float* x, int64_t n) { return dot(x, x, n); }
inline __m512 load_bf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(load_bf16(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(load_bf16(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load_bf16(w + i), _mm512_loadu_ps(x + i), a0);
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; ++i) {
    uint32_t u = uint32_t(w[i]) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    s += f * x[i];
  }
  return s;
}
// A 512-bit register holds two rows of one 8-column chunk; x's 8 values are broadcast to both
// halves. The halves are separated at the end.
inline __m512 load2_f32(const float* q) { return _mm512_loadu_ps(q); }
inline __m512 load2_bf16(const uint16_t* q) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)q)), 16));
}
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline void halves(__m512 a, float* out) {
  out[0] = hsum8(_mm512_castps512_ps256(a));
  out[1] = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
template <class W, class Load2>
inline void panel4(const W* p, const float* x, int64_t n, float* out, Load2 load2) {
  __m512 a01 = _mm512_setzero_ps(), a23 = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 8, p += 32) {
    __m512 xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x + i))));
    a01 = _mm512_fmadd_ps(load2(p), xv, a01);
    a23 = _mm512_fmadd_ps(load2(p + 16), xv, a23);
  }
  halves(a01, out);
  halves(a23, out + 2);
}
void panel4_f32(const float* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load2_f32); }
void panel4_bf16(const uint16_t* p, const float* x, int64_t n, float* out) { panel4(p, x, n, out, load2_bf16); }
}  // namespace

const VecKernels* vec_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  static const VecKernels k{"avx512", dot, axpy, scale, vmax, exp_sum, sumsq, dot_bf16, panel4_f32, panel4_bf16};
  return ok ? &k : nullptr;
}

}  // namespace clm::kernels
