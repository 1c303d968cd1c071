// Elementwise, normalisation, rotary, embedding, loss and optimizer kernels (f32).
#include <cuda_bf16.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {


__global__ void k_add(float* y, const float* a, const float* b, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] = a[i] + b[i]; }
__global__ void k_axpy(float* y, float a, const float* x, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] += a * x[i]; }
__global__ void k_scale(float* y, float a, const float* x, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] = a * x[i]; }
__global__ void k_mul(float* y, const float* a, const float* b, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] = a[i] * b[i]; }
__global__ void k_mul_acc(float* y, const float* a, const float* b, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] += a[i] * b[i]; }
__global__ void k_fill(float* y, float v, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] = v; }
__global__ void k_to_bf16(uint16_t* y, const float* x, int64_t n) {
  CLM_GRID_STRIDE(i, n) y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}
__global__ void k_add_scalar(float* y, const float* s, int64_t n) { CLM_GRID_STRIDE(i, n) y[i] += s[0]; }
__global__ void k_rows_set(float* y, const float* row, int64_t N, int64_t M) { CLM_GRID_STRIDE(i, N * M) y[i] = row[i % M]; }

// Column sums in two fixed-order stages: block (x: 32 columns, y: 8 row lanes) over a chunk of rows
// writes partials[chunk][col]; the second stage adds the chunks in order.
constexpr int kColChunk = 256;
__global__ void k_col_partial(float* part, const float* x, const float* z, const float* r, const float* mu, int64_t N, int64_t M) {
  __shared__ float s[8][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x, r0 = int64_t(blockIdx.y) * kColChunk;
  float acc = 0.f;
  if (col < M)
    for (int64_t i = r0 + threadIdx.y; i < r0 + kColChunk && i < N; i += 8) {
      float v = x[i * M + col];
      if (z) v *= (z[i * M + col] - (mu ? mu[i] : 0.f)) * r[i];
      acc += v;
    }
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < M) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += s[k][threadIdx.x];
    part[int64_t(blockIdx.y) * M + col] = t;
  }
}
__global__ void k_col_finish(float* out, const float* part, int64_t chunks, int64_t M) {
  CLM_GRID_STRIDE(j, M) {
    float t = 0.f;
    for (int64_t c = 0; c < chunks; ++c) t += part[c * M + j];
    out[j] += t;
  }
}

// One block of 256 threads per row.
__global__ void k_rmsnorm_fwd(float* y, float* rstd, const float* x, const float* w, int64_t D, float eps, float offset) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * D;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) ss += xi[j] * xi[j];
  ss = block_sum(ss, sh);
  const float r = 1.f / sqrtf(ss / float(D) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) y[row * D + j] = xi[j] * r * (w[j] + offset);
}
__global__ void k_rmsnorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w, const float* rstd, int64_t D,
                                 float offset) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float *xi = x + row * D, *dyi = dy + row * D;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += dyi[j] * (w[j] + offset) * xi[j];
  s = block_sum(s, sh);
  const float r = rstd[row], c = s * r * r * r / float(D);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) dx[row * D + j] += r * (w[j] + offset) * dyi[j] - c * xi[j];
}

__global__ void k_layernorm_fwd(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t D,
                                float eps) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * D;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += xi[j];
  const float m = block_sum(s, sh) / float(D);
  float v = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) v += (xi[j] - m) * (xi[j] - m);
  const float r = 1.f / sqrtf(block_sum(v, sh) / float(D) + eps);
  if (threadIdx.x == 0) mean[row] = m, rstd[row] = r;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) y[row * D + j] = (xi[j] - m) * r * w[j] + (b ? b[j] : 0.f);
}
__global__ void k_layernorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w, const float* mean,
                                   const float* rstd, int64_t D) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float *xi = x + row * D, *dyi = dy + row * D, m = mean[row], r = rstd[row];
  float s1 = 0.f, s2 = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const float g = dyi[j] * w[j];
    s1 += g, s2 += g * (xi[j] - m) * r;
  }
  s1 = block_sum(s1, sh) / float(D);
  s2 = block_sum(s2, sh) / float(D);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) dx[row * D + j] += r * (dyi[j] * w[j] - s1 - (xi[j] - m) * r * s2);
}

__global__ void k_gelu_fwd(float* y, const float* x, int64_t n, bool tanh_approx) {
  const float k = 0.7978845608028654f, c = 0.044715f;
  CLM_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = tanh_approx ? 0.5f * v * (1.f + tanhf(k * (v + c * v * v * v))) : 0.5f * v * (1.f + erff(v * 0.7071067811865476f));
  }
}
__global__ void k_gelu_bwd(float* dx, const float* dy, const float* x, int64_t n, bool tanh_approx) {
  const float k = 0.7978845608028654f, c = 0.044715f;
  CLM_GRID_STRIDE(i, n) {
    const float v = x[i];
    float d;
    if (tanh_approx) {
      const float t = tanhf(k * (v + c * v * v * v));
      d = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * k * (1.f + 3.f * c * v * v);
    } else {
      d = 0.5f * (1.f + erff(v * 0.7071067811865476f)) + v * expf(-0.5f * v * v) * 0.3989422804014327f;
    }
    dx[i] += dy[i] * d;
  }
}

// A uniform in [0, 1) from (seed, i): splitmix64's finaliser over their sum (24 random bits).
__device__ inline float hash_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return float(z >> 40) * (1.f / 16777216.f);
}
__global__ void k_dropout(float* y, const float* x, int64_t n, float p, uint64_t seed, bool accumulate) {
  const float keep = 1.f / (1.f - p);
  CLM_GRID_STRIDE(i, n) {
    const float v = hash_uniform(seed, uint64_t(i)) < p ? 0.f : x[i] * keep;
    if (accumulate) y[i] += v;
    else y[i] = v;
  }
}

__global__ void k_add_rows(float* y, const float* x, const float* table, int64_t N, int64_t D, int64_t row0, int64_t T) {
  CLM_GRID_STRIDE(i, N * D) {
    const int64_t r = i / D, j = i % D;
    y[i] = x[i] + table[(row0 + r % T) * D + j];
  }
}
// One thread per (t, j): the B rows t, T + t, 2T + t, ... in order.
__global__ void k_add_rows_bwd(float* dtable, const float* dy, int64_t N, int64_t D, int64_t row0, int64_t T) {
  CLM_GRID_STRIDE(i, T * D) {
    const int64_t t = i / D, j = i % D;
    float acc = 0.f;
    for (int64_t r = t; r < N; r += T) acc += dy[r * D + j];
    dtable[(row0 + t) * D + j] += acc;
  }
}

__device__ inline float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }
__global__ void k_swiglu_fwd(float* y, const float* g, const float* u, int64_t n) {
  CLM_GRID_STRIDE(i, n) y[i] = g[i] * sigmoidf(g[i]) * u[i];
}
__global__ void k_swiglu_bwd(float* dg, float* du, const float* dy, const float* g, const float* u, int64_t n) {
  CLM_GRID_STRIDE(i, n) {
    const float s = sigmoidf(g[i]);
    du[i] += dy[i] * g[i] * s;
    dg[i] += dy[i] * u[i] * s * (1.f + g[i] * (1.f - s));
  }
}

// One thread per rotated pair.
template <bool Forward>
__global__ void k_rotary(float* y, const float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H,
                         int64_t hd, bool interleaved) {
  const int64_t half = hd / 2;
  CLM_GRID_STRIDE(p, B * T * H * half) {
    const int64_t i = p % half, bth = p / half, t = (bth / H) % T, base = bth * hd;
    const int64_t ia = interleaved ? base + 2 * i : base + i, ib = interleaved ? ia + 1 : ia + half;
    const float c = cos[t * half + i], s = sin[t * half + i], xa = x[ia], xb = x[ib];
    if (Forward) {
      y[ia] = xa * c - xb * s;
      y[ib] = xa * s + xb * c;
    } else {
      y[ia] += xa * c + xb * s;
      y[ib] += -xa * s + xb * c;
    }
  }
}

__global__ void k_embedding_fwd(float* out, const float* table, const int32_t* ids, int64_t N, int64_t D) {
  CLM_GRID_STRIDE(i, N * D) out[i] = table[int64_t(ids[i / D]) * D + i % D];
}
// Block per unique id; threads over the row; occurrences added in their sorted order.
__global__ void k_embedding_bwd(float* dtable, const float* dout, const int32_t* uid, const int32_t* starts,
                                const int32_t* order, int64_t D) {
  const int64_t u = blockIdx.x;
  float* row = dtable + int64_t(uid[u]) * D;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    float acc = 0.f;
    for (int32_t k = starts[u]; k < starts[u + 1]; ++k) acc += dout[int64_t(order[k]) * D + j];
    row[j] += acc;
  }
}

// Block per row: lse and the row's loss term.
__global__ void k_ce_rows(float* rowloss, float* lse, const float* z, const int32_t* targets, int64_t V) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* zr = z + row * V;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, zr[j]);
  m = block_max(m, sh);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(zr[j] - m);
  s = block_sum(s, sh);
  if (threadIdx.x == 0) {
    const float l = m + logf(s);
    lse[row] = l;
    const int32_t t = targets[row];
    rowloss[row] = t >= 0 ? l - zr[t] : 0.f;
  }
}
// One block of 1024 threads sums n values in a fixed order (thread-strided, then the block tree).
__global__ void k_sum_scaled(float* out, const float* x, int64_t n, float scale) {
  __shared__ double sh[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += double(x[i]);
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = float(acc * double(scale));
}
__global__ void k_ce_bwd(float* dz, const float* g, const float* z, const float* lse, const int32_t* targets, int64_t V,
                         float inv_count) {
  const int64_t row = blockIdx.x;
  const int32_t t = targets[row];
  if (t < 0) return;
  const float gg = g[0] * inv_count, l = lse[row];
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float p = expf(z[row * V + j] - l);
    dz[row * V + j] += gg * (p - (j == t ? 1.f : 0.f));
  }
}

__global__ void k_adamw(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size,
                        float inv_sqrt_bc2, float eps, float decay) {
  CLM_GRID_STRIDE(j, n) {
    const float gj = g[j];
    const float mj = b1 * m[j] + (1.f - b1) * gj;
    const float vj = b2 * v[j] + (1.f - b2) * gj * gj;
    m[j] = mj, v[j] = vj;
    w[j] = w[j] * decay - step_size * mj / (sqrtf(vj) * inv_sqrt_bc2 + eps);
  }
}

constexpr int kSumBlocks = 256;
__global__ void k_sumsq_partial(double* part, const float* x, int64_t n) {
  __shared__ double sh[32];
  double acc = 0.0;
  CLM_GRID_STRIDE(i, n) acc += double(x[i]) * double(x[i]);
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}
__global__ void k_sum_partials(double* out, const double* part, int n) {
  __shared__ double sh[32];
  double acc = threadIdx.x < n ? part[threadIdx.x] : 0.0;
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = acc;
}

// A scratch buffer on the device, grown on demand and kept (one stream: no two users at once).
template <class T> T* scratch(size_t n) {
  static T* p = nullptr;
  static size_t cap = 0;
  if (n > cap) {
    if (p) cudaFree(p);
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) throw std::runtime_error("CUDA: out of memory for a scratch buffer");
    cap = n;
  }
  return p;
}

}  // namespace

void add(float* y, const float* a, const float* b, int64_t n) { CLM_LAUNCH(k_add, n, y, a, b, n); }
void axpy(float* y, float a, const float* x, int64_t n) { CLM_LAUNCH(k_axpy, n, y, a, x, n); }
void scale(float* y, float a, const float* x, int64_t n) { CLM_LAUNCH(k_scale, n, y, a, x, n); }
void mul(float* y, const float* a, const float* b, int64_t n) { CLM_LAUNCH(k_mul, n, y, a, b, n); }
void mul_acc(float* y, const float* a, const float* b, int64_t n) { CLM_LAUNCH(k_mul_acc, n, y, a, b, n); }
void fill(float* y, float v, int64_t n) { CLM_LAUNCH(k_fill, n, y, v, n); }
void to_bf16(uint16_t* y, const float* x, int64_t n) { CLM_LAUNCH(k_to_bf16, n, y, x, n); }
void add_scalar(float* y, const float* s, int64_t n) { CLM_LAUNCH(k_add_scalar, n, y, s, n); }
void sum(float* out, const float* x, int64_t n) {
  k_sum_scaled<<<1, 1024, 0, launch_stream()>>>(out, x, n, 1.f);
  check_launch("k_sum_scaled");
}
void rows_set(float* y, const float* row, int64_t N, int64_t M) { CLM_LAUNCH(k_rows_set, N * M, y, row, N, M); }

void col_sum_acc(float* out, const float* x, const float* z, const float* r, int64_t N, int64_t M, const float* mu) {
  if (N == 0 || M == 0) return;
  const int64_t chunks = (N + kColChunk - 1) / kColChunk;
  float* part = scratch<float>(size_t(chunks * M));
  k_col_partial<<<dim3(unsigned((M + 31) / 32), unsigned(chunks)), dim3(32, 8), 0, launch_stream()>>>(part, x, z, r, mu, N, M);
  check_launch("k_col_partial");
  k_col_finish<<<grid_for(M), 256, 0, launch_stream()>>>(out, part, chunks, M);
  check_launch("k_col_finish");
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N, int64_t D, float eps, float offset) {
  if (N == 0) return;
  k_rmsnorm_fwd<<<unsigned(N), 256, 0, launch_stream()>>>(y, rstd, x, w, D, eps, offset);
  check_launch("k_rmsnorm_fwd");
}
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t N,
                      int64_t D, float offset) {
  if (N == 0) return;
  if (dx) {
    k_rmsnorm_bwd_dx<<<unsigned(N), 256, 0, launch_stream()>>>(dx, dy, x, w, rstd, D, offset);
    check_launch("k_rmsnorm_bwd_dx");
  }
  if (dw) col_sum_acc(dw, dy, x, rstd, N, D);
}

void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N, int64_t D,
                       float eps) {
  if (N == 0) return;
  k_layernorm_fwd<<<unsigned(N), 256, 0, launch_stream()>>>(y, mean, rstd, x, w, b, D, eps);
  check_launch("k_layernorm_fwd");
}
void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, int64_t N, int64_t D) {
  if (N == 0) return;
  if (dx) {
    k_layernorm_bwd_dx<<<unsigned(N), 256, 0, launch_stream()>>>(dx, dy, x, w, mean, rstd, D);
    check_launch("k_layernorm_bwd_dx");
  }
  if (dw) col_sum_acc(dw, dy, x, rstd, N, D, mean);
  if (db) col_sum_acc(db, dy, nullptr, nullptr, N, D);
}
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_approx) { CLM_LAUNCH(k_gelu_fwd, n, y, x, n, tanh_approx); }
void gelu_backward(float* dx, const float* dy, const float* x, int64_t n, bool tanh_approx) {
  CLM_LAUNCH(k_gelu_bwd, n, dx, dy, x, n, tanh_approx);
}
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed) { CLM_LAUNCH(k_dropout, n, y, x, n, p, seed, false); }
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed) {
  CLM_LAUNCH(k_dropout, n, dx, dy, n, p, seed, true);
}
void add_rows_forward(float* y, const float* x, const float* table, int64_t N, int64_t D, int64_t row0, int64_t T) {
  CLM_LAUNCH(k_add_rows, N * D, y, x, table, N, D, row0, T);
}
void add_rows_backward_table(float* dtable, const float* dy, int64_t N, int64_t D, int64_t row0, int64_t T) {
  CLM_LAUNCH(k_add_rows_bwd, T * D, dtable, dy, N, D, row0, T);
}

void swiglu_forward(float* y, const float* g, const float* u, int64_t n) { CLM_LAUNCH(k_swiglu_fwd, n, y, g, u, n); }
void swiglu_backward(float* dg, float* du, const float* dy, const float* g, const float* u, int64_t n) {
  CLM_LAUNCH(k_swiglu_bwd, n, dg, du, dy, g, u, n);
}

void rotary_forward(float* y, const float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H, int64_t hd,
                    bool interleaved) {
  CLM_LAUNCH(k_rotary<true>, B * T * H * (hd / 2), y, x, cos, sin, B, T, H, hd, interleaved);
}
void rotary_backward(float* dx, const float* dy, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H,
                     int64_t hd, bool interleaved) {
  CLM_LAUNCH(k_rotary<false>, B * T * H * (hd / 2), dx, dy, cos, sin, B, T, H, hd, interleaved);
}

void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t D) {
  CLM_LAUNCH(k_embedding_fwd, N * D, out, table, ids, N, D);
}
void embedding_backward(float* dtable, const float* dout, const int32_t* uid, const int32_t* starts, const int32_t* order,
                        int64_t U, int64_t D) {
  if (U == 0) return;
  k_embedding_bwd<<<unsigned(U), 128, 0, launch_stream()>>>(dtable, dout, uid, starts, order, D);
  check_launch("k_embedding_bwd");
}

void cross_entropy_forward(float* loss, float* lse, const float* z, const int32_t* targets, int64_t N, int64_t V,
                           float inv_count) {
  float* rows = scratch<float>(size_t(N > 0 ? N : 1));
  if (N > 0) {
    k_ce_rows<<<unsigned(N), 256, 0, launch_stream()>>>(rows, lse, z, targets, V);
    check_launch("k_ce_rows");
  }
  k_sum_scaled<<<1, 1024, 0, launch_stream()>>>(loss, rows, N, inv_count);
  check_launch("k_sum_scaled");
}
void cross_entropy_backward(float* dz, const float* g, const float* z, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float inv_count) {
  if (N == 0) return;
  k_ce_bwd<<<unsigned(N), 256, 0, launch_stream()>>>(dz, g, z, lse, targets, V, inv_count);
  check_launch("k_ce_bwd");
}

void adamw(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size, float inv_sqrt_bc2,
           float eps, float decay) {
  CLM_LAUNCH(k_adamw, n, w, g, m, v, n, b1, b2, step_size, inv_sqrt_bc2, eps, decay);
}

void sum_squares(double* out, const float* x, int64_t n) {
  double* part = scratch<double>(kSumBlocks);
  k_sumsq_partial<<<kSumBlocks, 256, 0, launch_stream()>>>(part, x, n);
  check_launch("k_sumsq_partial");
  k_sum_partials<<<1, kSumBlocks, 0, launch_stream()>>>(out, part, kSumBlocks);
  check_launch("k_sum_partials");
}

}  // namespace clm::cuda
