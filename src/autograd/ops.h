// Differentiable ops. Each is a forward and a backward over the kernels in kernels/kernels.h.
// Tensors are 2-D [rows, features] unless stated; f32 and f64 are supported throughout.
#pragma once
#include "autograd/autograd.h"
#include "util/rng.h"

namespace clm::ag {

// y = x W^T (+ b). x [N,K], w [M,K], b [M] or null -> [N,M].
Var linear(const Var& x, const Var& w, const Var& b = nullptr);
Var add(const Var& a, const Var& b);               // same shape
Var mul(const Var& a, const Var& b);               // elementwise, same shape
Var scale(const Var& a, double s);
Var sum(const Var& a);                             // -> scalar [1]
// y[r] = x[r] + table[row0 + r % T]; x [B*T, D], table [P, D]. (Learned positions.)
Var add_rows(const Var& x, const Var& table, int64_t row0, int64_t T);
// Columns [c0, c1) of x [N, C] -> [N, c1-c0] (splits fused projections).
Var columns(const Var& x, int64_t c0, int64_t c1);

Var rmsnorm(const Var& x, const Var& w, double eps, double offset = 0.0);
Var layernorm(const Var& x, const Var& w, const Var& b, double eps);
Var swiglu(const Var& gate, const Var& up);
Var gelu(const Var& x, bool tanh_approx = false);
Var softmax(const Var& x);

// x [B*T, H*hd] rotated per position with cos/sin tables [T, hd/2] (constants, same dtype as x).
Var rotary(const Var& x, const Tensor& cos, const Tensor& sin, int64_t B, int64_t T, int64_t H, int64_t hd,
           bool interleaved);

// Attention, q [B*T, H*hd], k/v [B*T, Hkv*hd] -> [B*T, H*hd], causal unless `causal` is false
// (bidirectional: masked-LM training). slopes: [H] ALiBi slopes (bias -m |i - j|) or empty.
Var attention(const Var& q, const Var& k, const Var& v, int64_t B, int64_t T, int64_t H, int64_t Hkv,
              int64_t hd, double scale, const std::vector<double>& slopes = {}, bool causal = true);

// TensorCoder dimension-wise attention (kernels.h DimAttnShape): q [B*T, H*hd], k/v [B*T, Hkv*hd],
// w [H, hd, hd] -> [B*T, H*hd]. rows: softmax along rows of S (else columns); by_count: scale
// 1/sqrt(tokens summed) (else 1/sqrt(hd)); causal: running prefix sums (else all tokens).
Var dim_attention(const Var& q, const Var& k, const Var& v, const Var& w, int64_t B, int64_t T, int64_t H, int64_t Hkv,
                  int64_t hd, bool causal, bool rows, bool by_count);

// Multi-linear attention's blocks: x [N, R], g [h, R] -> [N, h*R], y[n, j*R + r] = x[n, r] * g[j, r].
Var diag_blocks(const Var& x, const Var& g);
// Multi-linear attention's split-concat form (Tensorized Transformer, non-causal): per batch row b
// and query a, the N x N slice of the averaged block-term tensor,
//   y[b*N + a, i*N + j] = sum_r gbar[r] q[a,r] k[i,r] v[j,r],  gbar = mean over the h rows of g.
// q/k/v [B*N, R], g [h, R] -> [B*N, N*N].
Var btd_slices(const Var& q, const Var& k, const Var& v, const Var& g, int64_t B, int64_t N);
// The mean of h column blocks: x [N, h*R] -> [N, R].
Var block_mean(const Var& x, int64_t h);

// Embedding rows: table [V, D], ids (i32, N) -> [N, D].
Var embedding(const Var& table, const Tensor& ids);
// x [N, D] with row index[k] replaced by rows[k] (rows [K, D]): image patches spliced into a
// sequence of token embeddings. Indices distinct, in [0, N).
Var replace_rows(const Var& x, const Var& rows, const std::vector<int64_t>& index);
// SEE / word2ket rows: sums over ranks of n-fold tensor products of factor rows, truncated to d.
// f [r, U, q], units (i32, [V, n], each in [0, U)) ->
//   y[v, i] = sum_k prod_j f[k, units[v, j], digit_j(i)],  i < d <= q^n,
// digit_j(i) the j-th base-q digit of i, most significant first (the row-major flattening of
// f[u_1] (x) f[u_2] (x) ... (x) f[u_n]).
Var tensor_product_rows(const Var& f, const Tensor& units, int64_t d);
// Hash-embedding rows: y[v] = sum_j w[v, j] * table[idx[v, j]]; table [B, D], idx (i32, [V, h]),
// w [V, h] -> [V, D].
Var weighted_rows(const Var& table, const Tensor& idx, const Var& w);

// Recurrent scans over B sequences of T steps; rows are b*T + t. h0 (and c0) [B, H] are the
// carried-in states (constants); the final states are written to h_last / c_last when given.
// TSLM: h_t = a_t * (h_{t-1} W^T + b); a [B*T, H] (the input projection), w [H, H], b [H].
Var tslm_scan(const Var& a, const Var& w, const Var& b, const Tensor& h0, int64_t B, int64_t T, Tensor* h_last = nullptr);
// LSTM (PyTorch's gate order i, f, g, o): pre_t = x_t + h_{t-1} W^T + b; c_t = f c_{t-1} + i g;
// h_t = o tanh(c_t). x [B*T, 4H] (the input projection with its bias), w [4H, H], b [4H].
Var lstm_scan(const Var& x, const Var& w, const Var& b, const Tensor& h0, const Tensor& c0, int64_t B, int64_t T,
              Tensor* h_last = nullptr, Tensor* c_last = nullptr);
// Inverted dropout: each element zeroed with probability p, the rest scaled by 1/(1-p).
Var dropout(const Var& x, double p, Rng& rng);

// Mean cross-entropy against soft targets (distillation): -1/N sum_n sum_v p[n,v] log softmax(z[n])[v].
// logits [N, V], probs [N, V] (rows summing to 1; a constant) -> scalar.
Var soft_cross_entropy(const Var& logits, const Tensor& probs);
// Mean cross-entropy over rows whose target is >= 0. logits [N, V], targets (i32, N) -> scalar.
Var cross_entropy(const Var& logits, const Tensor& targets);

}  // namespace clm::ag
