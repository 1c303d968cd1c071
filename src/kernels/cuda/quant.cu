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

// One block: the absmax over the call's M x K activations (the tensor scale), then every token's
// blocks of 16 channels, one per thread at a time: Nvfp4Format::matmul's encoding (nvfp4_encode_block),
// ARCQuant's residual written by the thread of its source block.
__global__ void __launch_bounds__(256) k_nv_quant(int8_t* xq, float* xs, float* amax, const float* x, const int32_t* perm, int64_t M, int64_t K, int64_t ke,
                           int64_t Kp, bool bf16_res) {
  __shared__ float sh[32];
  wait_for_previous();
  float mx = 0.f;
  for (int64_t i = threadIdx.x; i < M * K; i += blockDim.x) mx = fmaxf(mx, fabsf(x[i]));
  mx = block_max(mx, sh);
  if (threadIdx.x == 0) amax[0] = mx;
  const float st = nvfp4_tensor_scale(mx);
  const int64_t nb = Kp / 16, main_blocks = (K + 15) / 16, pad_from = main_blocks + ke / 16;
  for (int64_t i = threadIdx.x; i < M * nb; i += blockDim.x) {
    const int64_t row = i / nb, b = i % nb;
    const float* xr = x + row * K;
    int8_t* q = xq + row * Kp;
    float* s = xs + row * nb;
    auto encode = [&](const float* v, int64_t at) {  // the block scale of 16 values at channel `at`; returns its step
      float bm = 0.f;
      for (int j = 0; j < 16; ++j) bm = fmaxf(bm, fabsf(v[j]));
      uint32_t sc = ue4m3_encode(bm / (6.0f * st));
      if (sc == 0) sc = 1;  // the smallest subnormal scale
      const float dsc = ue4m3_decode(sc);
      s[at / 16] = dsc;
      return __fmul_rn(dsc, st);
    };
    if (b >= main_blocks) {
      if (b >= pad_from) {
        for (int j = 0; j < 16; ++j) q[b * 16 + j] = 0;
        s[b] = 0.f;
      }
      continue;  // residual blocks: written by their source blocks
    }
    const int64_t k0 = b * 16;
    const int m = K - k0 < 16 ? int(K - k0) : 16;
    float v[16];
    for (int j = 0; j < 16; ++j) v[j] = j < m ? xr[perm ? perm[k0 + j] : k0 + j] : 0.f;
    const float d = encode(v, k0);
    uint32_t c[16];
    for (int j = 0; j < 16; ++j) {
      c[j] = j < m ? e2m1_encode(__fdiv_rn(v[j], d)) : 0u;
      q[k0 + j] = int8_t(e2m1_doubled(c[j]));
    }
    if (ke > 0 && k0 >= K - ke) {  // ARCQuant: what the codes missed, quantized again at K + (k0 - (K - ke))
      float r[16];
      for (int j = 0; j < 16; ++j) {
        r[j] = __fsub_rn(v[j], __fmul_rn(float(e2m1_doubled(c[j])) * 0.5f, d));
        if (bf16_res) r[j] = __bfloat162float(__float2bfloat16_rn(r[j]));
      }
      const int64_t at = K + k0 - (K - ke);
      const float dr = encode(r, at);
      for (int j = 0; j < 16; ++j) q[at + j] = int8_t(e2m1_doubled(e2m1_encode(__fdiv_rn(r[j], dr))));
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

}  // namespace

int64_t nvfp4_pad(int64_t k) { return (k + 31) / 32 * 32; }

void linear_nvfp4(float* y, const float* x, const uint8_t* codes, const uint8_t* scales, const float* st_w, int64_t M, int64_t N,
                  int64_t K, int64_t ke, const int32_t* perm, bool bf16_residual, int8_t* xq, float* xs, float* amax, int64_t ldy,
                  bool accumulate) {
  if (M == 0) return;
  if (ke < 0 || (ke > 0 && (ke % 16 || K % 16))) throw std::invalid_argument("linear_nvfp4: ke and K must be multiples of 16 when ke > 0");
  const int64_t Kp = nvfp4_pad(K + ke);
  launch(k_nv_quant, 1, 256, "k_nv_quant", xq, xs, amax, x, perm, M, K, ke, Kp, bf16_residual);
  if (ldy <= 0) ldy = N;
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
