#include <cblas.h>
#include <strings.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/rows.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm::kernels {

// Whether OpenBLAS's threaded SGEMM gives the same bits at every thread count. With its Haswell
// kernels (also what AVX2-only AMD hosts get) it does not: edge tiles sum in another order, and the
// threads' split decides which columns are edges (440 of 1,200 small shapes differed between one and
// two threads on an Emerald Rapids Xeon), which would break bit-exact resumes under the adaptive
// thread policy. The AVX-512 kernels measured thread-invariant (0 of 1,200) keep OpenBLAS's own
// threads; with the others OpenBLAS runs one thread and gemm<float> splits the product itself.
static bool blas_threads_invariant() {
  static const bool ok = [] {
    const char* c = openblas_get_corename();
    for (const char* k : {"skylakex", "cooperlake", "sapphirerapids"})
      if (c && strcasecmp(c, k) == 0) return true;
    const int omp = omp_get_max_threads();
    openblas_set_num_threads(1);  // (OpenBLAS's OpenMP build sets OpenMP's count too: put it back)
    omp_set_num_threads(omp);
    return false;
  }();
  return ok;
}

void set_num_threads(int n) {
  if (n > 0) {
    openblas_set_num_threads(blas_threads_invariant() ? n : 1);  // before OpenMP's: it sets that too
    omp_set_num_threads(n);
  }
}
int num_threads() { return omp_get_max_threads(); }

namespace {
template <class T> inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  auto sgemm = [&](int m, int n, const float* a, const float* b, float* c) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, K, alpha, a, lda, b, ldb, beta, c,
                ldc);
  };
  if (blas_threads_invariant() || int64_t(M) * N * K < (int64_t(1) << 18)) {
    sgemm(M, N, A, B, C);  // OpenBLAS's own threads where they are invariant; else one thread
    return;
  }
  // A fixed grid of blocks along the longer output side (sixteen parts, at least 64 wide: a function
  // of the shape only, whatever the thread count), each a one-thread SGEMM, spread over the threads.
  const bool cols = N >= M;
  const int dim = cols ? N : M, part = std::max(64, (dim / 16 + 15) / 16 * 16), parts = (dim + part - 1) / part;
#pragma omp parallel for schedule(dynamic) if (!omp_in_parallel())
  for (int p = 0; p < parts; ++p) {
    const int o = p * part, n = std::min(part, dim - o);
    if (cols) sgemm(M, n, A, tb ? B + int64_t(o) * ldb : B + o, C + o);                    // C[:, o:o+n] = A · B[:, o:o+n]
    else sgemm(n, N, ta ? A + o : A + int64_t(o) * lda, B, C + int64_t(o) * ldc);  // C[o:o+n, :] = A[o:o+n, :] · B
  }
}
template <>
void gemm<double>(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                  int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

// ---------------------------------------------------------------------------------------------
template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t D, T eps, T offset) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = x + i * D;
    T* yi = y + i * D;
    T r = T(1) / std::sqrt(row_dot(xi, xi, D) / T(D) + eps);
    rstd[i] = r;
    for (int64_t j = 0; j < D; ++j) yi[j] = xi[j] * r * (w[j] + offset);
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t N, int64_t D,
                      T offset) {
  // dx = r*(w+o)*dy - x * r^3/D * sum_j(dy_j (w_j+o) x_j);  dw_j = sum_i dy_ij x_ij r_i
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T *xi = x + i * D, *dyi = dy + i * D;
    T* dxi = dx + i * D;
    T r = rstd[i], s = 0;
    for (int64_t j = 0; j < D; ++j) s += dyi[j] * (w[j] + offset) * xi[j];
    T c = s * r * r * r / T(D);
    for (int64_t j = 0; j < D; ++j) dxi[j] += r * (w[j] + offset) * dyi[j] - c * xi[j];
  }
  // dw: reduce over rows, parallel over columns (deterministic).
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += 16) {
    int64_t j1 = std::min(D, j0 + 16);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) dw[j] += dy[i * D + j] * x[i * D + j] * rstd[i];
  }
}

template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N, int64_t D, T eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = x + i * D;
    T m = 0;
    for (int64_t j = 0; j < D; ++j) m += xi[j];
    m /= T(D);
    T v = 0;
    for (int64_t j = 0; j < D; ++j) v += (xi[j] - m) * (xi[j] - m);
    T r = T(1) / std::sqrt(v / T(D) + eps);
    mean[i] = m;
    rstd[i] = r;
    for (int64_t j = 0; j < D; ++j) y[i * D + j] = (xi[j] - m) * r * w[j] + (b ? b[j] : T(0));
  }
}

template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                        int64_t N, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T *xi = x + i * D, *dyi = dy + i * D;
    T m = mean[i], r = rstd[i], s1 = 0, s2 = 0;
    for (int64_t j = 0; j < D; ++j) {
      T g = dyi[j] * w[j];
      s1 += g;
      s2 += g * (xi[j] - m) * r;
    }
    s1 /= T(D);
    s2 /= T(D);
    for (int64_t j = 0; j < D; ++j) {
      T xhat = (xi[j] - m) * r;
      dx[i * D + j] += r * (dyi[j] * w[j] - s1 - xhat * s2);
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += 16) {
    int64_t j1 = std::min(D, j0 + 16);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        dw[j] += dy[i * D + j] * (x[i * D + j] - mean[i]) * rstd[i];
        if (db) db[j] += dy[i * D + j];
      }
  }
}

// ---------------------------------------------------------------------------------------------
template <class T> void swiglu_forward(T* y, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] * sigmoid(g[i]) * u[i];
}
template <class T> void swiglu_backward(T* dg, T* du, const T* dy, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T s = sigmoid(g[i]);
    du[i] += dy[i] * g[i] * s;
    dg[i] += dy[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

template <class T> void gelu_forward(T* y, const T* x, int64_t n, bool tanh_approx) {
  const T k = T(0.7978845608028654), c = T(0.044715);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i];
    y[i] = tanh_approx ? T(0.5) * v * (T(1) + std::tanh(k * (v + c * v * v * v)))
                       : T(0.5) * v * (T(1) + std::erf(v * T(0.7071067811865476)));
  }
}
template <class T> void gelu_backward(T* dx, const T* dy, const T* x, int64_t n, bool tanh_approx) {
  const T k = T(0.7978845608028654), c = T(0.044715);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i], d;
    if (tanh_approx) {
      T t = std::tanh(k * (v + c * v * v * v));
      d = T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * k * (T(1) + T(3) * c * v * v);
    } else {
      d = T(0.5) * (T(1) + std::erf(v * T(0.7071067811865476))) + v * std::exp(T(-0.5) * v * v) * T(0.3989422804014327);
    }
    dx[i] += dy[i] * d;
  }
}

// ---------------------------------------------------------------------------------------------
template <class T, bool Forward>
static void rotary_apply(T* y, const T* x, const T* cos, const T* sin, int64_t B, int64_t Tn, int64_t H,
                         int64_t hd, bool interleaved) {
  const int64_t half = hd / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const T *c = cos + t * half, *s = sin + t * half;
      for (int64_t h = 0; h < H; ++h) {
        int64_t base = ((b * Tn + t) * H + h) * hd;
        for (int64_t i = 0; i < half; ++i) {
          int64_t ia = interleaved ? base + 2 * i : base + i;
          int64_t ib = interleaved ? ia + 1 : ia + half;
          T xa = x[ia], xb = x[ib];
          if constexpr (Forward) {
            y[ia] = xa * c[i] - xb * s[i];
            y[ib] = xa * s[i] + xb * c[i];
          } else {  // transpose of the rotation, accumulated
            y[ia] += xa * c[i] + xb * s[i];
            y[ib] += -xa * s[i] + xb * c[i];
          }
        }
      }
    }
}
template <class T>
void rotary_forward(T* y, const T* x, const T* cos, const T* sin, int64_t B, int64_t Tn, int64_t H, int64_t hd,
                    bool interleaved) {
  rotary_apply<T, true>(y, x, cos, sin, B, Tn, H, hd, interleaved);
}
template <class T>
void rotary_backward(T* dx, const T* dy, const T* cos, const T* sin, int64_t B, int64_t Tn, int64_t H, int64_t hd,
                     bool interleaved) {
  rotary_apply<T, false>(dx, dy, cos, sin, B, Tn, H, hd, interleaved);
}

// ---------------------------------------------------------------------------------------------
template <class T> void softmax_forward(T* y, const T* x, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    T m = row_max(x + i * D, D);
    T s = row_exp_sum(x + i * D, m, y + i * D, D);
    row_scale(T(1) / s, y + i * D, D);
  }
}
template <class T> void softmax_backward(T* dx, const T* dy, const T* y, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    T d = row_dot(dy + i * D, y + i * D, D);
    for (int64_t j = 0; j < D; ++j) dx[i * D + j] += y[i * D + j] * (dy[i * D + j] - d);
  }
}

// ---------------------------------------------------------------------------------------------
template <class T>
double cross_entropy_forward(T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                             int64_t* count) {
  double total = 0;
  int64_t cnt = 0, bad = -1;
#pragma omp parallel for schedule(static) reduction(+ : total, cnt)
  for (int64_t i = 0; i < N; ++i) {
    const T* l = logits + i * V;
    T m = row_max(l, V);
    T s = row_exp_sum(l, m, scratch<T>(V), V);
    lse[i] = m + std::log(s);
    int32_t t = targets[i];
    if (t < 0) continue;
    if (t >= V) {
#pragma omp critical
      bad = i;
      continue;
    }
    total += double(lse[i] - l[t]);
    ++cnt;
  }
  if (bad >= 0) throw std::out_of_range("cross_entropy: target id out of range for vocab " + std::to_string(V));
  *count = cnt;
  return total;
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, int64_t N, int64_t V,
                            T g) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;
    T* d = dlogits + i * V;
    const T* l = logits + i * V;
    T* p = scratch<T>(V);
    row_exp_sum(l, lse[i], p, V);
    for (int64_t j = 0; j < V; ++j) d[j] += g * p[j];
    d[targets[i]] -= g;
  }
}

// ---------------------------------------------------------------------------------------------
template <class T>
void embedding_forward(T* out, const T* table, const int32_t* ids, int64_t N, int64_t V, int64_t D) {
  for (int64_t i = 0; i < N; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      throw std::out_of_range("embedding: token id " + std::to_string(ids[i]) + " outside vocab of " +
                              std::to_string(V));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) std::copy(table + ids[i] * D, table + ids[i] * D + D, out + i * D);
}
template <class T> void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t D) {
  // Parallel over columns: each thread owns a column range, rows in order -> deterministic.
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t j0 = D * id / nt, j1 = D * (id + 1) / nt;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) dtable[ids[i] * D + j] += dout[i * D + j];
  }
}

// ---------------------------------------------------------------------------------------------
template <class T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const AttnShape& s, T scale) {
  const int64_t group = s.H / s.Hkv, off = s.Tk - s.Tq, o_row = s.H * s.hd;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      const int64_t kh = h / group;
      const T* qb = q + b * s.q_batch + h * s.hd;
      const T* kb = k + b * s.kv_batch + kh * s.hd;
      const T* vb = v + b * s.kv_batch + kh * s.hd;
      T* P = probs ? probs + (b * s.H + h) * s.Tq * s.Tk : scratch<T>(s.Tq * s.Tk);
      gemm<T>(false, true, (int)s.Tq, (int)s.Tk, (int)s.hd, scale, qb, (int)s.q_row, kb, (int)s.kv_row, T(0), P,
              (int)s.Tk);
      for (int64_t i = 0; i < s.Tq; ++i) {
        T* row = P + i * s.Tk;
        int64_t n = s.causal ? std::min(s.Tk, i + off + 1) : s.Tk;
        if (s.slopes)
          for (int64_t j = 0; j < n; ++j) row[j] -= T(s.slopes[h] * double(std::abs(i + off - j)));
        T m = row_max(row, n);
        T sum = row_exp_sum(row, m, row, n);
        row_scale(T(1) / sum, row, n);
        std::fill(row + n, row + s.Tk, T(0));
      }
      gemm<T>(false, false, (int)s.Tq, (int)s.hd, (int)s.Tk, T(1), P, (int)s.Tk, vb, (int)s.kv_row, T(0),
              out + b * s.Tq * o_row + h * s.hd, (int)o_row);
    }
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        const AttnShape& s, T scale) {
  const int64_t group = s.H / s.Hkv, off = s.Tk - s.Tq, o_row = s.H * s.hd, kv_o_row = s.Hkv * s.hd;
  // Parallel over (batch, kv head): the query heads of a group write the same dK/dV, serially.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t kh = 0; kh < s.Hkv; ++kh) {
      T* dP = scratch<T>(s.Tq * s.Tk);
      const T* kb = k + b * s.kv_batch + kh * s.hd;
      const T* vb = v + b * s.kv_batch + kh * s.hd;
      T* dkb = dk + b * s.Tk * kv_o_row + kh * s.hd;
      T* dvb = dv + b * s.Tk * kv_o_row + kh * s.hd;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const T* P = probs + (b * s.H + h) * s.Tq * s.Tk;
        const T* dob = dout + b * s.Tq * o_row + h * s.hd;
        const T* qb = q + b * s.q_batch + h * s.hd;
        T* dqb = dq + b * s.Tq * o_row + h * s.hd;
        // dV += P^T dO ; dP = dO V^T
        gemm<T>(true, false, (int)s.Tk, (int)s.hd, (int)s.Tq, T(1), P, (int)s.Tk, dob, (int)o_row, T(1), dvb,
                (int)kv_o_row);
        gemm<T>(false, true, (int)s.Tq, (int)s.Tk, (int)s.hd, T(1), dob, (int)o_row, vb, (int)s.kv_row, T(0), dP,
                (int)s.Tk);
        // dS = P * (dP - rowsum(P*dP)) * scale, over the visible columns only
        for (int64_t i = 0; i < s.Tq; ++i) {
          int64_t n = s.causal ? std::min(s.Tk, i + off + 1) : s.Tk;
          const T* p = P + i * s.Tk;
          T* d = dP + i * s.Tk;
          T dot = row_dot(p, d, n);
          for (int64_t j = 0; j < n; ++j) d[j] = p[j] * (d[j] - dot) * scale;
          std::fill(d + n, d + s.Tk, T(0));
        }
        // dQ += dS K ; dK += dS^T Q
        gemm<T>(false, false, (int)s.Tq, (int)s.hd, (int)s.Tk, T(1), dP, (int)s.Tk, kb, (int)s.kv_row, T(1), dqb,
                (int)o_row);
        gemm<T>(true, false, (int)s.Tk, (int)s.hd, (int)s.Tq, T(1), dP, (int)s.Tk, qb, (int)s.q_row, T(1), dkb,
                (int)kv_o_row);
      }
    }
}

// ---- explicit instantiations ----
#define CLM_INSTANTIATE(T)                                                                                        \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T, T);                          \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T);         \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, T);             \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t,      \
                                      int64_t);                                                                   \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                                               \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);                                \
  template void gelu_forward<T>(T*, const T*, int64_t, bool);                                                     \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t, bool);                                          \
  template void rotary_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool);    \
  template void rotary_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool);   \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);                                               \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);                                    \
  template double cross_entropy_forward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t*);             \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const int32_t*, int64_t, int64_t, T);           \
  template void embedding_forward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);                    \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t);                            \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttnShape&, T);                  \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,               \
                                      const AttnShape&, T);
CLM_INSTANTIATE(float)
CLM_INSTANTIATE(double)

}  // namespace clm::kernels
