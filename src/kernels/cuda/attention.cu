// Softmax attention without an N x N matrix. Forward: a block of 4 warps takes 4 query rows of one
// (batch, head); K/V tiles of 32 keys are staged in shared memory, lane l scores key l of the tile,
// and the output accumulates under a running max (online softmax); lse per row is saved.
// Backward recomputes the probabilities from lse: one kernel per row gets D_i = dO_i . O_i, a dQ
// kernel walks the keys of each query row, and a dK/dV kernel walks the query rows of each key
// (every query head of the KV head's group in turn), so nothing is written by two threads and the
// result has the same bits on every run. Lane l owns output dims l, l + 32, l + 64, l + 96 (hd <= 128).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {

constexpr int kRows = 4;    // query (or key) rows per block, one per warp
constexpr int kTile = 32;   // keys (or queries) per shared-memory tile
constexpr int kMaxHd = 128;
constexpr int kDims = kMaxHd / 32;

__device__ inline float bias(const Attn& s, int64_t h, int64_t i, int64_t j) {
  return s.slopes ? -s.slopes[h] * fabsf(float(i - j)) : 0.f;
}
__device__ inline bool visible(const Attn& s, int64_t i, int64_t j) { return j < s.T && i < s.T && (!s.causal || j <= i); }

// acc[lane's dims] += sum over the tile's 32 rows r of coef_r tile[r][dims], coef_r held by lane r.
__device__ inline void add_rows(float (&acc)[kDims], float coef, const float* tile, int64_t ld, int64_t hd, int l) {
  for (int r = 0; r < kTile; ++r) {
    const float cr = __shfl_sync(0xffffffffu, coef, r);
#pragma unroll
    for (int c = 0; c < kDims; ++c)
      if (l + 32 * c < hd) acc[c] += cr * tile[r * ld + l + 32 * c];
  }
}

// Stages rows r0..r0+31 of a [B,T,heads,hd] tensor (head `head`) in tile[32][hd+1], zeros past T.
__device__ inline void stage(float* tile, const float* x, const Attn& s, int64_t b, int64_t heads, int64_t head, int64_t r0) {
  const int64_t hd = s.hd;
  for (int64_t idx = threadIdx.x; idx < kTile * hd; idx += blockDim.x) {
    const int64_t r = idx / hd, d = idx % hd, t = r0 + r;
    tile[r * (hd + 1) + d] = t < s.T ? x[((b * s.T + t) * heads + head) * hd + d] : 0.f;
  }
}

__global__ void k_attn_fwd(float* out, float* lse, const float* q, const float* k, const float* v, Attn s) {
  extern __shared__ float sm[];
  const int64_t hd = s.hd, ld = hd + 1, h = blockIdx.y, b = blockIdx.z, kh = h / (s.H / s.Hkv);
  float *Ks = sm, *Vs = Ks + kTile * ld, *Qs = Vs + kTile * ld;
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kRows + w;
  const bool row_ok = i < s.T;
  if (row_ok)
    for (int64_t d = l; d < hd; d += 32) Qs[w * hd + d] = q[((b * s.T + i) * s.H + h) * hd + d];
  const int64_t last = s.causal ? min(s.T - 1, int64_t(blockIdx.x) * kRows + kRows - 1) : s.T - 1;
  float acc[kDims] = {0.f, 0.f, 0.f, 0.f}, m = -INFINITY, sum = 0.f;
  for (int64_t j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();
    stage(Ks, k, s, b, s.Hkv, kh, j0);
    stage(Vs, v, s, b, s.Hkv, kh, j0);
    __syncthreads();
    if (!row_ok) continue;
    const int64_t j = j0 + l;
    float sc = -INFINITY;
    if (visible(s, i, j)) {
      float dot = 0.f;
      for (int64_t d = 0; d < hd; ++d) dot += Qs[w * hd + d] * Ks[l * ld + d];
      sc = s.scale * dot + bias(s, h, i, j);
    }
    const float mt = warp_max(sc);
    if (mt == -INFINITY) continue;  // no visible key in this tile (warp-uniform)
    const float mn = fmaxf(m, mt), p = sc == -INFINITY ? 0.f : expf(sc - mn), corr = expf(m - mn);
    sum = sum * corr + warp_sum(p);
    m = mn;
#pragma unroll
    for (int c = 0; c < kDims; ++c) acc[c] *= corr;
    add_rows(acc, p, Vs, ld, hd, l);
  }
  if (!row_ok) return;
#pragma unroll
  for (int c = 0; c < kDims; ++c)
    if (l + 32 * c < hd) out[((b * s.T + i) * s.H + h) * hd + l + 32 * c] = acc[c] / sum;
  if (l == 0) lse[(b * s.H + h) * s.T + i] = m + logf(sum);
}

// D[(b H + h) T + i] = dO_i . O_i, a warp per row.
__global__ void k_attn_rowdot(float* D, const float* dout, const float* out, Attn s) {
  const int64_t row = int64_t(blockIdx.x) * kRows + (threadIdx.x >> 5), l = threadIdx.x & 31;
  if (row >= s.B * s.T * s.H) return;
  float acc = 0.f;
  for (int64_t d = l; d < s.hd; d += 32) acc += dout[row * s.hd + d] * out[row * s.hd + d];
  acc = warp_sum(acc);
  const int64_t h = row % s.H, bt = row / s.H, b = bt / s.T, i = bt % s.T;
  if (l == 0) D[(b * s.H + h) * s.T + i] = acc;
}

__global__ void k_attn_dq(float* dq, const float* dout, const float* lse, const float* D, const float* q, const float* k,
                          const float* v, Attn s) {
  extern __shared__ float sm[];
  const int64_t hd = s.hd, ld = hd + 1, h = blockIdx.y, b = blockIdx.z, kh = h / (s.H / s.Hkv);
  float *Ks = sm, *Vs = Ks + kTile * ld, *Qs = Vs + kTile * ld, *Gs = Qs + kRows * hd;
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kRows + w;
  const bool row_ok = i < s.T;
  const int64_t qrow = ((b * s.T + i) * s.H + h) * hd;
  float li = 0.f, Di = 0.f;
  if (row_ok) {
    for (int64_t d = l; d < hd; d += 32) Qs[w * hd + d] = q[qrow + d], Gs[w * hd + d] = dout[qrow + d];
    li = lse[(b * s.H + h) * s.T + i], Di = D[(b * s.H + h) * s.T + i];
  }
  const int64_t last = s.causal ? min(s.T - 1, int64_t(blockIdx.x) * kRows + kRows - 1) : s.T - 1;
  float acc[kDims] = {0.f, 0.f, 0.f, 0.f};
  for (int64_t j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();
    stage(Ks, k, s, b, s.Hkv, kh, j0);
    stage(Vs, v, s, b, s.Hkv, kh, j0);
    __syncthreads();
    if (!row_ok) continue;
    const int64_t j = j0 + l;
    float ds = 0.f;
    if (visible(s, i, j)) {
      float dot = 0.f, dp = 0.f;
      for (int64_t d = 0; d < hd; ++d) dot += Qs[w * hd + d] * Ks[l * ld + d], dp += Gs[w * hd + d] * Vs[l * ld + d];
      const float p = expf(s.scale * dot + bias(s, h, i, j) - li);
      ds = p * (dp - Di);
    }
    add_rows(acc, ds, Ks, ld, hd, l);
  }
  if (!row_ok) return;
#pragma unroll
  for (int c = 0; c < kDims; ++c)
    if (l + 32 * c < hd) dq[qrow + l + 32 * c] += s.scale * acc[c];
}

__global__ void k_attn_dkv(float* dk, float* dv, const float* dout, const float* lse, const float* D, const float* q,
                           const float* k, const float* v, Attn s) {
  extern __shared__ float sm[];
  const int64_t hd = s.hd, ld = hd + 1, kh = blockIdx.y, b = blockIdx.z, group = s.H / s.Hkv;
  float *Qt = sm, *Gt = Qt + kTile * ld, *Kw = Gt + kTile * ld, *Vw = Kw + kRows * hd, *Lt = Vw + kRows * hd, *Dt = Lt + kTile;
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  const int64_t j = int64_t(blockIdx.x) * kRows + w;
  const bool row_ok = j < s.T;
  const int64_t krow = ((b * s.T + j) * s.Hkv + kh) * hd;
  if (row_ok)
    for (int64_t d = l; d < hd; d += 32) Kw[w * hd + d] = k[krow + d], Vw[w * hd + d] = v[krow + d];
  const int64_t first = s.causal ? int64_t(blockIdx.x) * kRows / kTile * kTile : 0;
  float ak[kDims] = {0.f, 0.f, 0.f, 0.f}, av[kDims] = {0.f, 0.f, 0.f, 0.f};
  for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
    for (int64_t i0 = first; i0 < s.T; i0 += kTile) {
      __syncthreads();
      stage(Qt, q, s, b, s.H, h, i0);
      stage(Gt, dout, s, b, s.H, h, i0);
      if (threadIdx.x < kTile) {
        const int64_t i = i0 + threadIdx.x;
        Lt[threadIdx.x] = i < s.T ? lse[(b * s.H + h) * s.T + i] : 0.f;
        Dt[threadIdx.x] = i < s.T ? D[(b * s.H + h) * s.T + i] : 0.f;
      }
      __syncthreads();
      if (!row_ok) continue;
      const int64_t i = i0 + l;
      float p = 0.f, ds = 0.f;
      if (visible(s, i, j)) {
        float dot = 0.f, dp = 0.f;
        for (int64_t d = 0; d < hd; ++d) dot += Qt[l * ld + d] * Kw[w * hd + d], dp += Gt[l * ld + d] * Vw[w * hd + d];
        p = expf(s.scale * dot + bias(s, h, i, j) - Lt[l]);
        ds = p * (dp - Dt[l]);
      }
      add_rows(av, p, Gt, ld, hd, l);
      add_rows(ak, ds, Qt, ld, hd, l);
    }
  if (!row_ok) return;
#pragma unroll
  for (int c = 0; c < kDims; ++c)
    if (l + 32 * c < hd) dk[krow + l + 32 * c] += s.scale * ak[c], dv[krow + l + 32 * c] += av[c];
}

// Row softmax of the materialised scores, in place: row r = (b H + h) T + i of [B,H,T,T]; masked
// entries (j > i when causal) become 0. A block of 256 threads per row.
__global__ void k_attn_softmax_rows(float* P, Attn s) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x, i = r % s.T, h = (r / s.T) % s.H, n = s.causal ? i + 1 : s.T;
  float* row = P + r * s.T;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float x = row[j] + bias(s, h, i, j);
    row[j] = x;
    m = fmaxf(m, x);
  }
  m = block_max(m, sh);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  sum = block_sum(sum, sh);
  const float inv = 1.f / sum;
  for (int64_t j = threadIdx.x; j < s.T; j += blockDim.x) row[j] = j < n ? row[j] * inv : 0.f;
}
// The same with the row held in registers (VPT values a thread, rows up to 256 VPT): one read and one
// write of each entry instead of three of each, and no read past the causal diagonal.
template <int VPT>
__global__ void k_attn_softmax_rows_reg(float* P, Attn s) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x, i = r % s.T, h = (r / s.T) % s.H, n = s.causal ? i + 1 : s.T;
  float* row = P + r * s.T;
  float x[VPT], m = -INFINITY;
#pragma unroll
  for (int c = 0; c < VPT; ++c) {
    const int64_t j = threadIdx.x + int64_t(c) * blockDim.x;
    x[c] = j < n ? row[j] + bias(s, h, i, j) : -INFINITY;
    m = fmaxf(m, x[c]);
  }
  m = block_max(m, sh);
  float sum = 0.f;
#pragma unroll
  for (int c = 0; c < VPT; ++c) {
    x[c] = x[c] == -INFINITY ? 0.f : expf(x[c] - m);
    sum += x[c];
  }
  const float inv = 1.f / block_sum(sum, sh);
#pragma unroll
  for (int c = 0; c < VPT; ++c) {
    const int64_t j = threadIdx.x + int64_t(c) * blockDim.x;
    if (j < s.T) row[j] = x[c] * inv;
  }
}
template <int VPT>
__global__ void k_attn_softmax_bwd_rows_reg(float* dP, const float* P, int64_t T, int64_t p_batch, int64_t d_batch, bool causal) {
  __shared__ float sh[32];
  const int64_t b = blockIdx.y, i = blockIdx.x, n = causal ? i + 1 : T;
  const float* p = P + b * p_batch + i * T;
  float* d = dP + b * d_batch + i * T;
  float pv[VPT], dv[VPT], acc = 0.f;
#pragma unroll
  for (int c = 0; c < VPT; ++c) {
    const int64_t j = threadIdx.x + int64_t(c) * blockDim.x;
    pv[c] = j < n ? p[j] : 0.f;
    dv[c] = j < n ? d[j] : 0.f;
    acc += pv[c] * dv[c];
  }
  acc = block_sum(acc, sh);
#pragma unroll
  for (int c = 0; c < VPT; ++c) {
    const int64_t j = threadIdx.x + int64_t(c) * blockDim.x;
    if (j < T) d[j] = pv[c] * (dv[c] - acc);
  }
}

// dS = P * (dP - sum_j P dP) in place on dP [T,T] rows of one (b, h); zero where P is masked.
__global__ void k_attn_softmax_bwd_rows(float* dP, const float* P, int64_t T, int64_t p_batch, int64_t d_batch) {
  __shared__ float sh[32];
  const int64_t b = blockIdx.y, i = blockIdx.x;
  const float* p = P + b * p_batch + i * T;
  float* d = dP + b * d_batch + i * T;
  float acc = 0.f;
  for (int64_t j = threadIdx.x; j < T; j += blockDim.x) acc += p[j] * d[j];
  acc = block_sum(acc, sh);
  for (int64_t j = threadIdx.x; j < T; j += blockDim.x) d[j] = p[j] * (d[j] - acc);
}

void check_shape(const Attn& s) {
  if (s.hd < 1 || s.hd > kMaxHd) throw std::invalid_argument("CUDA attention: head dim " + std::to_string(s.hd) + " > 128");
  if (s.Hkv < 1 || s.H % s.Hkv) throw std::invalid_argument("CUDA attention: query heads must be a multiple of KV heads");
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const Attn& s) {
  check_shape(s);
  if (s.B * s.T * s.H == 0) return;
  const size_t smem = sizeof(float) * size_t(2 * kTile * (s.hd + 1) + kRows * s.hd);
  k_attn_fwd<<<dim3(unsigned((s.T + kRows - 1) / kRows), unsigned(s.H), unsigned(s.B)), 32 * kRows, smem, launch_stream()>>>(out, lse, q, k, v, s);
  check_launch("k_attn_fwd");
}

void attention_backward(float* dq, float* dk, float* dv, float* scratch, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, const Attn& s) {
  check_shape(s);
  const int64_t rows = s.B * s.T * s.H;
  if (rows == 0) return;
  k_attn_rowdot<<<unsigned((rows + kRows - 1) / kRows), 32 * kRows, 0, launch_stream()>>>(scratch, dout, out, s);
  check_launch("k_attn_rowdot");
  const unsigned tiles = unsigned((s.T + kRows - 1) / kRows);
  if (dq) {
    const size_t smem = sizeof(float) * size_t(2 * kTile * (s.hd + 1) + 2 * kRows * s.hd);
    k_attn_dq<<<dim3(tiles, unsigned(s.H), unsigned(s.B)), 32 * kRows, smem, launch_stream()>>>(dq, dout, lse, scratch, q, k, v, s);
    check_launch("k_attn_dq");
  }
  if (dk && dv) {
    const size_t smem = sizeof(float) * size_t(2 * kTile * (s.hd + 1) + 2 * kRows * s.hd + 2 * kTile);
    k_attn_dkv<<<dim3(tiles, unsigned(s.Hkv), unsigned(s.B)), 32 * kRows, smem, launch_stream()>>>(dk, dv, dout, lse, scratch, q, k, v, s);
    check_launch("k_attn_dkv");
  }
}

// Every product runs per head h, batched over the B sequences (strides: one sequence of q/out is
// T*H*hd, of k/v T*Hkv*hd, of P H*T*T, of dP T*T). The query heads of a KV group add into the
// same dK/dV slice one after another: no two products write one gradient at once.
void attention_forward_gemm(float* out, float* P, const float* q, const float* k, const float* v, const Attn& s) {
  if (s.Hkv < 1 || s.H % s.Hkv) throw std::invalid_argument("CUDA attention: query heads must be a multiple of KV heads");
  const int64_t T = s.T, hd = s.hd, H = s.H, Hkv = s.Hkv, g = H / Hkv;
  if (s.B * T * H == 0) return;
  const int qs = int(H * hd), ks = int(Hkv * hd);
  for (int64_t h = 0; h < H; ++h)
    gemm_batched(false, true, int(T), int(T), int(hd), s.scale, q + h * hd, qs, T * H * hd, k + (h / g) * hd, ks, T * Hkv * hd, 0.f,
                 P + h * T * T, int(T), H * T * T, int(s.B));
  const unsigned rows = unsigned(s.B * H * T);
  if (T <= 256) k_attn_softmax_rows_reg<1><<<rows, 256, 0, launch_stream()>>>(P, s);
  else if (T <= 512) k_attn_softmax_rows_reg<2><<<rows, 256, 0, launch_stream()>>>(P, s);
  else if (T <= 1024) k_attn_softmax_rows_reg<4><<<rows, 256, 0, launch_stream()>>>(P, s);
  else if (T <= 2048) k_attn_softmax_rows_reg<8><<<rows, 256, 0, launch_stream()>>>(P, s);
  else k_attn_softmax_rows<<<rows, 256, 0, launch_stream()>>>(P, s);
  check_launch("k_attn_softmax_rows");
  for (int64_t h = 0; h < H; ++h)
    gemm_batched(false, false, int(T), int(hd), int(T), 1.f, P + h * T * T, int(T), H * T * T, v + (h / g) * hd, ks, T * Hkv * hd, 0.f,
                 out + h * hd, qs, T * H * hd, int(s.B));
}

void attention_backward_gemm(float* dq, float* dk, float* dv, float* dP, const float* dout, const float* P, const float* q,
                             const float* k, const float* v, const Attn& s) {
  const int64_t T = s.T, hd = s.hd, H = s.H, Hkv = s.Hkv, g = H / Hkv;
  if (s.B * T * H == 0) return;
  const int qs = int(H * hd), ks = int(Hkv * hd);
  const int64_t q_b = T * H * hd, kv_b = T * Hkv * hd, p_b = H * T * T, d_b = T * T;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t kh = h / g;
    const float* Ph = P + h * T * T;
    // dV += P^T dO
    gemm_batched(true, false, int(T), int(hd), int(T), 1.f, Ph, int(T), p_b, dout + h * hd, qs, q_b, 1.f, dv + kh * hd, ks, kv_b, int(s.B));
    // dP = dO V^T, then dS = P (dP - rowsum(P dP))
    gemm_batched(false, true, int(T), int(T), int(hd), 1.f, dout + h * hd, qs, q_b, v + kh * hd, ks, kv_b, 0.f, dP, int(T), d_b, int(s.B));
    const dim3 grid(unsigned(T), unsigned(s.B));
    if (T <= 256) k_attn_softmax_bwd_rows_reg<1><<<grid, 256, 0, launch_stream()>>>(dP, Ph, T, p_b, d_b, s.causal);
    else if (T <= 512) k_attn_softmax_bwd_rows_reg<2><<<grid, 256, 0, launch_stream()>>>(dP, Ph, T, p_b, d_b, s.causal);
    else if (T <= 1024) k_attn_softmax_bwd_rows_reg<4><<<grid, 256, 0, launch_stream()>>>(dP, Ph, T, p_b, d_b, s.causal);
    else if (T <= 2048) k_attn_softmax_bwd_rows_reg<8><<<grid, 256, 0, launch_stream()>>>(dP, Ph, T, p_b, d_b, s.causal);
    else k_attn_softmax_bwd_rows<<<grid, 256, 0, launch_stream()>>>(dP, Ph, T, p_b, d_b);
    check_launch("k_attn_softmax_bwd_rows");
    // dQ += scale dS K, dK += scale dS^T Q
    gemm_batched(false, false, int(T), int(hd), int(T), s.scale, dP, int(T), d_b, k + kh * hd, ks, kv_b, 1.f, dq + h * hd, qs, q_b, int(s.B));
    gemm_batched(true, false, int(T), int(hd), int(T), s.scale, dP, int(T), d_b, q + h * hd, qs, q_b, 1.f, dk + kh * hd, ks, kv_b, int(s.B));
  }
}

}  // namespace clm::cuda
