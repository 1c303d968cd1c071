// GPU ops: shapes were checked by ops.cpp before it forwarded here; this file checks what only the
// device path needs (f32, every input on the device) and calls the kernels in kernels/cuda/cuda.h.
// Backward closures mirror ops.cpp's and accumulate into the inputs' device gradients.
#include "autograd/ops_cuda.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "kernels/cuda/cuda.h"

namespace clm::ag::cuda_ops {

namespace c = clm::cuda;

namespace {
void on_device(const char* op, std::initializer_list<const Var*> vs) {
  for (const Var* v : vs) {
    if (!*v) continue;
    if (!(*v)->value.is_cuda())
      throw std::invalid_argument(std::string(op) + ": inputs on different devices (one on cuda, one on cpu)");
    if ((*v)->value.dtype() != DType::f32)
      throw std::invalid_argument(std::string(op) + ": the CUDA backend runs f32, got " + dtype_name((*v)->value.dtype()));
  }
}
float* ptr(const Var& v) { return v->value.data<float>(); }
float* gptr(const Var& v) { return v->grad_ref().data<float>(); }
bool needs(const Var& v) { return v && v->requires_grad; }
Tensor dev_empty(const Shape& s) { return Tensor::empty(s, DType::f32, Device::cuda); }
int64_t rows(const Tensor& t, int64_t cols) { return cols ? t.numel() / cols : 0; }
}  // namespace

namespace {
Tensor bf16_copy(const Tensor& t) {
  Tensor h = Tensor::empty(t.shape(), DType::bf16, Device::cuda);
  c::to_bf16(static_cast<uint16_t*>(h.raw()), t.data<float>(), t.numel());
  return h;
}
const uint16_t* bits(const Tensor& t) { return static_cast<const uint16_t*>(t.raw()); }

// bf16 autocast's Linear: bf16 copies of x and W feed the forward GEMM and are what the backward
// keeps (half the saved bytes); dY is rounded to bf16 for the two backward GEMMs, which accumulate
// in f32 into the f32 gradients.
Var linear_bf16(const Var& x, const Var& w, const Var& b, int64_t N, int64_t M, int64_t K, const Shape& out_shape) {
  Tensor X16 = bf16_copy(x->value), W16 = bf16_copy(w->value);
  Tensor Y = dev_empty(out_shape);
  if (b) c::rows_set(Y.data<float>(), ptr(b), N, M);
  c::gemm_bf16(false, true, int(N), int(M), int(K), 1.f, bits(X16), int(K), bits(W16), int(K), b ? 1.f : 0.f, Y.data<float>(), int(M));
  return make_result(Y, {&x, &w, &b}, [x, w, b, X16, W16, N, M, K](const Tensor& G) {
    Tensor G16 = bf16_copy(G);
    if (needs(x)) c::gemm_bf16(false, false, int(N), int(K), int(M), 1.f, bits(G16), int(M), bits(W16), int(K), 1.f, gptr(x), int(K));
    if (needs(w)) c::gemm_bf16(true, false, int(M), int(K), int(N), 1.f, bits(G16), int(M), bits(X16), int(K), 1.f, gptr(w), int(K));
    if (needs(b)) c::col_sum_acc(gptr(b), G.data<float>(), nullptr, nullptr, N, M);
  });
}
}  // namespace

Var linear(const Var& x, const Var& w, const Var& b) {
  on_device("linear", {&x, &w, &b});
  const int64_t M = w->value.dim(0), K = w->value.dim(1), N = rows(x->value, K);
  Shape out_shape = x->value.shape();
  out_shape.back() = M;
  if (gpu::bf16()) return linear_bf16(x, w, b, N, M, K, out_shape);
  Tensor Y = dev_empty(out_shape);
  if (b) c::rows_set(Y.data<float>(), ptr(b), N, M);
  c::gemm(false, true, int(N), int(M), int(K), 1.f, ptr(x), int(K), ptr(w), int(K), b ? 1.f : 0.f, Y.data<float>(), int(M));
  return make_result(Y, {&x, &w, &b}, [x, w, b, N, M, K](const Tensor& G) {
    const float* g = G.data<float>();
    if (needs(x)) c::gemm(false, false, int(N), int(K), int(M), 1.f, g, int(M), ptr(w), int(K), 1.f, gptr(x), int(K));
    if (needs(w)) c::gemm(true, false, int(M), int(K), int(N), 1.f, g, int(M), ptr(x), int(K), 1.f, gptr(w), int(K));
    if (needs(b)) c::col_sum_acc(gptr(b), g, nullptr, nullptr, N, M);
  });
}

Var add(const Var& a, const Var& b) {
  on_device("add", {&a, &b});
  Tensor Y = dev_empty(a->value.shape());
  const int64_t n = Y.numel();
  c::add(Y.data<float>(), ptr(a), ptr(b), n);
  return make_result(Y, {&a, &b}, [a, b, n](const Tensor& G) {
    for (const Var* v : {&a, &b})
      if (needs(*v)) c::axpy(gptr(*v), 1.f, G.data<float>(), n);
  });
}

Var mul(const Var& a, const Var& b) {
  on_device("mul", {&a, &b});
  Tensor Y = dev_empty(a->value.shape());
  const int64_t n = Y.numel();
  c::mul(Y.data<float>(), ptr(a), ptr(b), n);
  return make_result(Y, {&a, &b}, [a, b, n](const Tensor& G) {
    if (needs(a)) c::mul_acc(gptr(a), G.data<float>(), ptr(b), n);
    if (needs(b)) c::mul_acc(gptr(b), G.data<float>(), ptr(a), n);
  });
}

Var scale(const Var& a, double s) {
  on_device("scale", {&a});
  Tensor Y = dev_empty(a->value.shape());
  const int64_t n = Y.numel();
  c::scale(Y.data<float>(), float(s), ptr(a), n);
  return make_result(Y, {&a}, [a, n, s](const Tensor& G) { c::axpy(gptr(a), float(s), G.data<float>(), n); });
}

Var sum(const Var& a) {
  on_device("sum", {&a});
  Tensor Y = dev_empty({1});
  const int64_t n = a->value.numel();
  c::sum(Y.data<float>(), ptr(a), n);
  return make_result(Y, {&a}, [a, n](const Tensor& G) { c::add_scalar(gptr(a), G.data<float>(), n); });
}

Var rmsnorm(const Var& x, const Var& w, double eps, double offset) {
  on_device("rmsnorm", {&x, &w});
  const int64_t D = w->value.numel(), N = rows(x->value, D);
  Tensor Y = dev_empty(x->value.shape()), R = dev_empty({N});
  c::rmsnorm_forward(Y.data<float>(), R.data<float>(), ptr(x), ptr(w), N, D, float(eps), float(offset));
  return make_result(Y, {&x, &w}, [x, w, R, N, D, offset](const Tensor& G) {
    c::rmsnorm_backward(needs(x) ? gptr(x) : nullptr, needs(w) ? gptr(w) : nullptr, G.data<float>(), ptr(x), ptr(w),
                        R.data<float>(), N, D, float(offset));
  });
}

Var layernorm(const Var& x, const Var& w, const Var& b, double eps) {
  on_device("layernorm", {&x, &w, &b});
  const int64_t D = w->value.numel(), N = rows(x->value, D);
  Tensor Y = dev_empty(x->value.shape()), Mu = dev_empty({N}), R = dev_empty({N});
  c::layernorm_forward(Y.data<float>(), Mu.data<float>(), R.data<float>(), ptr(x), ptr(w), b ? ptr(b) : nullptr, N, D, float(eps));
  return make_result(Y, {&x, &w, &b}, [x, w, b, Mu, R, N, D](const Tensor& G) {
    c::layernorm_backward(needs(x) ? gptr(x) : nullptr, needs(w) ? gptr(w) : nullptr, needs(b) ? gptr(b) : nullptr, G.data<float>(),
                          ptr(x), ptr(w), Mu.data<float>(), R.data<float>(), N, D);
  });
}

Var gelu(const Var& x, bool tanh_approx) {
  on_device("gelu", {&x});
  Tensor Y = dev_empty(x->value.shape());
  const int64_t n = Y.numel();
  c::gelu_forward(Y.data<float>(), ptr(x), n, tanh_approx);
  return make_result(Y, {&x}, [x, n, tanh_approx](const Tensor& G) { c::gelu_backward(gptr(x), G.data<float>(), ptr(x), n, tanh_approx); });
}

Var dropout(const Var& x, double p, Rng& rng) {
  on_device("dropout", {&x});
  Tensor Y = dev_empty(x->value.shape());
  const int64_t n = Y.numel();
  const uint64_t seed = rng.next();  // one draw per call: the mask is a function of (seed, index)
  c::dropout_forward(Y.data<float>(), ptr(x), n, float(p), seed);
  return make_result(Y, {&x}, [x, n, p, seed](const Tensor& G) { c::dropout_backward(gptr(x), G.data<float>(), n, float(p), seed); });
}

Var add_rows(const Var& x, const Var& table, int64_t row0, int64_t T) {
  on_device("add_rows", {&x, &table});
  const int64_t D = table->value.dim(1), N = rows(x->value, D);
  Tensor Y = dev_empty(x->value.shape());
  c::add_rows_forward(Y.data<float>(), ptr(x), ptr(table), N, D, row0, T);
  return make_result(Y, {&x, &table}, [x, table, row0, T, N, D](const Tensor& G) {
    if (needs(x)) c::axpy(gptr(x), 1.f, G.data<float>(), N * D);
    if (needs(table)) c::add_rows_backward_table(gptr(table), G.data<float>(), N, D, row0, T);
  });
}

Var swiglu(const Var& gate, const Var& up) {
  on_device("swiglu", {&gate, &up});
  Tensor Y = dev_empty(gate->value.shape());
  const int64_t n = Y.numel();
  c::swiglu_forward(Y.data<float>(), ptr(gate), ptr(up), n);
  return make_result(Y, {&gate, &up}, [gate, up, n](const Tensor& G) {
    c::swiglu_backward(gptr(gate), gptr(up), G.data<float>(), ptr(gate), ptr(up), n);
  });
}

Var rotary(const Var& x, const Tensor& cos, const Tensor& sin, int64_t B, int64_t T, int64_t H, int64_t hd, bool interleaved) {
  on_device("rotary", {&x});
  if (!cos.is_cuda() || !sin.is_cuda() || cos.dtype() != DType::f32 || sin.dtype() != DType::f32)
    throw std::invalid_argument("rotary: the cos/sin tables must be f32 on the device");
  Tensor Y = dev_empty(x->value.shape());
  c::rotary_forward(Y.data<float>(), ptr(x), cos.data<float>(), sin.data<float>(), B, T, H, hd, interleaved);
  return make_result(Y, {&x}, [x, cos, sin, B, T, H, hd, interleaved](const Tensor& G) {
    c::rotary_backward(gptr(x), G.data<float>(), cos.data<float>(), sin.data<float>(), B, T, H, hd, interleaved);
  });
}

namespace {
AttnPath path_from_env() {
  const char* e = std::getenv("CLM_CUDA_ATTENTION");
  const std::string v = e ? e : "";
  if (v == "flash") return AttnPath::flash;
  if (v == "gemm") return AttnPath::gemm;
  if (!v.empty() && v != "auto") throw std::invalid_argument("CLM_CUDA_ATTENTION must be flash, gemm or auto, got '" + v + "'");
  return AttnPath::automatic;
}
AttnPath g_attn_path = AttnPath::automatic;
bool g_attn_env_read = false;
}  // namespace

void set_attention_path(AttnPath p) {
  g_attn_path = p;
  g_attn_env_read = true;
}

Var attention(const Var& q, const Var& k, const Var& v, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd, double scale,
              const std::vector<double>& slopes, bool causal) {
  on_device("attention", {&q, &k, &v});
  if (!g_attn_env_read) g_attn_path = path_from_env(), g_attn_env_read = true;
  const bool gemm = g_attn_path == AttnPath::gemm || (g_attn_path == AttnPath::automatic && B * H * T * T <= (int64_t(1) << 28));
  Tensor S;
  if (!slopes.empty()) {
    Tensor h = Tensor::empty({H}, DType::f32);
    for (int64_t i = 0; i < H; ++i) h.data<float>()[i] = float(slopes[size_t(i)]);
    S = h.to_device(Device::cuda);
  }
  c::Attn s{B, T, H, Hkv, hd, float(scale), S.defined() ? S.data<float>() : nullptr, causal};
  if (gemm) {
    Tensor Y = dev_empty({B * T, H * hd}), P = dev_empty({B, H, T, T});
    c::attention_forward_gemm(Y.data<float>(), P.data<float>(), ptr(q), ptr(k), ptr(v), s);
    if (!grad_enabled() || !(needs(q) || needs(k) || needs(v))) P = Tensor();  // evaluation: nothing to keep
    return make_result(Y, {&q, &k, &v}, [q, k, v, P, S, s](const Tensor& G) {
      Tensor dP = dev_empty({s.B, s.T, s.T});
      c::attention_backward_gemm(gptr(q), gptr(k), gptr(v), dP.data<float>(), G.data<float>(), P.data<float>(), ptr(q), ptr(k), ptr(v), s);
    });
  }
  Tensor Y = dev_empty({B * T, H * hd}), L = dev_empty({B, H, T});
  c::attention_forward(Y.data<float>(), L.data<float>(), ptr(q), ptr(k), ptr(v), s);
  Tensor Yv = Y;
  return make_result(Y, {&q, &k, &v}, [q, k, v, Yv, L, S, s](const Tensor& G) {
    Tensor D = dev_empty({s.B, s.H, s.T});
    c::attention_backward(gptr(q), gptr(k), gptr(v), D.data<float>(), G.data<float>(), Yv.data<float>(), L.data<float>(), ptr(q),
                          ptr(k), ptr(v), s);
  });
}

Var embedding(const Var& table, const Tensor& ids) {
  on_device("embedding", {&table});
  const int64_t V = table->value.dim(0), D = table->value.dim(1), N = ids.numel();
  Tensor host = ids.cpu().contiguous();
  const int32_t* id = host.data<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    if (id[i] < 0 || id[i] >= V)
      throw std::out_of_range("embedding: token id " + std::to_string(id[i]) + " outside vocab of " + std::to_string(V));
  Tensor Y = dev_empty({N, D});
  Tensor dids = host.to_device(Device::cuda);
  c::embedding_forward(Y.data<float>(), ptr(table), dids.data<int32_t>(), N, D);
  return make_result(Y, {&table}, [table, host, N, D](const Tensor& G) {
    // Group positions by id on the host (a stable sort keeps each id's rows in sequence order).
    const int32_t* id = host.data<int32_t>();
    std::vector<int32_t> order(static_cast<size_t>(N));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return id[a] < id[b]; });
    std::vector<int32_t> uid, starts;
    for (int64_t k = 0; k < N; ++k)
      if (k == 0 || id[order[size_t(k)]] != id[order[size_t(k - 1)]]) uid.push_back(id[order[size_t(k)]]), starts.push_back(int32_t(k));
    starts.push_back(int32_t(N));
    auto up = [](const std::vector<int32_t>& v) {
      Tensor t = Tensor::empty({int64_t(v.size())}, DType::i32);
      std::copy(v.begin(), v.end(), t.data<int32_t>());
      return t.to_device(Device::cuda);
    };
    Tensor du = up(uid), ds = up(starts), dor = up(order);
    c::embedding_backward(gptr(table), G.data<float>(), du.data<int32_t>(), ds.data<int32_t>(), dor.data<int32_t>(),
                          int64_t(uid.size()), D);
  });
}

Var cross_entropy(const Var& logits, const Tensor& targets) {
  on_device("cross_entropy", {&logits});
  const int64_t V = logits->value.dim(-1), N = rows(logits->value, V);
  Tensor host = targets.cpu().contiguous();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int32_t t = host.data<int32_t>()[i];
    if (t >= V) throw std::out_of_range("cross_entropy: target id out of range for vocab " + std::to_string(V));
    count += t >= 0;
  }
  const float inv = count ? 1.f / float(count) : 0.f;
  Tensor dt = host.to_device(Device::cuda);
  Tensor Y = dev_empty({1}), L = dev_empty({N});
  c::cross_entropy_forward(Y.data<float>(), L.data<float>(), ptr(logits), dt.data<int32_t>(), N, V, inv);
  return make_result(Y, {&logits}, [logits, dt, L, N, V, inv, count](const Tensor& G) {
    if (count == 0) return;
    c::cross_entropy_backward(gptr(logits), G.data<float>(), ptr(logits), L.data<float>(), dt.data<int32_t>(), N, V, inv);
  });
}

// The recurrent scans: per step one cuBLAS product with the previous state and one elementwise
// kernel (kernels/cuda/recurrent.cu); the backward walks the steps back the same way and forms the
// recurrent weight's and bias's gradients once, over every step, from the saved step gradients.
namespace {
Tensor state_on_device(const Tensor& s) { return s.to(DType::f32).to_device(Device::cuda).contiguous(); }
}  // namespace

Var tslm_scan(const Var& a, const Var& w, const Var& b, const Tensor& h0, int64_t B, int64_t T, Tensor* h_last) {
  on_device("tslm_scan", {&a, &w, &b});
  const int64_t H = w->value.dim(0), ld = T * H;
  Tensor Y = dev_empty({B * T, H}), Z = dev_empty({B * T, H}), H0 = state_on_device(h0);
  float *y = Y.data<float>(), *z = Z.data<float>();
  for (int64_t t = 0; t < T; ++t) {
    const float* hp = t == 0 ? H0.data<float>() : y + (t - 1) * H;
    c::gemm(false, true, int(B), int(H), int(H), 1.f, hp, int(t == 0 ? H : ld), ptr(w), int(H), 0.f, z + t * H, int(ld));
    c::tslm_step_forward(y + t * H, z + t * H, ptr(a) + t * H, ptr(b), B, H, ld);
  }
  if (h_last) {
    *h_last = dev_empty({B, H});
    c::copy_rows(h_last->data<float>(), H, y + (T - 1) * H, ld, B, H);
  }
  return make_result(Y, {&a, &w, &b}, [a, w, b, H0, Y, Z, B, T, H, ld](const Tensor& G) {
    Tensor DZ = dev_empty({B * T, H}), DH = Tensor::zeros({B, H}, DType::f32, Device::cuda);
    float *dz = DZ.data<float>(), *da = needs(a) ? gptr(a) : nullptr;
    for (int64_t t = T - 1; t >= 0; --t) {
      c::tslm_step_backward(dz + t * H, da ? da + t * H : nullptr, DH.data<float>(), G.data<float>() + t * H, ptr(a) + t * H,
                            Z.data<float>() + t * H, B, H, ld);
      if (t > 0) c::gemm(false, false, int(B), int(H), int(H), 1.f, dz + t * H, int(ld), ptr(w), int(H), 0.f, DH.data<float>(), int(H));
    }
    if (needs(w)) {
      Tensor HP = dev_empty({B * T, H});
      c::previous_states(HP.data<float>(), Y.data<float>(), H0.data<float>(), B, T, H);
      c::gemm(true, false, int(H), int(H), int(B * T), 1.f, dz, int(H), HP.data<float>(), int(H), 1.f, gptr(w), int(H));
    }
    if (needs(b)) c::col_sum_acc(gptr(b), dz, nullptr, nullptr, B * T, H);
  });
}

Var lstm_scan(const Var& x, const Var& w, const Var& b, const Tensor& h0, const Tensor& c0, int64_t B, int64_t T, Tensor* h_last,
              Tensor* c_last) {
  on_device("lstm_scan", {&x, &w, &b});
  const int64_t H = w->value.dim(1), G4 = 4 * H, ldq = T * G4, ldh = T * H;
  Tensor Y = dev_empty({B * T, H}), A = dev_empty({B * T, G4}), C = dev_empty({B * T, H});
  Tensor H0 = state_on_device(h0), C0 = state_on_device(c0);
  float *y = Y.data<float>(), *q = A.data<float>(), *cs = C.data<float>();
  for (int64_t t = 0; t < T; ++t) {
    const float* hp = t == 0 ? H0.data<float>() : y + (t - 1) * H;
    const float* cp = t == 0 ? C0.data<float>() : cs + (t - 1) * H;
    c::gemm(false, true, int(B), int(G4), int(H), 1.f, hp, int(t == 0 ? H : ldh), ptr(w), int(H), 0.f, q + t * G4, int(ldq));
    c::lstm_step_forward(y + t * H, cs + t * H, q + t * G4, ptr(x) + t * G4, ptr(b), cp, t == 0 ? H : ldh, B, H, ldq, ldh);
  }
  if (h_last) {
    *h_last = dev_empty({B, H});
    c::copy_rows(h_last->data<float>(), H, y + (T - 1) * H, ldh, B, H);
  }
  if (c_last) {
    *c_last = dev_empty({B, H});
    c::copy_rows(c_last->data<float>(), H, cs + (T - 1) * H, ldh, B, H);
  }
  return make_result(Y, {&x, &w, &b}, [x, w, b, H0, C0, Y, A, C, B, T, H, G4, ldq, ldh](const Tensor& G) {
    Tensor DQ = dev_empty({B * T, G4}), DH = Tensor::zeros({B, H}, DType::f32, Device::cuda), DC = Tensor::zeros({B, H}, DType::f32, Device::cuda);
    float* dq = DQ.data<float>();
    const float* cs = C.data<float>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* cp = t == 0 ? C0.data<float>() : cs + (t - 1) * H;
      c::lstm_step_backward(dq + t * G4, DC.data<float>(), DH.data<float>(), G.data<float>() + t * H, A.data<float>() + t * G4, cs + t * H,
                            cp, t == 0 ? H : ldh, B, H, ldq, ldh);
      if (t > 0) c::gemm(false, false, int(B), int(H), int(G4), 1.f, dq + t * G4, int(ldq), ptr(w), int(H), 0.f, DH.data<float>(), int(H));
    }
    if (needs(x)) c::axpy(gptr(x), 1.f, dq, B * T * G4);
    if (needs(w)) {
      Tensor HP = dev_empty({B * T, H});
      c::previous_states(HP.data<float>(), Y.data<float>(), H0.data<float>(), B, T, H);
      c::gemm(true, false, int(G4), int(H), int(B * T), 1.f, dq, int(G4), HP.data<float>(), int(H), 1.f, gptr(w), int(H));
    }
    if (needs(b)) c::col_sum_acc(gptr(b), dq, nullptr, nullptr, B * T, G4);
  });
}

}  // namespace clm::ag::cuda_ops
