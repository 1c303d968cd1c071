// Quantized linear layers on the GPU. W8A8 (cuda.h linear_i8): the activations quantized per token on
// the device with the CPU Int8Format's rules, an INT8 tensor-core GEMM (gemm_lt.cu), and the scales
// applied to the INT32 sums. NVFP4 W4A4 and ARCQuant (linear_nvfp4): Hopper has no FP4 tensor cores,
// so the E2M1 codes are expanded to int8 in registers and multiplied by dp4a, per block of 16 with
// its two scales: the CPU Nvfp4Format's arithmetic on CUDA cores, reading 4.5 bits per weight.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {

// One block per row of Kp codes (rows >= M and columns >= K are zeros: the GEMM's padding). The
// formulas and their order are Int8Format::matmul's, so the codes and scales are the CPU's bit for bit.
__global__ void k_quant_rows(int8_t* q, float* sx, const float* x, int64_t M, int64_t K, int64_t Kp, const float* cvec, int mode,
                             double alpha) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  int8_t* qr = q + row * Kp;
  for (int64_t j = K + threadIdx.x; j < Kp; j += blockDim.x) qr[j] = 0;
  if (row >= M) {
    for (int64_t j = threadIdx.x; j < K; j += blockDim.x) qr[j] = 0;
    if (threadIdx.x == 0) sx[row] = 0.f;
    return;
  }
  const float* xr = x + row * K;
  float m = 0.f;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) m = fmaxf(m, fabsf(mode == 1 ? xr[j] / cvec[j] : xr[j]));
  const float amax = block_max(m, sh);
  if (amax == 0.f) {
    for (int64_t j = threadIdx.x; j < K; j += blockDim.x) qr[j] = 0;
    if (threadIdx.x == 0) sx[row] = 0.f;
    return;
  }
  const float scale = mode == 2 ? float(pow(double(amax), alpha)) / 127.0f : amax / 127.0f;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    float v;
    if (mode == 2) {
      const float d = scale * cvec[j];
      v = d > 0 ? xr[j] / d : 0.f;
    } else {
      v = (mode == 1 ? xr[j] / cvec[j] : xr[j]) / scale;
    }
    qr[j] = int8_t(fminf(fmaxf(rintf(v), -127.f), 127.f));
  }
  if (threadIdx.x == 0) sx[row] = scale;
}

__global__ void k_dequant(float* y, int64_t ldy, const int32_t* acc, int64_t lda, const float* sx, const float* sw, int64_t M, int64_t N,
                          bool accumulate) {
  CLM_GRID_STRIDE(i, M * N) {
    const int64_t t = i / N, n = i % N;
    const float v = float(acc[t * lda + n]) * sx[t] * sw[n];
    float* o = y + t * ldy + n;
    *o = accumulate ? *o + v : v;
  }
}

}  // namespace

int64_t i8_pad(int64_t n) { return (n + 15) / 16 * 16; }

void linear_i8(float* y, const float* x, const int8_t* wq, const float* sw, int64_t M, int64_t N, int64_t K, const float* cvec, int mode,
               double alpha, int8_t* xq, float* sx, int32_t* acc, int64_t ldy, bool accumulate) {
  if (M == 0) return;
  if (mode < 0 || mode > 2 || (mode != 0 && !cvec)) throw std::invalid_argument("linear_i8: mode 0, or 1 / 2 with a column vector");
  const int64_t Mp = i8_pad(M), Np = i8_pad(N), Kp = i8_pad(K);
  k_quant_rows<<<unsigned(Mp), 256, 0, launch_stream()>>>(xq, sx, x, M, K, Kp, cvec, mode, alpha);
  check_launch("k_quant_rows");
  gemm_i8(int(Mp), int(Np), int(Kp), xq, wq, acc);
  k_dequant<<<grid_for(M * N), 256, 0, launch_stream()>>>(y, ldy > 0 ? ldy : N, acc, Np, sx, sw, M, N, accumulate);
  check_launch("k_dequant");
}

// ---- NVFP4 ----

namespace {

__device__ inline int exponent_of(float a) {  // floor(log2 a), a > 0
  int e;
  frexpf(a, &e);
  return e - 1;
}
// quant::kUE4M3.encode for a finite a >= 0: nearest, ties to even, saturating at 448, subnormals
// (a / q and the rounding are exact in float as they are in the CPU's double).
__device__ inline uint32_t ue4m3_encode(float a) {
  if (!(a > 0.f)) return 0;
  const int emin = -6;
  const float q = ldexpf(1.f, max(exponent_of(a), emin) - 3);
  const float v = fminf(448.f, rintf(a / q) * q);
  if (v == 0.f) return 0;
  const int ev = exponent_of(v);
  if (ev < emin) return uint32_t(v / ldexpf(1.f, emin - 3));
  return (uint32_t(ev + 7) << 3) | (uint32_t(v / ldexpf(1.f, ev - 3)) - 8u);
}
__device__ inline float ue4m3_decode(uint32_t b) {
  const uint32_t ef = (b >> 3) & 15u, mf = b & 7u;
  return ef ? __uint_as_float(((ef + 120u) << 23) | (mf << 20)) : float(mf) * 0.001953125f;
}
// quant::e2m1_encode (comparisons with the midpoints, ties to the even code).
__device__ inline uint32_t e2m1_encode(float x) {
  const float a = fabsf(x);
  const uint32_t m = uint32_t(a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
  return m | (signbit(x) ? 8u : 0u);
}
// quant::nvfp4_tensor_scale: the call's absmax spread over E2M1's 6 times UE4M3's 448.
__device__ inline float nvfp4_tensor_scale(float amax) { return amax > 0.f ? amax / (6.0f * 448.0f) : 1.0f; }
// Doubled E2M1 magnitudes {0, 1, 2, 3, 4, 6, 8, 12} as the bytes of two words, picked by prmt.
constexpr uint32_t kMagLo = 0x03020100u, kMagHi = 0x0C080604u;
__device__ inline int e2m1_doubled(uint32_t c) {
  const int m = int(__byte_perm(kMagLo, kMagHi, c & 7u) & 0xFFu);
  return c & 8u ? -m : m;
}
// Four E2M1 codes (the low four nibbles of w) as four doubled int8 values in one word.
__device__ inline uint32_t expand4(uint32_t w) {
  const uint32_t mag = __byte_perm(kMagLo, kMagHi, w & 0x7777u);
  const uint32_t neg = __byte_perm(0x0000FF00u, 0u, (w >> 3) & 0x1111u);  // 0xFF where the sign bit is set
  return __vsub4(mag ^ neg, neg);
}

// The activations' tensor scale needs the absmax of the whole call before any block of 16 can be
// encoded. A decoded token's few thousand values are read by every encoding block (from L2: cheaper
// than a kernel of its own); a longer call first reduces them to kNvParts partial maxima.
constexpr int64_t kNvOnePass = int64_t(1) << 15;
constexpr int kNvParts = int(kNvfp4AmaxFloats) - 1;

__global__ void k_nv_absmax(float* part, const float* x, int64_t n) {
  __shared__ float sh[32];
  wait_for_previous();
  float m = 0.f;
  CLM_GRID_STRIDE(i, n) m = fmaxf(m, fabsf(x[i]));
  m = block_max(m, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = m;
}

// Max over the 16 lanes of a half-warp (every lane of the warp takes part).
__device__ inline float max16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o, 16));
  return v;
}

// Nvfp4Format::matmul's encoding (nvfp4_encode_block) spread over the grid: a half-warp per block
// of 16 channels, a lane per channel; the block's absmax by shuffles, its lane 0 writing the scale.
// ARCQuant's residual blocks are encoded by the half-warp of their source block. amax[0] gets the
// call's absmax; with parts > 0, amax[1 .. parts] hold k_nv_absmax's partial maxima.
__global__ void __launch_bounds__(256) k_nv_encode(int8_t* xq, float* xs, float* amax, const float* x, const int32_t* perm, int64_t M,
                                                   int64_t K, int64_t ke, int64_t Kp, bool bf16_res, int parts) {
  __shared__ float sh[32];
  wait_for_previous();
  float mx = 0.f;
  if (parts == 0) {
#pragma unroll 8
    for (int64_t i = threadIdx.x; i < M * K; i += blockDim.x) mx = fmaxf(mx, fabsf(x[i]));
  } else {
    for (int i = threadIdx.x; i < parts; i += blockDim.x) mx = fmaxf(mx, amax[1 + i]);
  }
  mx = block_max(mx, sh);
  if (blockIdx.x == 0 && threadIdx.x == 0) amax[0] = mx;
  const float st = nvfp4_tensor_scale(mx);
  const int64_t nb = Kp / 16, main_blocks = (K + 15) / 16, pad_from = main_blocks + ke / 16, groups = M * main_blocks;
  const int j = threadIdx.x & 15;
  // Its scale for 16 values (one per lane), written by lane 0 at block `at`; returns the step.
  auto scale = [&](float v, float* s, int64_t at, bool write) {
    const float bm = max16(fabsf(v));
    uint32_t sc = ue4m3_encode(bm / (6.0f * st));
    if (sc == 0) sc = 1;  // the smallest subnormal scale
    const float dsc = ue4m3_decode(sc);
    if (write && j == 0) s[at] = dsc;
    return __fmul_rn(dsc, st);
  };
  // Every thread runs the same iterations (the shuffles need the whole warp); `live` marks real work.
  for (int64_t base = int64_t(blockIdx.x) * 16; base < groups; base += int64_t(gridDim.x) * 16) {
    const int64_t g = base + threadIdx.x / 16;
    const bool live = g < groups;
    const int64_t row = live ? g / main_blocks : 0, b = live ? g % main_blocks : 0, k = b * 16 + j;
    const bool in = live && k < K;
    int8_t* q = xq + row * Kp;
    float* s = xs + row * nb;
    const float v = in ? x[row * K + (perm ? perm[k] : k)] : 0.f;
    const float d = scale(v, s, b, live);
    const uint32_t c = in ? e2m1_encode(__fdiv_rn(v, d)) : 0u;
    if (live) q[k] = int8_t(e2m1_doubled(c));
    if (live && b == main_blocks - 1 && pad_from < nb) {  // the row's padding block
      q[pad_from * 16 + j] = 0;
      if (j == 0) s[pad_from] = 0.f;
    }
    if (ke > 0) {  // ARCQuant: what the codes missed in the last ke channels, quantized again at K + (k - (K - ke))
      const bool res = live && b * 16 >= K - ke;
      float r = __fsub_rn(v, __fmul_rn(float(e2m1_doubled(c)) * 0.5f, d));
      if (bf16_res) r = __bfloat162float(__float2bfloat16_rn(r));
      const int64_t at = K + b * 16 - (K - ke);
      const float dr = scale(res ? r : 0.f, s, at / 16, res);
      if (res) q[at + j] = int8_t(e2m1_doubled(e2m1_encode(__fdiv_rn(r, dr))));
    }
  }
}

// 32 weights (16 code bytes) as eight words of doubled int8 values.
__device__ inline void expand32(const uint4 u, uint32_t w8[8]) {
  w8[0] = expand4(u.x), w8[1] = expand4(u.x >> 16), w8[2] = expand4(u.y), w8[3] = expand4(u.y >> 16);
  w8[4] = expand4(u.z), w8[5] = expand4(u.z >> 16), w8[6] = expand4(u.w), w8[7] = expand4(u.w >> 16);
}

// One warp per output row, up to TT tokens: each lane takes 32 channels (16 code bytes, two block
// scales) at a time, two such chunks loaded before either is used, expands the codes to doubled int8
// and dots them with each token's doubled codes by dp4a; each block's integer sum is scaled by its
// two scales (as Nvfp4Format's CPU kernel does per block of 16). st_w: the weight tensor scale of each row.
template <int TT>
__global__ void k_nv_gemv(float* y, const uint8_t* codes, const uint8_t* scales, const float* st_w, const int8_t* xq, const float* xs,
                          const float* amax, int64_t N, int64_t Kp, int T, int64_t ldy, bool acc) {
  const int64_t n = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int64_t chunks = Kp / 32;
  const uint8_t* crow = codes + (n < N ? n : 0) * (Kp / 2);
  const uint8_t* srow = scales + (n < N ? n : 0) * (Kp / 16);
  float a[TT];
#pragma unroll
  for (int t = 0; t < TT; ++t) a[t] = 0.f;
  uint4 u[2];
  uint32_t wb[2];
  auto fetch = [&](int64_t c, int i) {
    if (c < chunks) {
      u[i] = __ldg(reinterpret_cast<const uint4*>(crow + c * 16));
      wb[i] = __ldg(reinterpret_cast<const uint16_t*>(srow + c * 2));
    }
  };
  if (n < N) fetch(lane, 0), fetch(lane + 32, 1);  // the weights need no earlier kernel
  wait_for_previous();
  if (n >= N) return;
  for (int64_t c0 = lane; c0 < chunks; c0 += 64) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t c = c0 + 32 * i;
      if (c >= chunks) break;
      uint32_t w8[8];
      expand32(u[i], w8);
      const float ws0 = ue4m3_decode(wb[i] & 0xFFu), ws1 = ue4m3_decode(wb[i] >> 8);
      fetch(c + 64, i);  // the next round's chunk, in flight while this one is used
#pragma unroll
      for (int t = 0; t < TT; ++t)
        if (t < T) {
          const int4* xp = reinterpret_cast<const int4*>(xq + t * Kp + c * 32);
          const int4 x0 = xp[0], x1 = xp[1];
          int s0 = __dp4a(int(w8[0]), x0.x, 0), s1 = __dp4a(int(w8[4]), x1.x, 0);
          s0 = __dp4a(int(w8[1]), x0.y, s0), s0 = __dp4a(int(w8[2]), x0.z, s0), s0 = __dp4a(int(w8[3]), x0.w, s0);
          s1 = __dp4a(int(w8[5]), x1.y, s1), s1 = __dp4a(int(w8[6]), x1.z, s1), s1 = __dp4a(int(w8[7]), x1.w, s1);
          const float* sx = xs + t * (Kp / 16) + c * 2;
          a[t] += float(s0) * ws0 * sx[0];
          a[t] += float(s1) * ws1 * sx[1];
        }
    }
  }
  const float st = st_w[n] * nvfp4_tensor_scale(amax[0]);
#pragma unroll
  for (int t = 0; t < TT; ++t)
    if (t < T) {
      const float v = warp_sum(a[t]);
      if (lane == 0) {
        float* o = y + t * ldy + n;
        *o = acc ? *o + st * (v * 0.25f) : st * (v * 0.25f);
      }
    }
}

// Rows of NVFP4 weights [N, Kp] as bf16 values code x block scale, eight a thread (one scale each).
__global__ void k_nv_expand_w(uint16_t* out, const uint8_t* codes, const uint8_t* scales, int64_t N, int64_t Kp) {
  wait_for_previous();
  const int64_t per_row = Kp / 8;
  CLM_GRID_STRIDE(i, N * per_row) {
    const int64_t n = i / per_row, k0 = (i % per_row) * 8;
    const uint32_t w = *reinterpret_cast<const uint32_t*>(codes + n * (Kp / 2) + k0 / 2);
    const float s = 0.5f * ue4m3_decode(scales[n * (Kp / 16) + k0 / 16]);
    uint32_t v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(float(e2m1_doubled((w >> (8 * j)) & 15u)) * s));
      const uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(float(e2m1_doubled((w >> (8 * j + 4)) & 15u)) * s));
      v[j] = lo | (hi << 16);
    }
    *reinterpret_cast<uint4*>(out + n * Kp + k0) = make_uint4(v[0], v[1], v[2], v[3]);
  }
}

// The activations' doubled codes [M, Kp] and block scales as bf16 values, likewise.
__global__ void k_nv_expand_x(uint16_t* out, const int8_t* xq, const float* xs, int64_t M, int64_t Kp) {
  wait_for_previous();
  CLM_GRID_STRIDE(i, M * Kp) {
    const int64_t t = i / Kp, k = i % Kp;
    out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(float(xq[i]) * (0.5f * xs[t * (Kp / 16) + k / 16])));
  }
}

// y (= or +=) st_w[n] st_x acc, rows ldy apart.
__global__ void k_nv_scale_out(float* y, int64_t ldy, const float* acc, const float* st_w, const float* amax, int64_t M, int64_t N,
                               bool accumulate) {
  wait_for_previous();
  const float sx = nvfp4_tensor_scale(amax[0]);
  CLM_GRID_STRIDE(i, M * N) {
    const int64_t t = i / N, n = i % N;
    const float v = st_w[n] * sx * acc[i];
    float* o = y + t * ldy + n;
    *o = accumulate ? *o + v : v;
  }
}

}  // namespace

int64_t nvfp4_pad(int64_t k) { return (k + 31) / 32 * 32; }

void linear_nvfp4(float* y, const float* x, const uint8_t* codes, const uint8_t* scales, const float* st_w, int64_t M, int64_t N,
                  int64_t K, int64_t ke, const int32_t* perm, bool bf16_residual, int8_t* xq, float* xs, float* amax, int64_t ldy,
                  bool accumulate, const Nvfp4GemmScratch& tc) {
  if (M == 0) return;
  if (ke < 0 || (ke > 0 && (ke % 16 || K % 16))) throw std::invalid_argument("linear_nvfp4: ke and K must be multiples of 16 when ke > 0");
  const int64_t Kp = nvfp4_pad(K + ke);
  int parts = 0;
  if (M * K > kNvOnePass) {
    parts = int(std::min<int64_t>(kNvParts, (M * K + 4095) / 4096));
    launch(k_nv_absmax, unsigned(parts), 256, "k_nv_absmax", amax + 1, x, M * K);
  }
  const int64_t groups = M * ((K + 15) / 16);
  launch(k_nv_encode, unsigned(std::min<int64_t>((groups + 15) / 16, 1024)), 256, "k_nv_encode", xq, xs, amax, x, perm, M, K, ke, Kp,
         bf16_residual, parts);
  if (ldy <= 0) ldy = N;
  if (M >= kNvfp4GemmTokens && tc.w && tc.x && tc.acc) {  // tensor cores: the weights expanded once for the whole call
    launch(k_nv_expand_w, grid_for(N * Kp / 8), 256, "k_nv_expand_w", tc.w, codes, scales, N, Kp);
    launch(k_nv_expand_x, grid_for(M * Kp), 256, "k_nv_expand_x", tc.x, static_cast<const int8_t*>(xq), static_cast<const float*>(xs),
           M, Kp);
    gemm_bf16(false, true, int(M), int(N), int(Kp), 1.f, tc.x, int(Kp), tc.w, int(Kp), 0.f, tc.acc, int(N));
    launch(k_nv_scale_out, grid_for(M * N), 256, "k_nv_scale_out", y, ldy, static_cast<const float*>(tc.acc), st_w,
           static_cast<const float*>(amax), M, N, accumulate);
    return;
  }
  for (int64_t t0 = 0; t0 < M; t0 += 8) {  // each weight read once per 8 tokens
    const int T = int(std::min<int64_t>(8, M - t0));
    const unsigned grid = unsigned((N + 7) / 8);
    if (T == 1)
      launch(k_nv_gemv<1>, grid, 256, "k_nv_gemv", y + t0 * ldy, codes, scales, st_w, xq + t0 * Kp, xs + t0 * (Kp / 16), amax, N, Kp, T, ldy,
             accumulate);
    else
      launch(k_nv_gemv<8>, grid, 256, "k_nv_gemv", y + t0 * ldy, codes, scales, st_w, xq + t0 * Kp, xs + t0 * (Kp / 16), amax, N, Kp, T, ldy,
             accumulate);
  }
}

}  // namespace clm::cuda
