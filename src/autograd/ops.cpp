#include "autograd/ops.h"

#include <cmath>

#include "kernels/kernels.h"
#ifdef CLM_CUDA
#include "autograd/ops_cuda.h"
// An op whose first input lives on the GPU runs its twin in ops_cuda.cpp.
#define CLM_ON_GPU(v, call) \
  if ((v)->value.is_cuda()) return cuda_ops::call
#else
#define CLM_ON_GPU(v, call)
#endif

namespace clm::ag {

namespace k = clm::kernels;

namespace {
void expect(bool ok, const char* op, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}
int64_t rows(const Tensor& t, int64_t cols) { return cols ? t.numel() / cols : 0; }
// Host pointers only: an op without a GPU kernel that is handed a device tensor stops here.
void host_only(const Var& v) {
  if (v->value.is_cuda())
    throw std::invalid_argument("an op without a CUDA kernel was given a GPU tensor (run this model with --device cpu)");
}
template <class T> T* mut(const Var& v) {
  host_only(v);
  return v->value.data<T>();
}
template <class T> T* gradp(const Var& v) { return v->grad_ref().data<T>(); }
bool needs(const Var& v) { return v && v->requires_grad; }
void check_same_dtype(const char* op, const Var& a, const Var& b) {
  expect(a->value.dtype() == b->value.dtype(), op,
         std::string("dtype mismatch ") + dtype_name(a->value.dtype()) + " vs " + dtype_name(b->value.dtype()));
}
}  // namespace

Var linear(const Var& x, const Var& w, const Var& b) {
  const Tensor &X = x->value, &W = w->value;
  expect(W.ndim() == 2, "linear", "weight must be 2-D, got " + shape_str(W.shape()));
  const int64_t M = W.dim(0), K = W.dim(1);
  expect(X.dim(-1) == K, "linear", "input " + shape_str(X.shape()) + " vs weight " + shape_str(W.shape()));
  check_same_dtype("linear", x, w);
  const int64_t N = rows(X, K);
  Shape out_shape = X.shape();
  out_shape.back() = M;
  CLM_ON_GPU(x, linear(x, w, b));
  Tensor Y = Tensor::empty(out_shape, X.dtype());
  dispatch_float(X.dtype(), [&]<class T>() {
    T* y = Y.data<T>();
    if (b) {
      expect(b->value.numel() == M, "linear", "bias size mismatch");
      const T* bb = b->value.data<T>();
      for (int64_t i = 0; i < N; ++i) std::copy(bb, bb + M, y + i * M);
    }
    k::gemm<T>(false, true, (int)N, (int)M, (int)K, T(1), X.data<T>(), (int)K, W.data<T>(), (int)K, T(b ? 1 : 0), y,
               (int)M);
  });
  return make_result(Y, {&x, &w, &b}, [x, w, b, N, M, K](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      if (needs(x))  // dX += dY W
        k::gemm<T>(false, false, (int)N, (int)K, (int)M, T(1), g, (int)M, mut<T>(w), (int)K, T(1), gradp<T>(x), (int)K);
      if (needs(w))  // dW += dY^T X
        k::gemm<T>(true, false, (int)M, (int)K, (int)N, T(1), g, (int)M, mut<T>(x), (int)K, T(1), gradp<T>(w), (int)K);
      if (needs(b)) {
        T* db = gradp<T>(b);
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < M; ++j) db[j] += g[i * M + j];
      }
    });
  });
}

Var add(const Var& a, const Var& b) {
  expect(a->value.shape() == b->value.shape(), "add",
         shape_str(a->value.shape()) + " vs " + shape_str(b->value.shape()));
  check_same_dtype("add", a, b);
  CLM_ON_GPU(a, add(a, b));
  Tensor Y = Tensor::empty(a->value.shape(), a->value.dtype());
  const int64_t n = Y.numel();
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T *pa = mut<T>(a), *pb = mut<T>(b);
    T* y = Y.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = pa[i] + pb[i];
  });
  return make_result(Y, {&a, &b}, [a, b, n](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      for (const Var* v : {&a, &b}) {
        if (!needs(*v)) continue;
        T* d = gradp<T>(*v);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) d[i] += g[i];
      }
    });
  });
}

Var mul(const Var& a, const Var& b) {
  expect(a->value.shape() == b->value.shape(), "mul",
         shape_str(a->value.shape()) + " vs " + shape_str(b->value.shape()));
  check_same_dtype("mul", a, b);
  CLM_ON_GPU(a, mul(a, b));
  Tensor Y = Tensor::empty(a->value.shape(), a->value.dtype());
  const int64_t n = Y.numel();
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T *pa = mut<T>(a), *pb = mut<T>(b);
    T* y = Y.data<T>();
    for (int64_t i = 0; i < n; ++i) y[i] = pa[i] * pb[i];
  });
  return make_result(Y, {&a, &b}, [a, b, n](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      if (needs(a)) {
        T* d = gradp<T>(a);
        const T* o = mut<T>(b);
        for (int64_t i = 0; i < n; ++i) d[i] += g[i] * o[i];
      }
      if (needs(b)) {
        T* d = gradp<T>(b);
        const T* o = mut<T>(a);
        for (int64_t i = 0; i < n; ++i) d[i] += g[i] * o[i];
      }
    });
  });
}

Var scale(const Var& a, double s) {
  CLM_ON_GPU(a, scale(a, s));
  Tensor Y = Tensor::empty(a->value.shape(), a->value.dtype());
  const int64_t n = Y.numel();
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T* pa = mut<T>(a);
    T* y = Y.data<T>();
    for (int64_t i = 0; i < n; ++i) y[i] = T(s) * pa[i];
  });
  return make_result(Y, {&a}, [a, n, s](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      T* d = gradp<T>(a);
      for (int64_t i = 0; i < n; ++i) d[i] += T(s) * g[i];
    });
  });
}

Var sum(const Var& a) {
  CLM_ON_GPU(a, sum(a));
  Tensor Y = Tensor::empty({1}, a->value.dtype());
  const int64_t n = a->value.numel();
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T* pa = mut<T>(a);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += pa[i];
    Y.data<T>()[0] = T(s);
  });
  return make_result(Y, {&a}, [a, n](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      T g = G.data<T>()[0];
      T* d = gradp<T>(a);
      for (int64_t i = 0; i < n; ++i) d[i] += g;
    });
  });
}

Var add_rows(const Var& x, const Var& table, int64_t row0, int64_t T_) {
  const int64_t D = table->value.dim(1), P = table->value.dim(0);
  expect(x->value.dim(-1) == D, "add_rows", "feature size mismatch");
  expect(row0 >= 0 && row0 + T_ <= P, "add_rows",
         "positions " + std::to_string(row0) + ".." + std::to_string(row0 + T_) + " exceed table of " +
             std::to_string(P));
  const int64_t N = rows(x->value, D);
  expect(T_ > 0 && N % T_ == 0, "add_rows", "rows not a multiple of T");
  CLM_ON_GPU(x, add_rows(x, table, row0, T_));
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T *px = mut<T>(x), *pt = mut<T>(table);
    T* y = Y.data<T>();
    for (int64_t r = 0; r < N; ++r)
      for (int64_t j = 0; j < D; ++j) y[r * D + j] = px[r * D + j] + pt[(row0 + r % T_) * D + j];
  });
  return make_result(Y, {&x, &table}, [x, table, row0, T_, N, D](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      if (needs(x)) {
        T* d = gradp<T>(x);
        for (int64_t i = 0; i < N * D; ++i) d[i] += g[i];
      }
      if (needs(table)) {
        T* d = gradp<T>(table);
        for (int64_t r = 0; r < N; ++r)
          for (int64_t j = 0; j < D; ++j) d[(row0 + r % T_) * D + j] += g[r * D + j];
      }
    });
  });
}

Var columns(const Var& x, int64_t c0, int64_t c1) {
  const int64_t C = x->value.dim(-1);
  expect(0 <= c0 && c0 < c1 && c1 <= C, "columns", "range out of bounds");
  const int64_t N = rows(x->value, C), W = c1 - c0;
  Tensor Y = Tensor::empty({N, W}, x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T* px = mut<T>(x);
    T* y = Y.data<T>();
    for (int64_t r = 0; r < N; ++r) std::copy(px + r * C + c0, px + r * C + c1, y + r * W);
  });
  return make_result(Y, {&x}, [x, c0, N, W, C](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* g = G.data<T>();
      T* d = gradp<T>(x);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t j = 0; j < W; ++j) d[r * C + c0 + j] += g[r * W + j];
    });
  });
}

Var rmsnorm(const Var& x, const Var& w, double eps, double offset) {
  const int64_t D = w->value.numel();
  expect(x->value.dim(-1) == D, "rmsnorm", "input " + shape_str(x->value.shape()) + " vs weight " +
                                                 shape_str(w->value.shape()));
  check_same_dtype("rmsnorm", x, w);
  const int64_t N = rows(x->value, D);
  CLM_ON_GPU(x, rmsnorm(x, w, eps, offset));
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  Tensor R = Tensor::empty({N}, x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::rmsnorm_forward<T>(Y.data<T>(), R.data<T>(), mut<T>(x), mut<T>(w), N, D, T(eps), T(offset));
  });
  return make_result(Y, {&x, &w}, [x, w, R, N, D, offset](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      Tensor dw_scratch;
      T* dw = needs(w) ? gradp<T>(w) : (dw_scratch = Tensor::zeros({D}, G.dtype())).template data<T>();
      Tensor dx_scratch;
      T* dx = needs(x) ? gradp<T>(x) : (dx_scratch = Tensor::zeros(G.shape(), G.dtype())).template data<T>();
      k::rmsnorm_backward<T>(dx, dw, G.data<T>(), mut<T>(x), mut<T>(w), R.data<T>(), N, D, T(offset));
    });
  });
}

Var layernorm(const Var& x, const Var& w, const Var& b, double eps) {
  const int64_t D = w->value.numel();
  expect(x->value.dim(-1) == D, "layernorm", "input " + shape_str(x->value.shape()) + " vs weight " +
                                                   shape_str(w->value.shape()));
  const int64_t N = rows(x->value, D);
  CLM_ON_GPU(x, layernorm(x, w, b, eps));
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  Tensor Mu = Tensor::empty({N}, x->value.dtype()), R = Tensor::empty({N}, x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::layernorm_forward<T>(Y.data<T>(), Mu.data<T>(), R.data<T>(), mut<T>(x), mut<T>(w), b ? mut<T>(b) : nullptr, N,
                            D, T(eps));
  });
  return make_result(Y, {&x, &w, &b}, [x, w, b, Mu, R, N, D](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      Tensor sx, sw;
      T* dx = needs(x) ? gradp<T>(x) : (sx = Tensor::zeros(G.shape(), G.dtype())).template data<T>();
      T* dw = needs(w) ? gradp<T>(w) : (sw = Tensor::zeros({D}, G.dtype())).template data<T>();
      T* db = needs(b) ? gradp<T>(b) : nullptr;
      k::layernorm_backward<T>(dx, dw, db, G.data<T>(), mut<T>(x), mut<T>(w), Mu.data<T>(), R.data<T>(), N, D);
    });
  });
}

Var swiglu(const Var& gate, const Var& up) {
  expect(gate->value.shape() == up->value.shape(), "swiglu", "gate and up shapes differ");
  CLM_ON_GPU(gate, swiglu(gate, up));
  Tensor Y = Tensor::empty(gate->value.shape(), gate->value.dtype());
  const int64_t n = Y.numel();
  dispatch_float(Y.dtype(), [&]<class T>() { k::swiglu_forward<T>(Y.data<T>(), mut<T>(gate), mut<T>(up), n); });
  return make_result(Y, {&gate, &up}, [gate, up, n](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::swiglu_backward<T>(gradp<T>(gate), gradp<T>(up), G.data<T>(), mut<T>(gate), mut<T>(up), n);
    });
  });
}

Var gelu(const Var& x, bool tanh_approx) {
  CLM_ON_GPU(x, gelu(x, tanh_approx));
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  const int64_t n = Y.numel();
  dispatch_float(Y.dtype(), [&]<class T>() { k::gelu_forward<T>(Y.data<T>(), mut<T>(x), n, tanh_approx); });
  return make_result(Y, {&x}, [x, n, tanh_approx](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::gelu_backward<T>(gradp<T>(x), G.data<T>(), mut<T>(x), n, tanh_approx);
    });
  });
}

Var softmax(const Var& x) {
  const int64_t D = x->value.dim(-1), N = rows(x->value, D);
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() { k::softmax_forward<T>(Y.data<T>(), mut<T>(x), N, D); });
  return make_result(Y, {&x}, [x, Y, N, D](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::softmax_backward<T>(gradp<T>(x), G.data<T>(), Y.data<T>(), N, D);
    });
  });
}

Var rotary(const Var& x, const Tensor& cos, const Tensor& sin, int64_t B, int64_t T_, int64_t H, int64_t hd,
           bool interleaved) {
  expect(x->value.numel() == B * T_ * H * hd, "rotary", "input size does not match B*T*H*hd");
  expect(hd % 2 == 0, "rotary", "head dim must be even");
  expect(cos.numel() == T_ * hd / 2 && sin.numel() == T_ * hd / 2, "rotary", "cos/sin table must be [T, hd/2]");
  CLM_ON_GPU(x, rotary(x, cos, sin, B, T_, H, hd, interleaved));
  Tensor Y = Tensor::empty(x->value.shape(), x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::rotary_forward<T>(Y.data<T>(), mut<T>(x), cos.data<T>(), sin.data<T>(), B, T_, H, hd, interleaved);
  });
  return make_result(Y, {&x}, [x, cos, sin, B, T_, H, hd, interleaved](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::rotary_backward<T>(gradp<T>(x), G.data<T>(), cos.data<T>(), sin.data<T>(), B, T_, H, hd, interleaved);
    });
  });
}

Var attention(const Var& q, const Var& k_, const Var& v, int64_t B, int64_t T_, int64_t H, int64_t Hkv, int64_t hd,
              double scale, const std::vector<double>& slopes, bool causal) {
  expect(H % Hkv == 0, "attention", "query heads must be a multiple of KV heads");
  expect(slopes.empty() || int64_t(slopes.size()) == H, "attention", "one ALiBi slope per head");
  expect(q->value.numel() == B * T_ * H * hd, "attention", "q size does not match B*T*H*hd");
  expect(k_->value.numel() == B * T_ * Hkv * hd && v->value.numel() == B * T_ * Hkv * hd, "attention",
         "k/v size does not match B*T*Hkv*hd");
  CLM_ON_GPU(q, attention(q, k_, v, B, T_, H, Hkv, hd, scale, slopes, causal));
  k::AttnShape s{B, T_, T_, H, Hkv, hd, H * hd, T_ * H * hd, Hkv * hd, T_ * Hkv * hd, slopes.empty() ? nullptr : slopes.data(), causal};
  Tensor Y = Tensor::empty({B * T_, H * hd}, q->value.dtype());
  const bool keep = grad_enabled() && (needs(q) || needs(k_) || needs(v));
  Tensor P = keep ? Tensor::empty({B, H, T_, T_}, q->value.dtype()) : Tensor();
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::attention_forward<T>(Y.data<T>(), keep ? P.data<T>() : nullptr, mut<T>(q), mut<T>(k_), mut<T>(v), s, T(scale));
  });
  s.slopes = nullptr;  // a constant bias: the backward reads only the probabilities
  return make_result(Y, {&q, &k_, &v}, [q, k_, v, P, s, scale](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::attention_backward<T>(gradp<T>(q), gradp<T>(k_), gradp<T>(v), G.data<T>(), P.data<T>(), mut<T>(q),
                               mut<T>(k_), mut<T>(v), s, T(scale));
    });
  });
}

Var dim_attention(const Var& q, const Var& k_, const Var& v, const Var& w, int64_t B, int64_t T_, int64_t H, int64_t Hkv,
                  int64_t hd, bool causal, bool rows, bool by_count) {
  expect(Hkv > 0 && H % Hkv == 0, "dim_attention", "query heads must be a multiple of KV heads");
  expect(q->value.numel() == B * T_ * H * hd, "dim_attention", "q size does not match B*T*H*hd");
  expect(k_->value.numel() == B * T_ * Hkv * hd && v->value.numel() == B * T_ * Hkv * hd, "dim_attention",
         "k/v size does not match B*T*Hkv*hd");
  expect(hd > 0 && T_ > 0, "dim_attention", "head dim and length must be > 0");
  expect(w->value.numel() == H * hd * hd, "dim_attention", "w must be [H, hd, hd]");
  check_same_dtype("dim_attention", q, w);
  k::DimAttnShape s{B, T_, H, Hkv, hd, causal, rows, by_count};
  Tensor Y = Tensor::empty({B * T_, H * hd}, q->value.dtype());
  const bool keep = grad_enabled() && (needs(q) || needs(k_) || needs(v) || needs(w));
  Tensor S = keep ? Tensor::empty({B, H, k::dim_saved(s), hd, hd}, q->value.dtype()) : Tensor();
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::dim_attention_forward<T>(Y.data<T>(), keep ? S.data<T>() : nullptr, mut<T>(q), mut<T>(k_), mut<T>(v), mut<T>(w), s);
  });
  return make_result(Y, {&q, &k_, &v, &w}, [q, k_, v, w, S, s](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::dim_attention_backward<T>(gradp<T>(q), gradp<T>(k_), gradp<T>(v), gradp<T>(w), G.data<T>(), S.data<T>(), mut<T>(q),
                                   mut<T>(k_), mut<T>(v), mut<T>(w), s);
    });
  });
}

Var diag_blocks(const Var& x, const Var& g) {
  expect(x->value.ndim() == 2 && g->value.ndim() == 2 && x->value.dim(1) == g->value.dim(1), "diag_blocks",
         "x [N, R] and g [h, R] expected, got " + shape_str(x->value.shape()) + " and " + shape_str(g->value.shape()));
  check_same_dtype("diag_blocks", x, g);
  const int64_t N = x->value.dim(0), R = x->value.dim(1), h = g->value.dim(0);
  Tensor Y = Tensor::empty({N, h * R}, x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T *px = mut<T>(x), *pg = mut<T>(g);
    T* y = Y.data<T>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < h; ++j)
        for (int64_t r = 0; r < R; ++r) y[(n * h + j) * R + r] = px[n * R + r] * pg[j * R + r];
  });
  return make_result(Y, {&x, &g}, [x, g, N, R, h](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T *px = mut<T>(x), *pg = mut<T>(g), *dy = G.data<T>();
      if (needs(x)) {
        T* dx = gradp<T>(x);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t j = 0; j < h; ++j)
            for (int64_t r = 0; r < R; ++r) dx[n * R + r] += dy[(n * h + j) * R + r] * pg[j * R + r];
      }
      if (needs(g)) {
        T* dg = gradp<T>(g);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t j = 0; j < h; ++j)
            for (int64_t r = 0; r < R; ++r) dg[j * R + r] += dy[(n * h + j) * R + r] * px[n * R + r];
      }
    });
  });
}

Var btd_slices(const Var& q, const Var& k_, const Var& v, const Var& g, int64_t B, int64_t N) {
  const int64_t R = g->value.dim(-1), h = g->value.dim(0);
  expect(g->value.ndim() == 2 && q->value.numel() == B * N * R && k_->value.numel() == B * N * R && v->value.numel() == B * N * R,
         "btd_slices", "q/k/v must be [B*N, R] and g [h, R]");
  check_same_dtype("btd_slices", q, g);
  Tensor Y = Tensor::empty({B * N, N * N}, q->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::btd_slices_forward<T>(Y.data<T>(), mut<T>(q), mut<T>(k_), mut<T>(v), mut<T>(g), B, N, R, h);
  });
  return make_result(Y, {&q, &k_, &v, &g}, [q, k_, v, g, B, N, R, h](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::btd_slices_backward<T>(gradp<T>(q), gradp<T>(k_), gradp<T>(v), gradp<T>(g), G.data<T>(), mut<T>(q), mut<T>(k_), mut<T>(v),
                                mut<T>(g), B, N, R, h);
    });
  });
}

Var block_mean(const Var& x, int64_t h) {
  expect(h > 0 && x->value.ndim() == 2 && x->value.dim(1) % h == 0, "block_mean",
         "x [N, h*R] expected, got " + shape_str(x->value.shape()) + " for h = " + std::to_string(h));
  const int64_t N = x->value.dim(0), R = x->value.dim(1) / h;
  Tensor Y = Tensor::empty({N, R}, x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    const T* px = mut<T>(x);
    T* y = Y.data<T>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < R; ++r) {
        T acc = 0;
        for (int64_t j = 0; j < h; ++j) acc += px[(n * h + j) * R + r];
        y[n * R + r] = acc / T(h);
      }
  });
  return make_result(Y, {&x}, [x, N, R, h](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* dy = G.data<T>();
      T* dx = gradp<T>(x);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < h; ++j)
          for (int64_t r = 0; r < R; ++r) dx[(n * h + j) * R + r] += dy[n * R + r] / T(h);
    });
  });
}

Var embedding(const Var& table, const Tensor& ids) {
  expect(ids.dtype() == DType::i32, "embedding", "ids must be i32");
  const int64_t V = table->value.dim(0), D = table->value.dim(1), N = ids.numel();
  CLM_ON_GPU(table, embedding(table, ids));
  Tensor Y = Tensor::empty({N, D}, table->value.dtype());
  dispatch_float(Y.dtype(), [&]<class T>() {
    k::embedding_forward<T>(Y.data<T>(), mut<T>(table), ids.data<int32_t>(), N, V, D);
  });
  return make_result(Y, {&table}, [table, ids, N, D](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      k::embedding_backward<T>(gradp<T>(table), G.data<T>(), ids.data<int32_t>(), N, D);
    });
  });
}

Var replace_rows(const Var& x, const Var& rows, const std::vector<int64_t>& index) {
  const int64_t N = x->value.dim(0), D = x->value.dim(1), K = int64_t(index.size());
  expect(rows->value.dim(0) == K && rows->value.dim(1) == D, "replace_rows", "rows must be [index count, D]");
  std::vector<uint8_t> replaced(size_t(N), 0);
  for (int64_t i : index) {
    expect(i >= 0 && i < N && !replaced[size_t(i)], "replace_rows", "indices must be distinct rows of x");
    replaced[size_t(i)] = 1;
  }
  Tensor Y = x->value.contiguous().clone();
  dispatch_float(Y.dtype(), [&]<class T>() {
    for (int64_t k = 0; k < K; ++k) std::copy_n(mut<T>(rows) + k * D, D, Y.data<T>() + index[size_t(k)] * D);
  });
  return make_result(Y, {&x, &rows}, [x, rows, index, replaced, N, D](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* dy = G.data<T>();
      if (x->requires_grad)
        for (int64_t n = 0; n < N; ++n)
          if (!replaced[size_t(n)])
            for (int64_t d = 0; d < D; ++d) gradp<T>(x)[n * D + d] += dy[n * D + d];
      if (rows->requires_grad)
        for (size_t k = 0; k < index.size(); ++k)
          for (int64_t d = 0; d < D; ++d) gradp<T>(rows)[int64_t(k) * D + d] += dy[index[k] * D + d];
    });
  });
}

namespace {
// Prefix products of one word's factors (one rank): level j holds, for every prefix p of j digits
// that some truncated row uses, prod_{s<=j} f[u_s][digit_s(p)]. len[j] = ceil(d / q^(n-j)), so
// level n is the row itself; building all levels costs about d q/(q-1) products, not d n.
template <class T> struct Prefix {
  std::vector<int64_t> len;           // [n + 1], len[0] = 1
  std::vector<std::vector<T>> level;  // [n + 1]
  Prefix(int64_t d, int64_t q, int64_t n) : len(static_cast<size_t>(n + 1)), level(static_cast<size_t>(n + 1)) {
    int64_t qp = 1;  // q^(n-j)
    for (int64_t j = n; j >= 0; --j, qp = qp < d ? qp * q : qp) len[size_t(j)] = (d + qp - 1) / qp;
    for (int64_t j = 0; j <= n; ++j) level[size_t(j)].resize(size_t(len[size_t(j)]));
    level[0][0] = T(1);
  }
  void build(const T* fk, const int32_t* uv, int64_t q) {
    for (size_t j = 1; j < level.size(); ++j) {
      const T* fu = fk + int64_t(uv[j - 1]) * q;
      const T* prev = level[j - 1].data();
      T* cur = level[j].data();
      for (int64_t p = 0; p < len[j]; ++p) cur[p] = prev[p / q] * fu[p % q];
    }
  }
};
}  // namespace

Var tensor_product_rows(const Var& f, const Tensor& units, int64_t d) {
  const Tensor& F = f->value;
  expect(F.ndim() == 3, "tensor_product_rows", "factors [r, U, q] expected, got " + shape_str(F.shape()));
  expect(units.dtype() == DType::i32 && units.ndim() == 2, "tensor_product_rows", "units must be i32 [V, n]");
  const int64_t r = F.dim(0), U = F.dim(1), q = F.dim(2), V = units.dim(0), n = units.dim(1);
  int64_t qn = 1;
  for (int64_t j = 0; j < n && qn < d; ++j) qn *= q;
  expect(n >= 1 && d >= 1 && qn >= d, "tensor_product_rows",
         "q^n = " + std::to_string(qn) + " < d = " + std::to_string(d) + " (q " + std::to_string(q) + ", n " + std::to_string(n) + ")");
  const int32_t* u = units.data<int32_t>();
  for (int64_t i = 0; i < V * n; ++i)
    expect(u[i] >= 0 && u[i] < U, "tensor_product_rows", "unit id " + std::to_string(u[i]) + " outside [0, " + std::to_string(U) + ")");
  Tensor Y = Tensor::zeros({V, d}, F.dtype());
  dispatch_float(F.dtype(), [&]<class T>() {
    const T* pf = F.data<T>();
    T* y = Y.data<T>();
#pragma omp parallel
    {
      Prefix<T> pr(d, q, n);
#pragma omp for schedule(static)
      for (int64_t v = 0; v < V; ++v)
        for (int64_t k = 0; k < r; ++k) {
          pr.build(pf + k * U * q, u + v * n, q);
          const T* row = pr.level[size_t(n)].data();
          for (int64_t i = 0; i < d; ++i) y[v * d + i] += row[i];
        }
    }
  });
  return make_result(Y, {&f}, [f, units, r, U, q, V, n, d](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T* pf = mut<T>(f);
      const T* g = G.data<T>();
      const int32_t* u = units.data<int32_t>();
      T* df = gradp<T>(f);
      // ranks are independent (each writes only its own factor table): one thread per rank
#pragma omp parallel
      {
        Prefix<T> pr(d, q, n);
        std::vector<T> dcur(static_cast<size_t>(d)), dprev(static_cast<size_t>(d));
#pragma omp for schedule(static)
        for (int64_t k = 0; k < r; ++k) {
          const T* fk = pf + k * U * q;
          T* dk = df + k * U * q;
          for (int64_t v = 0; v < V; ++v) {
            const int32_t* uv = u + v * n;
            pr.build(fk, uv, q);
            std::copy(g + v * d, g + (v + 1) * d, dcur.begin());  // d level n = the row's gradient
            for (int64_t j = n; j >= 1; --j) {
              const int64_t L = pr.len[size_t(j)], Lp = pr.len[size_t(j - 1)];
              const T* fu = fk + int64_t(uv[j - 1]) * q;
              T* du = dk + int64_t(uv[j - 1]) * q;
              const T* prev = pr.level[size_t(j - 1)].data();
              std::fill(dprev.begin(), dprev.begin() + Lp, T(0));
              for (int64_t p = 0; p < L; ++p) {
                du[p % q] += dcur[size_t(p)] * prev[p / q];
                dprev[size_t(p / q)] += dcur[size_t(p)] * fu[p % q];
              }
              std::swap(dcur, dprev);
            }
          }
        }
      }
    });
  });
}

Var weighted_rows(const Var& table, const Tensor& idx, const Var& w) {
  const Tensor &E = table->value, &W = w->value;
  expect(E.ndim() == 2 && idx.dtype() == DType::i32 && idx.ndim() == 2 && W.ndim() == 2 && W.dim(0) == idx.dim(0) &&
             W.dim(1) == idx.dim(1),
         "weighted_rows", "table [B, D], idx i32 [V, h] and w [V, h] expected");
  check_same_dtype("weighted_rows", table, w);
  const int64_t B = E.dim(0), D = E.dim(1), V = idx.dim(0), h = idx.dim(1);
  const int32_t* ix = idx.data<int32_t>();
  for (int64_t i = 0; i < V * h; ++i)
    expect(ix[i] >= 0 && ix[i] < B, "weighted_rows", "row " + std::to_string(ix[i]) + " outside [0, " + std::to_string(B) + ")");
  Tensor Y = Tensor::zeros({V, D}, E.dtype());
  dispatch_float(E.dtype(), [&]<class T>() {
    const T *pe = E.data<T>(), *pw = W.data<T>();
    T* y = Y.data<T>();
    for (int64_t v = 0; v < V; ++v)
      for (int64_t j = 0; j < h; ++j) {
        const T a = pw[v * h + j];
        const T* row = pe + int64_t(ix[v * h + j]) * D;
        for (int64_t c = 0; c < D; ++c) y[v * D + c] += a * row[c];
      }
  });
  return make_result(Y, {&table, &w}, [table, idx, w, V, D, h](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T *pe = mut<T>(table), *pw = mut<T>(w), *g = G.data<T>();
      const int32_t* ix = idx.data<int32_t>();
      T* de = needs(table) ? gradp<T>(table) : nullptr;
      T* dw = needs(w) ? gradp<T>(w) : nullptr;
      for (int64_t v = 0; v < V; ++v)
        for (int64_t j = 0; j < h; ++j) {
          const int64_t row = ix[v * h + j];
          if (dw) {
            T acc = 0;
            for (int64_t c = 0; c < D; ++c) acc += g[v * D + c] * pe[row * D + c];
            dw[v * h + j] += acc;
          }
          if (de)
            for (int64_t c = 0; c < D; ++c) de[row * D + c] += pw[v * h + j] * g[v * D + c];
        }
    });
  });
}

namespace {
// One recurrent step's matrix product for the B rows of time t (row stride T*cols): out = h W^T (+ out).
template <class T>
void step_gemm(const T* h, int64_t ldh, const T* w, T* out, int64_t ldo, int64_t B, int64_t M, int64_t H, bool acc) {
  k::gemm<T>(false, true, (int)B, (int)M, (int)H, T(1), h, (int)ldh, w, (int)H, T(acc ? 1 : 0), out, (int)ldo);
}
template <class T> T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }
}  // namespace

Var tslm_scan(const Var& a, const Var& w, const Var& b, const Tensor& h0, int64_t B, int64_t T, Tensor* h_last) {
  const int64_t H = w->value.dim(0);
  expect(w->value.ndim() == 2 && w->value.dim(1) == H && b->value.numel() == H && a->value.ndim() == 2 &&
             a->value.dim(0) == B * T && a->value.dim(1) == H && h0.numel() == B * H,
         "tslm_scan", "a [B*T, H], w [H, H], b [H], h0 [B, H] expected");
  check_same_dtype("tslm_scan", a, w);
  CLM_ON_GPU(a, tslm_scan(a, w, b, h0, B, T, h_last));
  Tensor Y = Tensor::empty({B * T, H}, a->value.dtype()), Z = Tensor::empty({B * T, H}, a->value.dtype());
  Tensor H0 = h0.to(a->value.dtype()).contiguous();
  dispatch_float(Y.dtype(), [&]<class U>() {
    const U *pa = mut<U>(a), *pw = mut<U>(w), *pb = mut<U>(b);
    U *y = Y.data<U>(), *z = Z.data<U>();
    for (int64_t t = 0; t < T; ++t) {
      U* zt = z + t * H;  // rows b*T + t: leading dimension T*H
      for (int64_t r = 0; r < B; ++r) std::copy(pb, pb + H, zt + r * T * H);
      if (t == 0) step_gemm<U>(H0.data<U>(), H, pw, zt, T * H, B, H, H, true);
      else step_gemm<U>(y + (t - 1) * H, T * H, pw, zt, T * H, B, H, H, true);
      for (int64_t r = 0; r < B; ++r)
        for (int64_t j = 0; j < H; ++j) y[(r * T + t) * H + j] = pa[(r * T + t) * H + j] * zt[r * T * H + j];
    }
    if (h_last) {
      *h_last = Tensor::empty({B, H}, Y.dtype());
      for (int64_t r = 0; r < B; ++r) std::copy(y + (r * T + T - 1) * H, y + (r * T + T) * H, h_last->data<U>() + r * H);
    }
  });
  Tensor Yv = Y;
  return make_result(Y, {&a, &w, &b}, [a, w, b, H0, Yv, Z, B, T, H](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class U>() {
      const U *pa = mut<U>(a), *pw = mut<U>(w), *y = Yv.data<U>(), *z = Z.data<U>(), *g = G.data<U>();
      std::vector<U> dh(static_cast<size_t>(B * H), U(0)), dz(static_cast<size_t>(B * H));
      U* da = needs(a) ? gradp<U>(a) : nullptr;
      U* dw = needs(w) ? gradp<U>(w) : nullptr;
      U* db = needs(b) ? gradp<U>(b) : nullptr;
      for (int64_t t = T - 1; t >= 0; --t) {
        for (int64_t r = 0; r < B; ++r)
          for (int64_t j = 0; j < H; ++j) {
            const int64_t i = (r * T + t) * H + j;
            const U d = dh[size_t(r * H + j)] + g[i];
            if (da) da[i] += d * z[i];
            dz[size_t(r * H + j)] = d * pa[i];
          }
        if (db)
          for (int64_t r = 0; r < B; ++r)
            for (int64_t j = 0; j < H; ++j) db[j] += dz[size_t(r * H + j)];
        const U* hp = t == 0 ? H0.data<U>() : y + (t - 1) * H;
        const int64_t ldh = t == 0 ? H : T * H;
        if (dw)  // dW += dz^T h_{t-1}
          k::gemm<U>(true, false, (int)H, (int)H, (int)B, U(1), dz.data(), (int)H, hp, (int)ldh, U(1), dw, (int)H);
        // dh_{t-1} = dz W
        k::gemm<U>(false, false, (int)B, (int)H, (int)H, U(1), dz.data(), (int)H, pw, (int)H, U(0), dh.data(), (int)H);
      }
    });
  });
}

Var lstm_scan(const Var& x, const Var& w, const Var& b, const Tensor& h0, const Tensor& c0, int64_t B, int64_t T,
              Tensor* h_last, Tensor* c_last) {
  const int64_t H = w->value.dim(1), G4 = 4 * H;
  expect(w->value.ndim() == 2 && w->value.dim(0) == G4 && b->value.numel() == G4 && x->value.ndim() == 2 &&
             x->value.dim(0) == B * T && x->value.dim(1) == G4 && h0.numel() == B * H && c0.numel() == B * H,
         "lstm_scan", "x [B*T, 4H], w [4H, H], b [4H], h0/c0 [B, H] expected");
  check_same_dtype("lstm_scan", x, w);
  CLM_ON_GPU(x, lstm_scan(x, w, b, h0, c0, B, T, h_last, c_last));
  const DType dt = x->value.dtype();
  Tensor Y = Tensor::empty({B * T, H}, dt), A = Tensor::empty({B * T, G4}, dt), C = Tensor::empty({B * T, H}, dt);
  Tensor H0 = h0.to(dt).contiguous(), C0 = c0.to(dt).contiguous();
  dispatch_float(dt, [&]<class U>() {
    const U *px = mut<U>(x), *pw = mut<U>(w), *pb = mut<U>(b);
    U *y = Y.data<U>(), *act = A.data<U>(), *c = C.data<U>();
    for (int64_t t = 0; t < T; ++t) {
      U* at = act + t * G4;  // pre-activations, then activations, rows b*T + t
      for (int64_t r = 0; r < B; ++r)
        for (int64_t j = 0; j < G4; ++j) at[r * T * G4 + j] = px[(r * T + t) * G4 + j] + pb[j];
      if (t == 0) step_gemm<U>(H0.data<U>(), H, pw, at, T * G4, B, G4, H, true);
      else step_gemm<U>(y + (t - 1) * H, T * H, pw, at, T * G4, B, G4, H, true);
      for (int64_t r = 0; r < B; ++r) {
        U* q = at + r * T * G4;
        const U* cp = t == 0 ? C0.data<U>() + r * H : c + (r * T + t - 1) * H;
        for (int64_t j = 0; j < H; ++j) {
          const U i = sigm(q[j]), f = sigm(q[H + j]), gg = std::tanh(q[2 * H + j]), o = sigm(q[3 * H + j]);
          q[j] = i, q[H + j] = f, q[2 * H + j] = gg, q[3 * H + j] = o;
          const U ct = f * cp[j] + i * gg;
          c[(r * T + t) * H + j] = ct;
          y[(r * T + t) * H + j] = o * std::tanh(ct);
        }
      }
    }
    if (h_last) *h_last = Tensor::empty({B, H}, dt);
    if (c_last) *c_last = Tensor::empty({B, H}, dt);
    for (int64_t r = 0; r < B; ++r) {
      if (h_last) std::copy(y + (r * T + T - 1) * H, y + (r * T + T) * H, h_last->data<U>() + r * H);
      if (c_last) std::copy(c + (r * T + T - 1) * H, c + (r * T + T) * H, c_last->data<U>() + r * H);
    }
  });
  Tensor Yv = Y;
  return make_result(Y, {&x, &w, &b}, [x, w, b, H0, C0, Yv, A, C, B, T, H, G4](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class U>() {
      const U *pw = mut<U>(w), *y = Yv.data<U>(), *act = A.data<U>(), *c = C.data<U>(), *g = G.data<U>();
      std::vector<U> dh(static_cast<size_t>(B * H), U(0)), dc(static_cast<size_t>(B * H), U(0)), dq(static_cast<size_t>(B * G4));
      U* dx = needs(x) ? gradp<U>(x) : nullptr;
      U* dw = needs(w) ? gradp<U>(w) : nullptr;
      U* db = needs(b) ? gradp<U>(b) : nullptr;
      for (int64_t t = T - 1; t >= 0; --t) {
        for (int64_t r = 0; r < B; ++r) {
          const U* q = act + (r * T + t) * G4;
          const U* cp = t == 0 ? C0.data<U>() + r * H : c + (r * T + t - 1) * H;
          for (int64_t j = 0; j < H; ++j) {
            const size_t s = size_t(r * H + j);
            const U i = q[j], f = q[H + j], gg = q[2 * H + j], o = q[3 * H + j];
            const U th = std::tanh(c[(r * T + t) * H + j]);
            const U d = dh[s] + g[(r * T + t) * H + j];
            const U dct = dc[s] + d * o * (U(1) - th * th);
            U* e = dq.data() + r * G4;
            e[j] = dct * gg * i * (U(1) - i);
            e[H + j] = dct * cp[j] * f * (U(1) - f);
            e[2 * H + j] = dct * i * (U(1) - gg * gg);
            e[3 * H + j] = d * th * o * (U(1) - o);
            dc[s] = dct * f;
          }
        }
        for (int64_t r = 0; r < B; ++r)
          for (int64_t j = 0; j < G4; ++j) {
            if (dx) dx[(r * T + t) * G4 + j] += dq[size_t(r * G4 + j)];
            if (db) db[j] += dq[size_t(r * G4 + j)];
          }
        const U* hp = t == 0 ? H0.data<U>() : y + (t - 1) * H;
        const int64_t ldh = t == 0 ? H : T * H;
        if (dw)  // dW += dq^T h_{t-1}
          k::gemm<U>(true, false, (int)G4, (int)H, (int)B, U(1), dq.data(), (int)G4, hp, (int)ldh, U(1), dw, (int)H);
        k::gemm<U>(false, false, (int)B, (int)H, (int)G4, U(1), dq.data(), (int)G4, pw, (int)H, U(0), dh.data(), (int)H);
      }
    });
  });
}

Var dropout(const Var& x, double p, Rng& rng) {
  expect(p >= 0 && p < 1, "dropout", "p must be in [0, 1)");
  if (p == 0) return x;
  CLM_ON_GPU(x, dropout(x, p, rng));
  const int64_t n = x->value.numel();
  Tensor M = Tensor::empty(x->value.shape(), x->value.dtype()), Y = Tensor::empty(x->value.shape(), x->value.dtype());
  dispatch_float(Y.dtype(), [&]<class U>() {
    const U keep = U(1.0 / (1.0 - p));
    U *m = M.data<U>(), *y = Y.data<U>();
    const U* px = mut<U>(x);
    for (int64_t i = 0; i < n; ++i) {
      m[i] = rng.uniform() < p ? U(0) : keep;
      y[i] = px[i] * m[i];
    }
  });
  return make_result(Y, {&x}, [x, M, n](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class U>() {
      const U *g = G.data<U>(), *m = M.data<U>();
      U* dx = gradp<U>(x);
      for (int64_t i = 0; i < n; ++i) dx[i] += g[i] * m[i];
    });
  });
}

Var soft_cross_entropy(const Var& logits, const Tensor& probs) {
  const Tensor& Z = logits->value;
  expect(Z.ndim() == 2 && probs.shape() == Z.shape(), "soft_cross_entropy",
         "logits and probs [N, V] expected, got " + shape_str(Z.shape()) + " and " + shape_str(probs.shape()));
  const int64_t N = Z.dim(0), V = Z.dim(1);
  Tensor P = probs.to(Z.dtype()).contiguous();
  Tensor S = Tensor::empty({N, V}, Z.dtype()), Y = Tensor::empty({1}, Z.dtype());
  dispatch_float(Z.dtype(), [&]<class T>() {
    const T *z = Z.data<T>(), *p = P.data<T>();
    T* sm = S.data<T>();
    double total = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* zr = z + n * V;
      T m = zr[0];
      for (int64_t v = 1; v < V; ++v) m = std::max(m, zr[v]);
      double se = 0;
      for (int64_t v = 0; v < V; ++v) se += std::exp(double(zr[v] - m));
      const double lse = double(m) + std::log(se);
      for (int64_t v = 0; v < V; ++v) {
        sm[n * V + v] = T(std::exp(double(zr[v]) - lse));
        total -= double(p[n * V + v]) * (double(zr[v]) - lse);
      }
    }
    Y.data<T>()[0] = T(total / double(N));
  });
  return make_result(Y, {&logits}, [logits, P, S, N, V](const Tensor& G) {
    dispatch_float(G.dtype(), [&]<class T>() {
      const T g = G.data<T>()[0] / T(N);
      const T *sm = S.data<T>(), *p = P.data<T>();
      T* dz = gradp<T>(logits);
      for (int64_t i = 0; i < N * V; ++i) dz[i] += g * (sm[i] - p[i]);
    });
  });
}

Var cross_entropy(const Var& logits, const Tensor& targets) {
  expect(targets.dtype() == DType::i32, "cross_entropy", "targets must be i32");
  const int64_t V = logits->value.dim(-1), N = rows(logits->value, V);
  expect(targets.numel() == N, "cross_entropy", "targets count does not match logits rows");
  CLM_ON_GPU(logits, cross_entropy(logits, targets));
  Tensor Y = Tensor::empty({1}, logits->value.dtype());
  Tensor L = Tensor::empty({N}, logits->value.dtype());
  int64_t count = 0;
  dispatch_float(Y.dtype(), [&]<class T>() {
    double total = k::cross_entropy_forward<T>(L.data<T>(), mut<T>(logits), targets.data<int32_t>(), N, V, &count);
    Y.data<T>()[0] = T(count ? total / double(count) : 0.0);
  });
  return make_result(Y, {&logits}, [logits, targets, L, N, V, count](const Tensor& G) {
    if (count == 0) return;
    dispatch_float(G.dtype(), [&]<class T>() {
      k::cross_entropy_backward<T>(gradp<T>(logits), mut<T>(logits), L.data<T>(), targets.data<int32_t>(), N, V,
                                   G.data<T>()[0] / T(count));
    });
  });
}

}  // namespace clm::ag
