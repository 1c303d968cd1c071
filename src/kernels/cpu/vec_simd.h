// The SIMD kernels of vec.h written once, over an ISA's register type S (included by vec_avx2.cpp
// and vec_avx512.cpp, each compiled with its own flags and each defining its S). S provides:
//   V, N (lanes); zero, set1, load, store, load_bf16 (N bf16 -> f32), add, sub, mul, fmadd(a,b,c)=a*b+c,
//   fnmadd(a,b,c)=c-a*b, min, max, round (to nearest), scale2(p, n) = p * 2^n, hsum, hmax;
//   panel4_f32 / panel4_bf16, panel4x4_f32 / panel4x4_bf16 (the panel layout maps onto registers
//   differently per width); G, the register-widths of vectors in a panel_gemm tile (4·G + G + 1
//   registers must fit);
//   I (integer register of B bytes), load_i (B bytes), dot_i8(acc, w, x): acc (int32 lanes) +=
//   products of signed bytes summed in groups of four, hsum_i (int32 lanes); dot_w4a8, dot4_w4a8, gemm4x4_w4a8 (vec.h);
//   div, store_i8 (N f32 holding integers in [-127, 127] -> N int8); u8_bits(p, shift, floor) (N bytes
//   b -> the floats whose bits are max(b << shift, floor)); load_w8 (N int8 -> f32), load_w4 (N nibbles from N/2 bytes, through a 16-entry int8 table -> f32).
// A new ISA tier (e.g. NEON) is one such S; a new kernel is one function here plus the scalar
// reference in vec_scalar.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/vec.h"

namespace clm::kernels {

template <class S> struct SimdVec {
  using V = typename S::V;
  static constexpr int64_t N = S::N;

  // exp(x) for x <= 0 range-reduced as 2^n * p(r), |r| <= ln2/2; relative error ~2e-7.
  static V exp(V x) {
    x = S::min(S::max(x, S::set1(-87.3f)), S::set1(88.3f));
    V n = S::round(S::mul(x, S::set1(1.44269504088896341f)));
    V r = S::fnmadd(n, S::set1(0.693359375f), x);
    r = S::fnmadd(n, S::set1(-2.12194440e-4f), r);
    V p = S::set1(1.9875691500e-4f);
    p = S::fmadd(p, r, S::set1(1.3981999507e-3f));
    p = S::fmadd(p, r, S::set1(8.3334519073e-3f));
    p = S::fmadd(p, r, S::set1(4.1665795894e-2f));
    p = S::fmadd(p, r, S::set1(1.6666665459e-1f));
    p = S::fmadd(p, r, S::set1(5.0000001201e-1f));
    p = S::fmadd(p, S::mul(r, r), S::add(r, S::set1(1.0f)));
    return S::scale2(p, n);
  }
  static float bf16(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  template <class W, class Load, class Scalar>
  static float dot_any(const W* x, const float* y, int64_t n, Load load, Scalar scalar) {
    V a0 = S::zero(), a1 = S::zero();
    int64_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
      a0 = S::fmadd(load(x + i), S::load(y + i), a0);
      a1 = S::fmadd(load(x + i + N), S::load(y + i + N), a1);
    }
    for (; i + N <= n; i += N) a0 = S::fmadd(load(x + i), S::load(y + i), a0);
    float s = S::hsum(S::add(a0, a1));
    for (; i < n; ++i) s += scalar(x[i]) * y[i];
    return s;
  }
  static float dot(const float* x, const float* y, int64_t n) {
    return dot_any(x, y, n, [](const float* p) { return S::load(p); }, [](float v) { return v; });
  }
  static float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
    return dot_any(w, x, n, [](const uint16_t* p) { return S::load_bf16(p); }, bf16);
  }
  static float sumsq(const float* x, int64_t n) { return dot(x, x, n); }
  static void axpy(float a, const float* x, float* y, int64_t n) {
    const V va = S::set1(a);
    int64_t i = 0;
    for (; i + N <= n; i += N) S::store(y + i, S::fmadd(va, S::load(x + i), S::load(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
  }
  static void scale(float a, float* x, int64_t n) {
    const V va = S::set1(a);
    int64_t i = 0;
    for (; i + N <= n; i += N) S::store(x + i, S::mul(va, S::load(x + i)));
    for (; i < n; ++i) x[i] *= a;
  }
  static float max(const float* x, int64_t n) {
    int64_t i = 0;
    float m = x[0];
    if (n >= N) {
      V v = S::load(x);
      for (i = N; i + N <= n; i += N) v = S::max(v, S::load(x + i));
      m = S::hmax(v);
    }
    for (; i < n; ++i) m = x[i] > m ? x[i] : m;
    return m;
  }
  static float exp_sum(const float* x, float shift, float* y, int64_t n) {
    const V vs = S::set1(shift);
    V acc = S::zero();
    int64_t i = 0;
    for (; i + N <= n; i += N) {
      V e = exp(S::sub(S::load(x + i), vs));
      S::store(y + i, e);
      acc = S::add(acc, e);
    }
    float s = S::hsum(acc);
    for (; i < n; ++i) s += (y[i] = std::exp(x[i] - shift));
    return s;
  }
  // panel_gemm (vec.h): tiles of G register-widths of vectors; 4·G accumulators, G vector loads
  // and 4 broadcasts per column feed 4·G FMAs. acc: add to out (a later block of columns).
  template <int G>
  static void gemm_tile(const float* p, const float* xp, int64_t ldt, int64_t n, float* out, int64_t ldo, bool acc) {
    V a[4][G];  // fully unrolled so that they live in registers (-O2 keeps rolled loops' arrays in memory)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) a[r][g] = acc ? S::load(out + r * ldo + g * N) : S::zero();
    for (int64_t c = 0; c < n; c += 8, p += 32)
#pragma GCC unroll 8
      for (int64_t j = 0; j < 8; ++j) {
        const float* xr = xp + (c + j) * ldt;
        V xv[G];
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) xv[g] = S::load(xr + g * N);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
          const V w = S::set1(p[8 * r + j]);
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) a[r][g] = S::fmadd(w, xv[g], a[r][g]);
        }
      }
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) S::store(out + r * ldo + g * N, a[r][g]);
  }
  template <int G>
  static void gemm_rest(const float* p, const float* xp, int64_t ldt, int64_t n, int64_t groups, float* out, int64_t ldo, bool acc) {
    if constexpr (G > 1)
      if (groups < G) return gemm_rest<G - 1>(p, xp, ldt, n, groups, out, ldo, acc);
    gemm_tile<G>(p, xp, ldt, n, out, ldo, acc);
  }
  static void widen_bf16(const uint16_t* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + N <= n; i += N) S::store(y + i, S::load_bf16(x + i));
    for (; i < n; ++i) y[i] = bf16(x[i]);
  }
  // Columns in blocks whose slice of a tile (~16 KiB) stays in L1 while every panel uses it.
  static void panel_gemm(const float* p, int64_t np, const float* xp, int64_t n, int64_t nt, float* out, int64_t ldo) {
    constexpr int G = S::G;
    constexpr int64_t T = G * N, KB = (4096 / T) / 8 * 8 > 8 ? (4096 / T) / 8 * 8 : 8;
    for (int64_t k0 = 0; k0 < n; k0 += KB) {
      const int64_t kw = n - k0 < KB ? n - k0 : KB;
      for (int64_t t = 0; t < nt; t += T) {
        const int64_t w = nt - t < T ? nt - t : T;
        const float* xt = xp + t * n + k0 * w;
        for (int64_t q = 0; q < np; ++q) {
          const float* pq = p + q * 4 * n + k0 * 4;  // column k0 of panel q (chunks of 4x8)
          float* o = out + 4 * q * ldo + t;
          if (w == T) gemm_tile<G>(pq, xt, T, kw, o, ldo, k0 > 0);
          else gemm_rest<G>(pq, xt, w, kw, w / N, o, ldo, k0 > 0);
        }
      }
    }
  }
  static void dot4_i8(const int8_t* w, const int8_t* x, int64_t n, int32_t* out) {
    using I = typename S::I;
    I a0 = S::zero_i(), a1 = S::zero_i(), a2 = S::zero_i(), a3 = S::zero_i();
    for (int64_t i = 0; i < n; i += 64, w += 256) {  // one chunk of 64 columns of the four rows
      prefetch_ahead<256>(w);
      for (int64_t j = 0; j < 64; j += S::B) {
        const I xv = S::load_i(x + i + j);
        a0 = S::dot_i8(a0, S::load_i(w + j), xv);
        a1 = S::dot_i8(a1, S::load_i(w + 64 + j), xv);
        a2 = S::dot_i8(a2, S::load_i(w + 128 + j), xv);
        a3 = S::dot_i8(a3, S::load_i(w + 192 + j), xv);
      }
    }
    out[0] = S::hsum_i(a0), out[1] = S::hsum_i(a1), out[2] = S::hsum_i(a2), out[3] = S::hsum_i(a3);
  }
  // A 4x4 tile. With VNNI (S::kU8Dot) the tier's own S::gemm4x4: the weights' sign bit flipped
  // makes them unsigned, w + 128, so that one dpbusd takes each pair; sum (w + 128)·x = sum w·x +
  // 128·sum x, and the sums of x (xsum) take the 128 back out. Else
  // the tier's signed dot_i8.
  static void gemm4x4_i8(const int8_t* w, const int8_t* x, int64_t ldx, int64_t n, const int32_t* xsum, int32_t* out) {
    if constexpr (S::kU8Dot) {
      S::gemm4x4(w, x, ldx, n, xsum, out);
      return;
    }
    using I = typename S::I;
    I acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = S::zero_i();
    for (int64_t i = 0; i < n; i += 64, w += 256)
      for (int64_t j = 0; j < 64; j += S::B) {
        I wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) wv[r] = S::load_i(w + 64 * r + j);
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
          const I xv = S::load_i(x + t * ldx + i + j);
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) acc[4 * t + r] = S::dot_i8(acc[4 * t + r], wv[r], xv);
        }
      }
    for (int t = 0; t < 4; ++t)
      for (int r = 0; r < 4; ++r) out[4 * t + r] = S::hsum_i(acc[4 * t + r]);
  }
  // The codes' sum and the zero codes are counted in f32 lanes (exact below 2^24), in chunks of 4096
  // elements: zeroed = (codes equal to 0) - (inputs equal to 0), |x|·2^100·2^100 >= 1 for every
  // non-zero float (subnormals included), and |v| >= 1 for every non-zero code.
  static I8Codes quantize_i8(const float* x, float scale, int8_t* q, int64_t n) {
    const V d = S::set1(scale), lo = S::set1(-127.0f), hi = S::set1(127.0f), z = S::zero(), one = S::set1(1.0f), big = S::set1(0x1p100f);
    I8Codes r;
    int64_t i = 0;
    while (i + N <= n) {
      const int64_t end = std::min(n, i + 4096);
      V sum = z, zero_codes = z, nonzero_x = z;
      int64_t count = 0;
      for (; i + N <= end; i += N, count += N) {
        const V xv = S::load(x + i), v = S::min(S::max(S::round(S::div(xv, d)), lo), hi);
        S::store_i8(q + i, v);
        sum = S::add(sum, v);
        zero_codes = S::add(zero_codes, S::max(z, S::sub(one, S::max(v, S::sub(z, v)))));
        nonzero_x = S::add(nonzero_x, S::min(one, S::mul(S::mul(S::max(xv, S::sub(z, xv)), big), big)));
      }
      r.sum += int64_t(S::hsum(sum));
      r.zeroed += int64_t(S::hsum(zero_codes)) - (count - int64_t(S::hsum(nonzero_x)));
    }
    for (; i < n; ++i) {
      q[i] = int8_t(std::fmin(std::fmax(std::nearbyint(x[i] / scale), -127.0f), 127.0f));
      r.sum += q[i];
      r.zeroed += q[i] == 0 && x[i] != 0;
    }
    return r;
  }
  // NaN once any element is: x·0 is 0 for finite x and NaN for Inf and NaN.
  static float absmax(const float* x, int64_t n) {
    const V z = S::zero();
    V m = z, bad = z;
    int64_t i = 0;
    for (; i + N <= n; i += N) {
      const V xv = S::load(x + i);
      m = S::max(m, S::max(xv, S::sub(z, xv)));
      bad = S::fmadd(xv, z, bad);
    }
    float r = S::hmax(m) + S::hsum(bad);
    for (; i < n; ++i) r = std::isfinite(x[i]) ? std::max(r, std::fabs(x[i])) : std::numeric_limits<float>::quiet_NaN();
    return r;
  }
  // E2M1 rounding of a >= 0, doubled: the grid 0, 0.5, .., 2 (steps 0.5), 3, 4 (steps 1), 6 (step 2)
  // as three clamped pieces, each a round-half-even on an exactly computed value (a - 2 and a - 4
  // are exact in their ranges); the pieces' ties are the grid's ties. 2·(0..2) + 2·(0..2) + 4·(0..1).
  static V e2m1_doubled(V a) {
    const V z = S::zero(), two = S::set1(2.0f), four = S::set1(4.0f);
    const V r1 = S::round(S::mul(S::min(a, two), two));
    const V r2 = S::mul(S::round(S::max(S::sub(S::min(a, four), two), z)), two);
    const V r3 = S::mul(S::round(S::mul(S::max(S::sub(S::min(a, S::set1(6.0f)), four), z), S::set1(0.5f))), four);
    return S::add(S::add(r1, r2), r3);
  }
  // The zeroed count as quantize_i8's: per lane, 1 for a zero code (doubled codes are integers) and
  // 1 for a non-zero x (|x| scaled past 1, subnormals included); exact in floats below 2^24 lanes.
  static int64_t quantize_e2m1(const float* x, float d, int8_t* q, int64_t n) {
    const V vd = S::set1(d), z = S::zero(), one = S::set1(1.0f), big = S::set1(0x1p100f);
    V zero_codes = z, nonzero_x = z;
    int64_t i = 0;
    for (; i + N <= n; i += N) {
      const V xv = S::load(x + i), v = S::div(xv, vd);
      const V r = S::sub(e2m1_doubled(S::max(v, z)), e2m1_doubled(S::max(S::sub(z, v), z)));
      S::store_i8(q + i, r);
      zero_codes = S::add(zero_codes, S::max(z, S::sub(one, S::max(r, S::sub(z, r)))));
      nonzero_x = S::add(nonzero_x, S::min(one, S::mul(S::mul(S::max(xv, S::sub(z, xv)), big), big)));
    }
    int64_t zeroed = i ? int64_t(S::hsum(zero_codes)) - (i - int64_t(S::hsum(nonzero_x))) : 0;
    for (; i < n; ++i) {
      const float v = x[i] / d, a = std::fabs(v);
      const float r = std::nearbyint(2 * std::fmin(a, 2.0f)) + 2 * std::nearbyint(std::fmax(std::fmin(a, 4.0f) - 2, 0.0f)) +
                      4 * std::nearbyint(std::fmax(std::fmin(a, 6.0f) - 4, 0.0f) * 0.5f);
      q[i] = int8_t(v < 0 ? -r : r);
      zeroed += r == 0 && x[i] != 0;
    }
    return zeroed;
  }
  // Scale codes through their bits: an unsigned E4M3 byte b shifted left by 20 is a float of value
  // b's times 2^-120 (a normal b: exponent e + 120 and the three mantissa bits; a subnormal: the f32
  // denormal m·2^-129), so one multiply by 2^120 gives it exactly. E8M0 e shifted by 23 is 2^(e-127)
  // for e >= 1; e = 0 (bits 0) takes 2^-127's bits (0x00400000) by an integer max.
  static void decode_scales(const uint8_t* c, ScaleCode kind, float* out, int64_t n) {
    int64_t i = 0;
    if (kind == ScaleCode::ue4m3) {
      const V k = S::set1(0x1p120f);
      for (; i + N <= n; i += N) S::store(out + i, S::mul(S::u8_bits(c + i, 20, 0), k));
    } else {
      for (; i + N <= n; i += N) S::store(out + i, S::u8_bits(c + i, 23, 0x00400000));
    }
    for (; i < n; ++i) out[i] = decode_scale(c[i], kind);
  }
  // Weight-only rows: each vector of codes widened to f32 and multiplied by its block's scale, then
  // accumulated against x (no reduction per block: blocks of 16 would pay a horizontal sum each).
  template <class LoadW, class Code>
  static float dot_wblocks(const float* scales, int64_t block, const float* x, int64_t n, LoadW loadw, Code code) {
    V a0 = S::zero(), a1 = S::zero();
    float tail = 0;
    for (int64_t b0 = 0, bi = 0; b0 < n; b0 += block, ++bi) {
      const int64_t e = n - b0 < block ? n : b0 + block;
      const V sc = S::set1(scales[bi]);
      int64_t i = b0;
      for (; i + 2 * N <= e; i += 2 * N) {
        a0 = S::fmadd(S::mul(loadw(i), sc), S::load(x + i), a0);
        a1 = S::fmadd(S::mul(loadw(i + N), sc), S::load(x + i + N), a1);
      }
      for (; i + N <= e; i += N) a0 = S::fmadd(S::mul(loadw(i), sc), S::load(x + i), a0);
      for (; i < e; ++i) tail += scales[bi] * code(i) * x[i];
    }
    return S::hsum(S::add(a0, a1)) + tail;
  }
  static float dot_w8(const int8_t* w, const float* scales, int64_t block, const float* x, int64_t n) {
    return dot_wblocks(
        scales, block, x, n,
        [w](int64_t i) {
          if (i % 64 == 0) prefetch_ahead<64>(w + i);
          return S::load_w8(w + i);
        },
        [w](int64_t i) { return float(w[i]); });
  }
  static float dot_w4(const uint8_t* w, const int8_t* lut, const float* scales, int64_t block, const float* x, int64_t n) {
    return dot_wblocks(
        scales, block, x, n,
        [w, lut](int64_t i) {
          if (i % 128 == 0) prefetch_ahead<64>(w + i / 2);
          return S::load_w4(w + i / 2, lut);
        },
        [w, lut](int64_t i) { return float(lut[(w[i / 2] >> (4 * (i % 2))) & 0xF]); });
  }
  static constexpr VecKernels table(const char* isa) {
    return {isa, dot, axpy, scale, max, exp_sum, sumsq, dot_bf16, S::panel4_f32, S::panel4_bf16, S::panel4x4_f32, S::panel4x4_bf16, panel_gemm, widen_bf16, S::G * N, N, dot4_i8, gemm4x4_i8, quantize_i8, quantize_e2m1, decode_scales, dot_w8, dot_w4, S::dot_w4a8, S::dot4_w4a8, S::gemm4x4_w4a8, S::gemm_i8_panels, absmax};
  }
};

}  // namespace clm::kernels
