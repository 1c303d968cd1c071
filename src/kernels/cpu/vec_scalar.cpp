#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/quads.h"
#include "kernels/cpu/vec.h"

namespace clm::kernels {

namespace {
float dot(const float* x, const float* y, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}
void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void scale(float a, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}
float vmax(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
float exp_sum(const float* x, float shift, float* y, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += (y[i] = std::exp(x[i] - shift));
  return s;
}
float sumsq(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}
float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(w[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += f * x[i];
  }
  return s;
}
void panel4_f32(const float* p, const float* x, int64_t n, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = 0;
  for (int64_t i = 0; i < n; i += 8, p += 32)
    for (int r = 0; r < 4; ++r) out[r] += dot(p + 8 * r, x + i, 8);
}
void panel4_bf16(const uint16_t* p, const float* x, int64_t n, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = 0;
  for (int64_t i = 0; i < n; i += 8, p += 32)
    for (int r = 0; r < 4; ++r) out[r] += dot_bf16(p + 8 * r, x + i, 8);
}
void panel4x4_f32(const float* p, const float* x, int64_t ldx, int64_t n, float* out) {
  for (int k = 0; k < 4; ++k) panel4_f32(p, x + k * ldx, n, out + 4 * k);
}
void panel4x4_bf16(const uint16_t* p, const float* x, int64_t ldx, int64_t n, float* out) {
  for (int k = 0; k < 4; ++k) panel4_bf16(p, x + k * ldx, n, out + 4 * k);
}
void widen_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = uint32_t(x[i]) << 16;
    std::memcpy(y + i, &u, 4);
  }
}
constexpr int64_t kScalarTile = 8;
void panel_gemm(const float* p, int64_t np, const float* xp, int64_t n, int64_t nt, float* out, int64_t ldo) {
  for (int64_t q = 0; q < np; ++q)
    for (int r = 0; r < 4; ++r)
      for (int64_t t = 0; t < nt; ++t) {
        const int64_t t0 = t / kScalarTile * kScalarTile, w = std::min(kScalarTile, nt - t0);
        float s = 0;
        for (int64_t i = 0; i < n; ++i) s += p[q * 4 * n + (i / 8) * 32 + 8 * r + i % 8] * xp[t0 * n + i * w + t - t0];
        out[(4 * q + r) * ldo + t] = s;
      }
}
void dot4_i8(const int8_t* w, const int8_t* x, int64_t n, int32_t* out) {
  for (int r = 0; r < 4; ++r) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; ++i) s += int32_t(w[(4 * (i / 64) + r) * 64 + i % 64]) * int32_t(x[i]);
    out[r] = s;
  }
}
void gemm4x4_i8(const int8_t* w, const int8_t* x, int64_t ldx, int64_t n, const int32_t*, int32_t* out) {
  for (int t = 0; t < 4; ++t) dot4_i8(w, x + t * ldx, n, out + 4 * t);
}
I8Codes quantize_i8(const float* x, float scale, int8_t* q, int64_t n) {
  I8Codes r;
  for (int64_t i = 0; i < n; ++i) {
    q[i] = int8_t(std::clamp(std::nearbyint(x[i] / scale), -127.0f, 127.0f));
    r.sum += q[i];
    r.zeroed += q[i] == 0 && x[i] != 0;
  }
  return r;
}
float absmax(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return std::numeric_limits<float>::quiet_NaN();
    m = std::max(m, std::fabs(x[i]));
  }
  return m;
}
// The E2M1 grid's midpoints: a value above a midpoint (or at one whose upper neighbour has the even
// code) rounds up; the doubled values of codes 0..7.
int64_t quantize_e2m1(const float* x, float d, int8_t* q, int64_t n) {
  static constexpr float mid[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  int64_t zeroed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] / d, a = std::fabs(v);
    int c = 0;
    for (int j = 0; j < 7; ++j) c += a > mid[j] || (a == mid[j] && j % 2 == 1);  // ties: codes 2, 4, 6 are even
    q[i] = int8_t(v < 0 ? -kE2M1Doubled[c] : kE2M1Doubled[c]);
    zeroed += c == 0 && x[i] != 0;
  }
  return zeroed;
}
void decode_scales(const uint8_t* c, ScaleCode kind, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = decode_scale(c[i], kind);
}
float dot_w8(const int8_t* w, const float* scales, int64_t block, const float* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += scales[i / block] * float(w[i]) * x[i];
  return acc;
}
float dot_w4(const uint8_t* w, const int8_t* lut, const float* scales, int64_t block, const float* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += scales[i / block] * float(lut[(w[i / 2] >> (4 * (i % 2))) & 0xF]) * x[i];
  return acc;
}
float dot_w4a8(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb, int64_t n,
               int64_t block) {
  float acc = 0;
  for (int64_t b = 0; b < n / block; ++b) {
    int32_t s = 0;
    for (int64_t i = b * block; i < (b + 1) * block; ++i) s += int32_t(lut[(w[i / 2] >> (4 * (i % 2))) & 0xF]) * x[i];
    for (int64_t j = b * block / 4; j < (b + 1) * block / 4; ++j) s += xb[j];
    acc += float(s) * ws[b] * xs[b];
  }
  return acc;
}
void dot4_w4a8(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs, const int32_t* xb,
               int64_t n, int64_t block, float* out) {
  for (int r = 0; r < 4; ++r) {
    uint8_t row[8192];
    float acc = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 8192 * 2) {  // row r's codes gathered a piece at a time
      const int64_t m = std::min<int64_t>(n - i0, 8192 * 2);
      for (int64_t j = 0; j < m / 2; ++j) row[j] = w[quad_offset(r, i0 / 2 + j, n / 2)];
      acc += dot_w4a8(row, lut, ws + r * ldws + i0 / block, x + i0, xs + i0 / block, xb + i0 / 4, m, block);
    }
    out[r] = acc;
  }
}
void gemm4x4_w4a8(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, int64_t ldx, const float* xs,
                  int64_t ldxs, const int32_t* xb, int64_t ldxb, int64_t n, int64_t block, float* out) {
  for (int t = 0; t < 4; ++t) dot4_w4a8(w, lut, ws, ldws, x + t * ldx, xs + t * ldxs, xb + t * ldxb, n, block, out + 4 * t);
}
}  // namespace

const VecKernels& vec_scalar() {
  static const VecKernels k{"scalar", dot, axpy, scale, vmax, exp_sum, sumsq, dot_bf16, panel4_f32, panel4_bf16, panel4x4_f32, panel4x4_bf16, panel_gemm, widen_bf16, kScalarTile, 1, dot4_i8, gemm4x4_i8, quantize_i8, quantize_e2m1, decode_scales, dot_w8, dot_w4, dot_w4a8, dot4_w4a8, gemm4x4_w4a8, nullptr, absmax};
  return k;
}

namespace {
const VecKernels* choose() {
  return [] {
    const char* want = std::getenv("CLM_ISA");
    if (want && std::strcmp(want, "scalar") == 0) return &vec_scalar();
    if (want && std::strcmp(want, "avx2") == 0 && vec_avx2()) return vec_avx2();
    if (want && std::strcmp(want, "avx512") == 0 && vec_avx512()) return vec_avx512();
    if (const VecKernels* k = vec_avx512vnni()) return k;
    if (const VecKernels* k = vec_avx512()) return k;
    if (const VecKernels* k = vec_avx2()) return k;
    return &vec_scalar();
  }();
}
const VecKernels* active = nullptr;
}  // namespace

const VecKernels& vec() {
  static const VecKernels* best = choose();
  return active ? *active : *best;
}

void set_vec(const VecKernels* k) { active = k; }

}  // namespace clm::kernels
