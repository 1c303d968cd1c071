// The GPU half of ops.h (CUDA builds only): the same ops, signatures and checks' results, for f32
// tensors on Device::cuda. ops.cpp forwards an op here when its first input lives on the device;
// ops without a GPU kernel refuse device tensors with a one-line error.
#pragma once
#include "autograd/ops.h"

namespace clm::ag::cuda_ops {

Var linear(const Var& x, const Var& w, const Var& b);
Var add(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var scale(const Var& a, double s);
Var sum(const Var& a);
Var rmsnorm(const Var& x, const Var& w, double eps, double offset);
Var swiglu(const Var& gate, const Var& up);
Var layernorm(const Var& x, const Var& w, const Var& b, double eps);
Var gelu(const Var& x, bool tanh_approx);
Var dropout(const Var& x, double p, Rng& rng);
Var add_rows(const Var& x, const Var& table, int64_t row0, int64_t T);
Var rotary(const Var& x, const Tensor& cos, const Tensor& sin, int64_t B, int64_t T, int64_t H, int64_t hd, bool interleaved);
Var attention(const Var& q, const Var& k, const Var& v, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd, double scale,
              const std::vector<double>& slopes, bool causal);
Var embedding(const Var& table, const Tensor& ids);
Var tslm_scan(const Var& a, const Var& w, const Var& b, const Tensor& h0, int64_t B, int64_t T, Tensor* h_last);
Var lstm_scan(const Var& x, const Var& w, const Var& b, const Tensor& h0, const Tensor& c0, int64_t B, int64_t T, Tensor* h_last,
              Tensor* c_last);

// Attention's GPU form: `gemm` materialises the probabilities [B,H,T,T] (cuBLAS; saved for the
// backward, as the CPU engine does), `flash` streams key tiles and keeps only the log-sum-exp.
// automatic (the default, or the environment's CLM_CUDA_ATTENTION=flash|gemm): gemm while one
// call's probabilities take at most 1 GiB, else flash.
enum class AttnPath { automatic, flash, gemm };
void set_attention_path(AttnPath p);
Var cross_entropy(const Var& logits, const Tensor& targets);

}  // namespace clm::ag::cuda_ops
