// Inference kernels (decode.h): bandwidth-bound matrix-vector products, rotation and KV append at
// device-held positions, split-key attention over the cache, and streams / graphs.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/decode.h"

namespace clm::cuda {

namespace {
cudaStream_t g_stream = nullptr;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}
}  // namespace

cudaStream_t launch_stream() { return g_stream; }
void set_stream(Stream s) { g_stream = static_cast<cudaStream_t>(s); }
Stream current_stream() { return g_stream; }

Stream stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}
void stream_destroy(Stream s) { cudaStreamDestroy(static_cast<cudaStream_t>(s)); }
void stream_sync(Stream s) { check(cudaStreamSynchronize(static_cast<cudaStream_t>(s)), "decode step"); }
void capture_begin(Stream s) { check(cudaStreamBeginCapture(static_cast<cudaStream_t>(s), cudaStreamCaptureModeThreadLocal), "begin capture"); }
Graph capture_end(Stream s) {
  cudaGraph_t g = nullptr;
  check(cudaStreamEndCapture(static_cast<cudaStream_t>(s), &g), "end capture");
  cudaGraphExec_t x = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&x, g, 0);
  cudaGraphDestroy(g);
  check(e, "graph instantiate");
  return x;
}
void graph_launch(Graph g, Stream s) { check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g), static_cast<cudaStream_t>(s)), "graph launch"); }
void graph_destroy(Graph g) {
  if (g) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g));
}
void* host_alloc(size_t nbytes) {
  void* p = nullptr;
  check(cudaMallocHost(&p, nbytes), "cudaMallocHost");
  return p;
}
void host_free(void* p) {
  if (p) cudaFreeHost(p);
}
void copy_async(void* dst, const void* src, size_t nbytes, Stream s) {
  check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, static_cast<cudaStream_t>(s)), "cudaMemcpyAsync");
}

namespace {

// Eight consecutive weights as floats (16- or 32-byte aligned loads that skip L1: read once).
__device__ inline void load8(const uint16_t* p, float w[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) w[2 * i] = __uint_as_float(v[i] << 16), w[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
}
__device__ inline void load8(const float* p, float w[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
}
__device__ inline float to_f(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ inline float to_f(float v) { return v; }

// WPR warps per output row (a block of 8 warps holds 8 / WPR rows): the row's lanes stride over K
// eight weights at a time, each dotting them with up to TT tokens' activations; the partial sums
// are reduced across lanes, then across the row's warps. Several warps per row keep enough loads
// in flight when a matrix has few rows (a 2048 x 8192 down projection fills a quarter of the SMs'
// warp slots with one warp per row).
template <class W, int TT, bool VEC>
__global__ void k_gemv(float* y, const W* w, const float* bias, const float* x, int64_t N, int64_t K, int T, bool acc, int wpr) {
  __shared__ float part[8][TT];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = warp % wpr;
  const int64_t n = int64_t(blockIdx.x) * (8 / wpr) + warp / wpr;
  float a[TT];
#pragma unroll
  for (int t = 0; t < TT; ++t) a[t] = 0.f;
  const W* row = w + (n < N ? n : 0) * K;
  const int64_t stride = int64_t(wpr) * 32, c0 = int64_t(sub) * 32 + lane;
  // The first weights do not depend on the previous kernel: load them before waiting for it.
  constexpr int kPre = 2;
  float pre[kPre][8];
  if (VEC && n < N) {
#pragma unroll
    for (int i = 0; i < kPre; ++i)
      if (c0 + i * stride < K / 8) load8(row + (c0 + i * stride) * 8, pre[i]);
  }
  wait_for_previous();
  if (n < N) {
    if (VEC) {
#pragma unroll
      for (int i = 0; i < kPre; ++i) {
        const int64_t k = (c0 + i * stride) * 8;
        if (k >= K) break;
#pragma unroll
        for (int t = 0; t < TT; ++t)
          if (t < T) {
            const float4 x0 = *reinterpret_cast<const float4*>(x + t * K + k), x1 = *reinterpret_cast<const float4*>(x + t * K + k + 4);
            const float* wv = pre[i];
            a[t] += wv[0] * x0.x + wv[1] * x0.y + wv[2] * x0.z + wv[3] * x0.w + wv[4] * x1.x + wv[5] * x1.y + wv[6] * x1.z + wv[7] * x1.w;
          }
      }
#pragma unroll 4
      for (int64_t c = c0 + kPre * stride; c < K / 8; c += stride) {
        const int64_t k = c * 8;
        float wv[8];
        load8(row + k, wv);
#pragma unroll
        for (int t = 0; t < TT; ++t)
          if (t < T) {
            const float4 x0 = *reinterpret_cast<const float4*>(x + t * K + k), x1 = *reinterpret_cast<const float4*>(x + t * K + k + 4);
            a[t] += wv[0] * x0.x + wv[1] * x0.y + wv[2] * x0.z + wv[3] * x0.w + wv[4] * x1.x + wv[5] * x1.y + wv[6] * x1.z + wv[7] * x1.w;
          }
      }
    } else {
      for (int64_t k = c0; k < K; k += stride) {
        const float wv = to_f(row[k]);
#pragma unroll
        for (int t = 0; t < TT; ++t)
          if (t < T) a[t] += wv * x[t * K + k];
      }
    }
  }
#pragma unroll
  for (int t = 0; t < TT; ++t) {
    const float v = warp_sum(a[t]);
    if (lane == 0) part[warp][t] = v;
  }
  __syncthreads();
  if (sub == 0 && lane < T && lane < TT && n < N) {
    float v = 0.f;
    for (int s = 0; s < wpr; ++s) v += part[warp + s][lane];
    float* o = y + int64_t(lane) * N + n;
    *o = (acc ? *o : 0.f) + v + (bias ? bias[n] : 0.f);
  }
}

template <class W>
void gemv(float* y, const W* w, const float* bias, const float* x, int64_t N, int64_t K, int64_t T, bool acc) {
  if (N == 0 || T == 0) return;
  const bool vec = K % 8 == 0 && reinterpret_cast<uintptr_t>(w) % 32 == 0 && reinterpret_cast<uintptr_t>(x) % 32 == 0;
  // Warps per row: up to 8, while the matrix has fewer than 16k row-warps and each warp keeps at
  // least one full 256-weight stride of work.
  int wpr = 1;
  while (wpr < 8 && N * wpr < 16384 && K >= int64_t(wpr) * 2 * 256) wpr *= 2;
  const int rows = 8 / wpr;
  const unsigned grid = unsigned((N + rows - 1) / rows);
  for (int64_t t0 = 0; t0 < T; t0 += 8) {
    const int nt = int(T - t0 < 8 ? T - t0 : 8);
    float* yt = y + t0 * N;
    const float* xt = x + t0 * K;
    if (nt == 1 && vec) launch(k_gemv<W, 1, true>, grid, 256, "k_gemv", yt, w, bias, xt, N, K, 1, acc, wpr);
    else if (nt == 1) launch(k_gemv<W, 1, false>, grid, 256, "k_gemv", yt, w, bias, xt, N, K, 1, acc, wpr);
    else if (vec) launch(k_gemv<W, 8, true>, grid, 256, "k_gemv", yt, w, bias, xt, N, K, nt, acc, wpr);
    else launch(k_gemv<W, 8, false>, grid, 256, "k_gemv", yt, w, bias, xt, N, K, nt, acc, wpr);
    check_launch("k_gemv");
  }
}

// Grid (token, piece): each block takes blockDim.x rotation pairs and as many value elements of its
// token, so that one decoded token spreads over (H + Hkv)·hd/2 / blockDim.x blocks instead of one.
__global__ void k_rope_append(float* qkv, float* kc, float* vc, const float* rot, const int32_t* pos0, int64_t H, int64_t Hkv,
                              int64_t hd, bool interleaved) {
  wait_for_previous();
  const int64_t t = blockIdx.x, p = *pos0 + t, half = hd / 2, ld = (H + 2 * Hkv) * hd;
  const int64_t first = int64_t(blockIdx.y) * blockDim.x, stride = int64_t(gridDim.y) * blockDim.x;
  float* row = qkv + t * ld;
  for (int64_t i = first + threadIdx.x; i < (H + Hkv) * half; i += stride) {
    const int64_t head = i / half, j = i % half;
    float* h = row + head * hd;
    const int64_t a = interleaved ? 2 * j : j, b = interleaved ? 2 * j + 1 : j + half;
    float xa = h[a], xb = h[b];
    if (rot) {
      const float c = rot[p * hd + j], s = rot[p * hd + half + j];
      const float ra = c * xa - s * xb, rb = s * xa + c * xb;
      xa = ra, xb = rb;
      h[a] = xa, h[b] = xb;
    }
    if (head >= H) {
      float* dst = kc + (p * Hkv + (head - H)) * hd;
      dst[a] = xa, dst[b] = xb;
    }
  }
  for (int64_t i = first + threadIdx.x; i < Hkv * hd; i += stride) vc[p * Hkv * hd + i] = row[(H + Hkv) * hd + i];
}

__global__ void k_add_position_rows(float* x, const float* table, const int32_t* pos0, int64_t D) {
  wait_for_previous();
  const int64_t t = blockIdx.x, p = *pos0 + t;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) x[t * D + i] += table[p * D + i];
}

// Block (chunk c, head h, token t): the scores of up to kDecodeChunk keys, their softmax relative to
// the chunk's max, and the probability-weighted sum of their values; (m, l) = (max, sum of exp).
constexpr int kThreads = 256;
static_assert(kDecodeChunk == kThreads, "one key per thread");
__global__ void k_attn_partial(float* part, const float* qkv, const float* kc, const float* vc, const int32_t* pos0, int64_t T,
                               int64_t H, int64_t Hkv, int64_t hd, int64_t chunks, float scale, const float* slopes) {
  wait_for_previous();
  __shared__ float q[256], sc[kThreads], sh[32];
  __shared__ float4 red[kThreads];
  const int64_t c = blockIdx.x, h = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
  const int64_t p = *pos0 + t, j0 = c * kDecodeChunk, slot = (t * H + h) * chunks + c;
  float* ml = part + T * H * chunks * hd + 2 * slot;
  if (j0 > p) {
    if (tid == 0) ml[0] = -INFINITY, ml[1] = 0.f;
    return;
  }
  const int64_t len = (p + 1 - j0) < kDecodeChunk ? (p + 1 - j0) : kDecodeChunk, kvh = h / (H / Hkv);
  const float* qh = qkv + t * (H + 2 * Hkv) * hd + h * hd;
  for (int64_t d = tid; d < hd; d += kThreads) q[d] = qh[d] * scale;
  __syncthreads();
  float s = -INFINITY;
  if (tid < len) {
    const int64_t j = j0 + tid;
    const float* kj = kc + (j * Hkv + kvh) * hd;
    float dot = 0.f;
    if (hd % 4 == 0) {
#pragma unroll 8
      for (int64_t d = 0; d < hd; d += 4) {
        const float4 kv = *reinterpret_cast<const float4*>(kj + d);
        dot += q[d] * kv.x + q[d + 1] * kv.y + q[d + 2] * kv.z + q[d + 3] * kv.w;
      }
    } else {
      for (int64_t d = 0; d < hd; ++d) dot += q[d] * kj[d];
    }
    s = dot - (slopes ? slopes[h] * float(p - j) : 0.f);
  }
  const float m = block_max(s, sh);
  const float e = tid < len ? __expf(s - m) : 0.f;
  sc[tid] = e;
  const float l = block_sum(e, sh);  // synchronises: sc is complete
  // Values: thread (group g, dims 4 d4 .. 4 d4 + 3) sums every G-th key of the chunk, its loads
  // unrolled so that several are in flight (a sequential loop here waited on one load per key).
  if (hd % 4 == 0) {
    const int64_t q4 = hd / 4, G = kThreads / q4, d4 = tid % q4, g = tid / q4;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (g < G) {
#pragma unroll 8
      for (int64_t jj = g; jj < len; jj += G) {
        const float w = sc[jj];
        const float4 v = *reinterpret_cast<const float4*>(vc + ((j0 + jj) * Hkv + kvh) * hd + 4 * d4);
        acc.x += w * v.x, acc.y += w * v.y, acc.z += w * v.z, acc.w += w * v.w;
      }
    }
    red[tid] = acc;
    __syncthreads();
    if (tid < q4) {
      float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int64_t gg = 0; gg < G; ++gg) {
        const float4 r = red[gg * q4 + tid];
        o.x += r.x, o.y += r.y, o.z += r.z, o.w += r.w;
      }
      *reinterpret_cast<float4*>(part + slot * hd + 4 * tid) = o;
    }
  } else {
    float* red1 = reinterpret_cast<float*>(red);
    const int64_t G = kThreads / hd, d = tid % hd, g = tid / hd;
    float acc = 0.f;
    if (g < G)
#pragma unroll 8
      for (int64_t jj = g; jj < len; jj += G) acc += sc[jj] * vc[((j0 + jj) * Hkv + kvh) * hd + d];
    red1[tid] = acc;
    __syncthreads();
    if (tid < hd) {
      float o = 0.f;
      for (int64_t gg = 0; gg < G; ++gg) o += red1[gg * hd + tid];
      part[slot * hd + tid] = o;
    }
  }
  if (tid == 0) ml[0] = m, ml[1] = l;
}

__global__ void k_attn_combine(float* out, const float* part, int64_t T, int64_t H, int64_t hd, int64_t chunks) {
  wait_for_previous();
  const int64_t h = blockIdx.x, t = blockIdx.y, base = (t * H + h) * chunks;
  const float* ml = part + T * H * chunks * hd;
  float M = -INFINITY;
  for (int64_t c = 0; c < chunks; ++c) M = fmaxf(M, ml[2 * (base + c)]);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float num = 0.f, den = 0.f;
    for (int64_t c = 0; c < chunks; ++c) {
      const float l = ml[2 * (base + c) + 1];
      if (l == 0.f) continue;
      const float f = __expf(ml[2 * (base + c)] - M);
      num += f * part[(base + c) * hd + d], den += f * l;
    }
    out[(t * H + h) * hd + d] = num / den;
  }
}

// RMSNorm / LayerNorm of a few rows (block per row): each thread keeps its elements in registers,
// so the row is read once and the loads are issued together.
constexpr int kNormThreads = 512, kNormPerThread = 16;
template <bool LN>
__global__ void k_norm(float* y, const float* x, const float* w, const float* b, int64_t D, float eps, float offset) {
  wait_for_previous();
  __shared__ float sh[32];
  const float* xr = x + int64_t(blockIdx.x) * D;
  float* yr = y + int64_t(blockIdx.x) * D;
  float v[kNormPerThread];
#pragma unroll
  for (int i = 0; i < kNormPerThread; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * kNormThreads;
    v[i] = j < D ? xr[j] : 0.f;
  }
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < kNormPerThread; ++i) s += LN ? v[i] : v[i] * v[i];
  s = block_sum(s, sh);
  float mean = 0.f, r;
  if (LN) {
    mean = s / float(D);
    float q = 0.f;
#pragma unroll
    for (int i = 0; i < kNormPerThread; ++i)
      if (threadIdx.x + int64_t(i) * kNormThreads < D) q += (v[i] - mean) * (v[i] - mean);
    r = 1.f / sqrtf(block_sum(q, sh) / float(D) + eps);
  } else {
    r = 1.f / sqrtf(s / float(D) + eps);
  }
#pragma unroll
  for (int i = 0; i < kNormPerThread; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * kNormThreads;
    if (j < D) yr[j] = LN ? (v[i] - mean) * r * w[j] + (b ? b[j] : 0.f) : v[i] * r * (w[j] + offset);
  }
}

__global__ void k_add_bias(float* y, const float* bias, int64_t T, int64_t N) {
  wait_for_previous();
  CLM_GRID_STRIDE(i, T * N) y[i] += bias[i % N];
}

__global__ void k_glu(float* y, const float* gu, int64_t T, int64_t F, bool gelu_tanh) {
  wait_for_previous();
  CLM_GRID_STRIDE(i, T * F) {
    const int64_t t = i / F, f = i % F;
    const float g = gu[t * 2 * F + f], u = gu[t * 2 * F + F + f];
    float a;
    if (gelu_tanh) a = 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    else a = g / (1.f + expf(-g));
    y[i] = a * u;
  }
}

}  // namespace

void gemv_bf16(float* y, const uint16_t* W, const float* bias, const float* x, int64_t N, int64_t K, int64_t T, bool accumulate) {
  gemv(y, W, bias, x, N, K, T, accumulate);
}
void gemv_f32(float* y, const float* W, const float* bias, const float* x, int64_t N, int64_t K, int64_t T, bool accumulate) {
  gemv(y, W, bias, x, N, K, T, accumulate);
}

void rope_append(float* qkv, float* kc, float* vc, const float* rot, const int32_t* pos0, int64_t T, int64_t H, int64_t Hkv,
                 int64_t hd, bool interleaved) {
  if (T == 0) return;
  const int64_t work = std::max((H + Hkv) * (hd / 2), Hkv * hd), pieces = std::min<int64_t>((work + 255) / 256, 64);
  launch(k_rope_append, dim3(unsigned(T), unsigned(pieces)), 256, "k_rope_append", qkv, kc, vc, rot, pos0, H, Hkv, hd, interleaved);
  check_launch("k_rope_append");
}

void add_position_rows(float* x, const float* table, const int32_t* pos0, int64_t T, int64_t D) {
  if (T == 0) return;
  launch(k_add_position_rows, unsigned(T), 256, "k_add_position_rows", x, table, pos0, D);
  check_launch("k_add_position_rows");
}

void decode_attention(float* out, float* part, const float* qkv, const float* kc, const float* vc, const int32_t* pos0,
                      int64_t T, int64_t H, int64_t Hkv, int64_t hd, int64_t chunks, float scale, const float* slopes) {
  if (T == 0) return;
  if (hd > 256) throw std::invalid_argument("decode_attention: head dim above 256");
  launch(k_attn_partial, dim3(unsigned(chunks), unsigned(H), unsigned(T)), kThreads, "k_attn_partial", part, qkv, kc, vc, pos0, T, H, Hkv,
                                                                                             hd, chunks, scale, slopes);
  check_launch("k_attn_partial");
  launch(k_attn_combine, dim3(unsigned(H), unsigned(T)), 128, "k_attn_combine", out, part, T, H, hd, chunks);
  check_launch("k_attn_combine");
}

bool norm_rows(float* y, const float* x, const float* w, const float* b, int64_t T, int64_t D, float eps, float offset, bool layernorm) {
  if (D > int64_t(kNormThreads) * kNormPerThread) return false;
  if (T == 0) return true;
  if (layernorm) launch(k_norm<true>, unsigned(T), kNormThreads, "k_norm", y, x, w, b, D, eps, 0.f);
  else launch(k_norm<false>, unsigned(T), kNormThreads, "k_norm", y, x, w, nullptr, D, eps, offset);
  check_launch("k_norm");
  return true;
}

void add_bias(float* y, const float* bias, int64_t T, int64_t N) {
  if (T * N == 0) return;
  launch(k_add_bias, grid_for(T * N), 256, "k_add_bias", y, bias, T, N);
  check_launch("k_add_bias");
}

void glu(float* y, const float* gu, int64_t T, int64_t F, bool gelu_tanh) {
  if (T * F == 0) return;
  launch(k_glu, grid_for(T * F), 256, "k_glu", y, gu, T, F, gelu_tanh);
  check_launch("k_glu");
}

}  // namespace clm::cuda
