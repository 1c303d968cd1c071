// CUDA kernels (f32): the launchers behind autograd's GPU path (autograd/ops_cuda.cpp) and the
// optimizer. Plain C++ declarations, so host code includes this without nvcc. Pointers are device
// pointers; every launch goes on the default stream, so kernels run in the order they were queued
// and a host read (Tensor::cpu) waits for all of them. Layouts and formulas are those of the CPU
// kernels in kernels.h; tests/test_cuda.cpp compares each one with its CPU twin.
#pragma once
#include <cstdint>

namespace clm::cuda {

// Row-major C[M,N] = alpha op(A) op(B) + beta C through cuBLAS (kernels::gemm's contract).
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
          float* C, int ldc);
// Strided-batched: `batch` products, operand i at A + i*sa, B + i*sb, C + i*sc.
void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, int64_t sa, const float* B, int ldb,
                  int64_t sb, float beta, float* C, int ldc, int64_t sc, int batch);
// The same with bf16 inputs (raw bf16 bits), f32 accumulation and an f32 C (bf16 autocast's matmuls).
void gemm_bf16(bool ta, bool tb, int M, int N, int K, float alpha, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc);
void to_bf16(uint16_t* y, const float* x, int64_t n);  // round to nearest even
// Tensor-core GEMMs of quantized codes through cuBLASLt (kernels/cuda/gemm_lt.cu), C = A B^T with
// A [M, K] and B [N, K] row-major (activations and a weight), C [M, N] row-major; M, N, K multiples
// of 16 (std::invalid_argument otherwise).
void gemm_lt_init();  // the cuBLASLt handle and workspace, made now (before capturing a graph)
// INT8 codes, exact INT32 sums:
void gemm_i8(int M, int N, int K, const int8_t* A, const int8_t* B, int32_t* C);
// FP8 E4M3 codes, f32 accumulation, C = a_scale[0] b_scale[0] A B^T (scales on the device, or null
// for 1) stored as f32 or, with c_bf16, bf16:
void gemm_fp8(int M, int N, int K, const uint8_t* A, const uint8_t* B, const float* a_scale, const float* b_scale, void* C,
              bool c_bf16);
// A W8A8 linear layer, y [M, N] = dequant(Q(x) Wq^T): x [M, K] f32 quantized per token on the device
// as quant::Int8Format does on the CPU (mode 0: absmax / 127; 1, SmoothQuant: x / cvec first;
// 2, CrossQuant: step (absmax^alpha / 127) cvec[j]), wq the INT8 codes with per-row scales sw [N],
// then gemm_i8 and y = acc sx[t] sw[n]. The GEMM's dimensions are padded to multiples of 16 with
// zero codes: wq is [i8_pad(N), i8_pad(K)] (zero beyond N rows / K columns); scratch xq
// [i8_pad(M), i8_pad(K)], sx [i8_pad(M)], acc [i8_pad(M), i8_pad(N)]. Non-finite inputs are not
// checked here. y's rows are ldy apart (0: N); accumulate adds to y instead of writing it.
int64_t i8_pad(int64_t n);  // n rounded up to 16
void linear_i8(float* y, const float* x, const int8_t* wq, const float* sw, int64_t M, int64_t N, int64_t K, const float* cvec, int mode,
               double alpha, int8_t* xq, float* sx, int32_t* acc, int64_t ldy = 0, bool accumulate = false);
// An NVFP4 W4A4 linear layer (quant::Nvfp4Format on the device; ARCQuant when perm / ke are given):
// y [M, N] (= or +=) st_w[n] st_x sum_b ws_b xs_b sum_{k in b} w_k x_k. Weights: codes [N, Kp / 2]
// (E2M1, element 2k the low nibble of byte k), block scales [N, Kp / 16] (unsigned E4M3 bytes), the
// tensor scale of each row st_w [N] (Linears that share an input stack their rows); Kp = nvfp4_pad(K + ke). Activations x [M, K] f32, quantized on the device by the CPU format's
// rules: reordered by perm [K] (null: identity), one tensor scale st_x over the M tokens, blocks of 16,
// and with ke > 0 the residual of the last ke reordered channels (bf16-rounded when bf16_residual)
// quantized again and appended at K (K and ke multiples of 16). Codes and scales come out as the CPU's
// bit for bit; the products are int8 dot products of doubled E2M1 values, one weight read per 8
// tokens. Scratch: xq [M, Kp] int8, xs [M, Kp / 16] f32, amax [kNvfp4AmaxFloats] f32 (amax[0]: the
// call's activation absmax). y's rows are ldy apart (0: N).
constexpr int64_t kNvfp4AmaxFloats = 129;
// Calls of kNvfp4GemmTokens tokens or more, given this scratch, multiply on tensor cores instead:
// weights and activations expanded to bf16 values code x block scale (exact: at most 6 significant
// bits each), one bf16 GEMM with f32 accumulation, the two tensor scales applied to its output: the
// same sums as the GEMV's in another order. w [N, Kp] bf16, x [M, Kp] bf16, acc [M, N] f32.
constexpr int64_t kNvfp4GemmTokens = 16;
struct Nvfp4GemmScratch {
  uint16_t* w = nullptr;
  uint16_t* x = nullptr;
  float* acc = nullptr;
};
int64_t nvfp4_pad(int64_t k);  // k rounded up to 32
void linear_nvfp4(float* y, const float* x, const uint8_t* codes, const uint8_t* scales, const float* st_w, int64_t M, int64_t N,
                  int64_t K, int64_t ke, const int32_t* perm, bool bf16_residual, int8_t* xq, float* xs, float* amax, int64_t ldy = 0,
                  bool accumulate = false, const Nvfp4GemmScratch& tc = {});
// TF32 tensor-core GEMMs (10-bit mantissa products, f32 accumulation): off by default (exact f32).
void set_tf32(bool on);

void add(float* y, const float* a, const float* b, int64_t n);      // y = a + b
void axpy(float* y, float a, const float* x, int64_t n);            // y += a x
void scale(float* y, float a, const float* x, int64_t n);           // y = a x
void mul(float* y, const float* a, const float* b, int64_t n);      // y = a * b
void mul_acc(float* y, const float* a, const float* b, int64_t n);  // y += a * b
void fill(float* y, float v, int64_t n);
void sum(float* out, const float* x, int64_t n);                     // out[0] = sum x, fixed order
void add_scalar(float* y, const float* s, int64_t n);               // y += s[0] (s on the device)
void rows_set(float* y, const float* row, int64_t N, int64_t M);    // every row of y [N,M] = row
// out[j] += sum_i x[i,j] (times (z[i,j] - mu[i]) r[i] when z is given; mu may be null): a bias
// gradient, the norms' weight gradients. A fixed reduction order: the same bits on every run.
void col_sum_acc(float* out, const float* x, const float* z, const float* r, int64_t N, int64_t M, const float* mu = nullptr);

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N, int64_t D, float eps, float offset);
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t N,
                      int64_t D, float offset);
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N, int64_t D,
                       float eps);
void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, int64_t N, int64_t D);
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_approx);
void gelu_backward(float* dx, const float* dy, const float* x, int64_t n, bool tanh_approx);
// Inverted dropout with a counter-based mask: element i is dropped when hash(seed, i) < p, so the
// backward recomputes the mask instead of storing it.
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed);
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed);
// y[r] = x[r] + table[row0 + r % T] (learned positions); the backward sums each table row's
// gradient over the batch in order.
void add_rows_forward(float* y, const float* x, const float* table, int64_t N, int64_t D, int64_t row0, int64_t T);
void add_rows_backward_table(float* dtable, const float* dy, int64_t N, int64_t D, int64_t row0, int64_t T);
void swiglu_forward(float* y, const float* g, const float* u, int64_t n);
void swiglu_backward(float* dg, float* du, const float* dy, const float* g, const float* u, int64_t n);
// x [B, T, H, hd] by the tables [T, hd/2]; backward accumulates the transposed rotation into dx.
void rotary_forward(float* y, const float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H, int64_t hd,
                    bool interleaved);
void rotary_backward(float* dx, const float* dy, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H,
                     int64_t hd, bool interleaved);

// Embedding rows. The backward is deterministic: `order` lists the N positions grouped by id, the
// group of unique id uid[u] running over order[starts[u] .. starts[u+1]) (sorted on the host).
void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t D);
void embedding_backward(float* dtable, const float* dout, const int32_t* uid, const int32_t* starts, const int32_t* order,
                        int64_t U, int64_t D);

// Softmax attention, q [B,T,H,hd], k/v [B,T,Hkv,hd], out [B,T,H,hd]; query head h reads KV head
// h / (H/Hkv). One pass over the keys with a running max (never an N x N matrix); lse [B,H,T] keeps
// the log-sum-exp of every row for the backward, which recomputes the probabilities from it.
// slopes [H] (device) or null: ALiBi bias -slopes[h] |i - j|. hd <= 128.
struct Attn {
  int64_t B, T, H, Hkv, hd;
  float scale;
  const float* slopes;
  bool causal;
};
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const Attn& s);
// Accumulates into dq, dk, dv. scratch: B*H*T floats.
void attention_backward(float* dq, float* dk, float* dv, float* scratch, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, const Attn& s);
// The materialised form (the CPU engine's): probs P [B,H,T,T] = softmax(scale q k^T + bias) through
// cuBLAS batched GEMMs, saved for the backward, which needs dP scratch [B,T,T]. Faster than the
// one-pass kernels while P fits in memory (tensor cores under --tf32).
void attention_forward_gemm(float* out, float* probs, const float* q, const float* k, const float* v, const Attn& s);
void attention_backward_gemm(float* dq, float* dk, float* dv, float* dP, const float* dout, const float* probs, const float* q,
                             const float* k, const float* v, const Attn& s);

// Cross-entropy over rows with target >= 0 (targets device, i32): lse[N] saved, loss[0] = sum of
// (lse - z[target]) * inv_count, summed in a fixed order. Backward: dz += g[0] inv_count (softmax - onehot).
void cross_entropy_forward(float* loss, float* lse, const float* z, const int32_t* targets, int64_t N, int64_t V,
                           float inv_count);
void cross_entropy_backward(float* dz, const float* g, const float* z, const float* lse, const int32_t* targets, int64_t N,
                            int64_t V, float inv_count);

// Recurrent cells (kernels/cuda/recurrent.cu), one time step of B lanes whose rows are `ld` apart
// (rows b*T + t of the [B*T, *] arrays of autograd's scans). TSLM: z = z + b (z holds h_{t-1} W^T),
// y = a * z; backward: d = dh + g, da += d * z, dz = d * a. LSTM: q holds h_{t-1} W^T [B, 4H] and
// becomes the gates' activations (i, f, g, o from q + x + b), c = f c_prev + i g, y = o tanh(c);
// backward: dq the four gates' pre-activation gradients, dc (the carried cell gradient) updated.
void tslm_step_forward(float* y, float* z, const float* a, const float* b, int64_t B, int64_t H, int64_t ld);
void tslm_step_backward(float* dz, float* da, const float* dh, const float* g, const float* a, const float* z, int64_t B, int64_t H,
                        int64_t ld);
void lstm_step_forward(float* y, float* c, float* q, const float* x, const float* b, const float* c_prev, int64_t ld_prev, int64_t B,
                       int64_t H, int64_t ldq, int64_t ldh);
void lstm_step_backward(float* dq, float* dc, const float* dh, const float* g, const float* q, const float* c, const float* c_prev,
                        int64_t ld_prev, int64_t B, int64_t H, int64_t ldq, int64_t ldh);
void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t R, int64_t W);  // R rows of W floats
// hp [B*T, H]: row b*T + t = h_{t-1} of lane b (h0's row b at t = 0): the recurrent weight's
// gradient as one GEMM over every step.
void previous_states(float* hp, const float* y, const float* h0, int64_t B, int64_t T, int64_t H);

// AdamW on one tensor (train/optim.cpp's formula, element for element).
void adamw(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size, float inv_sqrt_bc2,
           float eps, float decay);
// out[0] = sum of x^2 in f64, a fixed reduction order (gradient clipping).
void sum_squares(double* out, const float* x, int64_t n);

}  // namespace clm::cuda
