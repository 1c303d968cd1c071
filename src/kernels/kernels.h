// CPU kernels on raw, contiguous buffers. Each layer is a forward/backward pair of free functions
// with its shapes on top; backward functions ACCUMULATE (+=) into the gradients they produce.
// T is float (fast path, SIMD via vec()) or double (reference; gradient checks).
#pragma once
#include <algorithm>
#include <cstdint>

namespace clm::kernels {

// Threads used by kernels and BLAS (OpenMP pool). 0 = library default.
void set_num_threads(int n);
int num_threads();

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, leading dimensions in elements.
template <class T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc);

// RMSNorm over the last dim. x,y [N,D]; w [D]; rstd [N] saved for backward.
// y = x * rstd * (w + offset), offset is 0 (Llama) or 1 (Gemma).
template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t D, T eps, T offset);
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t N,
                      int64_t D, T offset);

// LayerNorm over the last dim. x,y [N,D]; w,b [D] (b may be null); mean,rstd [N].
template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N, int64_t D, T eps);
template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean,
                        const T* rstd, int64_t N, int64_t D);

// SwiGLU: y = silu(g) * u, elementwise over n.
template <class T> void swiglu_forward(T* y, const T* g, const T* u, int64_t n);
template <class T> void swiglu_backward(T* dg, T* du, const T* dy, const T* g, const T* u, int64_t n);

// GELU, exact (erf) or tanh approximation.
template <class T> void gelu_forward(T* y, const T* x, int64_t n, bool tanh_approx);
template <class T> void gelu_backward(T* dx, const T* dy, const T* x, int64_t n, bool tanh_approx);

// Rotary position encoding on x [B, T, H, hd] with a per-position table cos/sin [T, hd/2]
// (the position encoding decides the angles: RoPE, 3D-RPE, ... all use this kernel).
// interleaved=false pairs (i, i+hd/2) (Hugging Face rotate-half); true pairs (2i, 2i+1) (llama2.c/GGUF).
template <class T>
void rotary_forward(T* y, const T* x, const T* cos, const T* sin, int64_t B, int64_t Tn, int64_t H,
                    int64_t hd, bool interleaved);
template <class T>
void rotary_backward(T* dx, const T* dy, const T* cos, const T* sin, int64_t B, int64_t Tn, int64_t H,
                     int64_t hd, bool interleaved);

// Softmax over the last dim. x,y [N,D].
template <class T> void softmax_forward(T* y, const T* x, int64_t N, int64_t D);
template <class T> void softmax_backward(T* dx, const T* dy, const T* y, int64_t N, int64_t D);

// Fused log-softmax + negative log-likelihood. logits [N,V], targets [N] (-1 = ignored row).
// Writes lse [N]; returns the summed loss over scored rows and their count.
template <class T>
double cross_entropy_forward(T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                             int64_t* count);
// dlogits += g * (softmax - onehot) on scored rows.
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, int64_t N,
                            int64_t V, T g);

// Embedding lookup. table [V,D], ids [N] -> out [N,D]; ids are checked against V.
template <class T> void embedding_forward(T* out, const T* table, const int32_t* ids, int64_t N, int64_t V, int64_t D);
template <class T> void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t D);

// Causal scaled-dot-product attention with grouped KV heads.
// q [B, Tq, H, hd], k/v [B, Tk, Hkv, hd] addressed through row / batch strides (so a KV cache with
// capacity > Tk is read in place), out [B, Tq, H, hd] contiguous. Query i sits at absolute position
// i + Tk - Tq and sees keys 0..i + Tk - Tq. probs [B, H, Tq, Tk] is saved for backward (may be null
// when no backward follows).
struct AttnShape {
  int64_t B, Tq, Tk, H, Hkv, hd;
  int64_t q_row, q_batch;    // strides of q in elements (row = one token)
  int64_t kv_row, kv_batch;  // strides of k and v
  const double* slopes = nullptr;  // [H] or null: head h adds -slopes[h] * |query pos - key pos| (ALiBi)
  bool causal = true;              // false: every query sees every key (bidirectional, masked-LM training)
};
template <class T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttnShape& s, T scale);
// dq [B,Tq,H,hd], dk/dv [B,Tk,Hkv,hd] contiguous (strides of q / kv in s apply to q,k,v only).
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttnShape& s, T scale);

// TensorCoder dimension-wise attention (arXiv 2008.01547). Per batch row and head h (KV head h/(H/Hkv)):
//   P_t = sum_{n <= t} q_n k_n^T   (hd x hd; every n when !causal)
//   S_t = f(c_t P_t)               f: softmax along each row (rows) or each column; c_t = 1/sqrt(hd),
//                                  or 1/sqrt(number of summed tokens) (by_count)
//   o_t = (W_h . S_t) v_t          W [H, hd, hd] learned, . elementwise
// q [B,T,H,hd], k/v [B,T,Hkv,hd] contiguous, out [B,T,H,hd]. S [B,H,dim_saved(s),hd,hd] is kept for
// the backward (null when none follows): causal, the running sum P before every chunk of
// dim_chunk(s) tokens, from which the backward recomputes the chunk's S_t bit for bit (one more
// forward's work; T/chunk d x d matrices kept instead of T); bidirectional, the one S. Costs O(T hd^2)
// per head and never holds more than a chunk of S_t.
struct DimAttnShape {
  int64_t B, T, H, Hkv, hd;
  bool causal = true, rows = true, by_count = false;
  int64_t chunk = 0;  // tokens per recomputed chunk; 0: 64, fewer for wide heads (a chunk's S_t within 1 MiB of f32)
};
inline int64_t dim_chunk(const DimAttnShape& s) {
  return s.chunk > 0 ? s.chunk : std::max<int64_t>(1, std::min<int64_t>(64, (int64_t(1) << 18) / (s.hd * s.hd)));
}
inline int64_t dim_saved(const DimAttnShape& s) { return s.causal ? (s.T + dim_chunk(s) - 1) / dim_chunk(s) : 1; }
template <class T>
void dim_attention_forward(T* out, T* S, const T* q, const T* k, const T* v, const T* W, const DimAttnShape& s);
template <class T>
void dim_attention_backward(T* dq, T* dk, T* dv, T* dW, const T* dout, const T* S, const T* q, const T* k, const T* v,
                            const T* W, const DimAttnShape& s);
// Decoding: one token of one head with its running state P [hd, hd] (P += q k^T, `count` tokens
// summed after this one), out = (W . f(c P)) v. scratch [hd * hd].
void dim_attention_step(float* out, float* P, float* scratch, const float* q, const float* k, const float* v, const float* W,
                        int64_t hd, int64_t count, bool rows, bool by_count);

// Multi-linear attention, split-concat form (autograd/ops.h btd_slices): y [B*N, N*N],
// y[b*N + a, i*N + j] = sum_r gbar[r] q[a,r] k[i,r] v[j,r] with gbar the mean of g's h rows.
template <class T>
void btd_slices_forward(T* y, const T* q, const T* k, const T* v, const T* g, int64_t B, int64_t N, int64_t R, int64_t h);
template <class T>
void btd_slices_backward(T* dq, T* dk, T* dv, T* dg, const T* dy, const T* q, const T* k, const T* v, const T* g, int64_t B,
                         int64_t N, int64_t R, int64_t h);

// Inference attention, the one routine every decode and prefill path uses: T queries of one head
// (row t at q + t*q_stride, absolute position qpos[t]) against n cached cells of its KV head (K, V
// [n, hd], contiguous), masked by position: cell i takes part in row t when pos[i] <= qpos[t].
// out row t (at out + t*out_stride) = softmax(scale * q·K)·V. scores [T, n] is scratch and is left
// holding the probabilities (0 for masked cells), for observers. One query: dot products; several
// (prefill): two GEMMs. slope != 0 adds -slope * (qpos[t] - pos[i]) to the scores (ALiBi).
void attend_cells(float* out, int64_t out_stride, float* scores, const float* q, int64_t q_stride, const int32_t* qpos,
                  int64_t T, const float* K, const float* V, const int32_t* pos, int64_t n, int64_t hd, float scale,
                  float slope = 0.0f);

}  // namespace clm::kernels
