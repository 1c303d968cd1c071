// TensorCoder dimension-wise attention: forward, backward and the decoding step (kernels.h).
#include <omp.h>

#include <cmath>
#include <stdexcept>

#include "kernels/cpu/rows.h"
#include "kernels/kernels.h"

namespace clm::kernels {

namespace {
// Z [d, d] -> f(c Z) in place: softmax along each row, or along each column.
template <class T> void normalise(T* Z, T c, int64_t d, bool rows, T* tmp) {
  if (rows) {
    for (int64_t i = 0; i < d; ++i) {
      T* r = Z + i * d;
      row_scale(c, r, d);
      const T m = row_max(r, d);
      row_scale(T(1) / row_exp_sum(r, m, r, d), r, d);
    }
    return;
  }
  for (int64_t j = 0; j < d; ++j) {  // columns: through a contiguous copy
    for (int64_t i = 0; i < d; ++i) tmp[i] = c * Z[i * d + j];
    const T m = row_max(tmp, d);
    const T z = T(1) / row_exp_sum(tmp, m, tmp, d);
    for (int64_t i = 0; i < d; ++i) Z[i * d + j] = tmp[i] * z;
  }
}

// dZ = c * softmax'(S) dS (in place on dS), along rows or columns.
template <class T> void normalise_backward(T* dS, const T* S, T c, int64_t d, bool rows) {
  if (rows) {
    for (int64_t i = 0; i < d; ++i) {
      T* g = dS + i * d;
      const T* p = S + i * d;
      const T dot = row_dot(p, g, d);
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) g[j] = c * p[j] * (g[j] - dot);
    }
    return;
  }
  for (int64_t j = 0; j < d; ++j) {
    T dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += S[i * d + j] * dS[i * d + j];
    for (int64_t i = 0; i < d; ++i) dS[i * d + j] = c * S[i * d + j] * (dS[i * d + j] - dot);
  }
}

template <class T> T scale_of(int64_t count, int64_t hd, bool by_count) {
  return T(1) / T(std::sqrt(double(by_count ? count : hd)));
}

// o[i] = sum_j W[i,j] S[i,j] v[j]  (tmp [d])
template <class T> void apply(T* o, const T* W, const T* S, const T* v, int64_t d, T* tmp) {
  for (int64_t i = 0; i < d; ++i) {
    const T *w = W + i * d, *s = S + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) tmp[j] = w[j] * v[j];
    o[i] = row_dot(s, tmp, d);
  }
}
// P += a b^T
template <class T> void outer_add(T* P, const T* a, const T* b, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    const T ai = a[i];
    T* p = P + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) p[j] += ai * b[j];
  }
}
// One causal token: P += q k^T, then S = f(c P) with c from the `count` tokens summed. The forward,
// the backward's recomputation and the decode step all take it, so the three agree to the bit.
template <class T>
void accumulate_and_normalise(T* P, T* S, const T* q, const T* k, int64_t count, int64_t d, bool rows, bool by_count, T* tmp) {
  outer_add(P, q, k, d);
  std::copy(P, P + d * d, S);
  normalise(S, scale_of<T>(count, d, by_count), d, rows, tmp);
}
// dq += G k, dk += G^T q
template <class T> void outer_backward(T* dq, T* dk, const T* G, const T* q, const T* k, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    const T* g = G + i * d;
    dq[i] += row_dot(g, k, d);
    const T qi = q[i];
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) dk[j] += g[j] * qi;
  }
}
}  // namespace

template <class T>
void dim_attention_forward(T* out, T* S, const T* q, const T* k, const T* v, const T* W, const DimAttnShape& s) {
  const int64_t d = s.hd, dd = d * d, group = s.H / s.Hkv, qrow = s.H * d, kvrow = s.Hkv * d;
  const int64_t chunk = dim_chunk(s), saved = dim_saved(s);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      const int64_t kh = h / group;
      const T *qb = q + b * s.T * qrow + h * d, *kb = k + b * s.T * kvrow + kh * d, *vb = v + b * s.T * kvrow + kh * d;
      const T* Wh = W + h * dd;
      T* P = scratch<T>(3 * dd);
      T *Z = P + dd, *tmp = Z + dd;
      std::fill(P, P + dd, T(0));
      if (!s.causal)
        for (int64_t t = 0; t < s.T; ++t) outer_add(P, qb + t * qrow, kb + t * kvrow, d);
      T* saved_bh = S ? S + (b * s.H + h) * saved * dd : nullptr;
      for (int64_t t = 0; t < s.T; ++t) {
        if (s.causal) {
          if (saved_bh && t % chunk == 0) std::copy(P, P + dd, saved_bh + (t / chunk) * dd);  // the sum before the chunk
          accumulate_and_normalise(P, Z, qb + t * qrow, kb + t * kvrow, t + 1, d, s.rows, s.by_count, tmp);
        } else if (t == 0) {
          std::copy(P, P + dd, Z);
          normalise(Z, scale_of<T>(s.T, d, s.by_count), d, s.rows, tmp);
          if (saved_bh) std::copy(Z, Z + dd, saved_bh);
        }
        apply(out + (b * s.T + t) * qrow + h * d, Wh, Z, vb + t * kvrow, d, tmp);
      }
    }
}

// Backward, from the last token down: G accumulates dP_t over t >= n (the tokens whose P_t
// includes token n), so dq_n = G k_n and dk_n = G^T q_n. Causal: chunk by chunk from the last, each
// chunk's S_t first recomputed from its saved sum by the forward's own steps (the same floats).
// Parallel over KV heads: the query heads of a group write the same dk/dv, and each head's dW
// gathers every batch row, serially.
template <class T>
void dim_attention_backward(T* dq, T* dk, T* dv, T* dW, const T* dout, const T* S, const T* q, const T* k, const T* v,
                            const T* W, const DimAttnShape& s) {
  const int64_t d = s.hd, dd = d * d, group = s.H / s.Hkv, qrow = s.H * d, kvrow = s.Hkv * d;
  const int64_t chunk = s.causal ? dim_chunk(s) : 1, saved = dim_saved(s);
#pragma omp parallel for schedule(static)
  for (int64_t kh = 0; kh < s.Hkv; ++kh)
    for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
      for (int64_t b = 0; b < s.B; ++b) {
        const T *qb = q + b * s.T * qrow + h * d, *kb = k + b * s.T * kvrow + kh * d, *vb = v + b * s.T * kvrow + kh * d;
        T *dqb = dq + b * s.T * qrow + h * d, *dkb = dk + b * s.T * kvrow + kh * d, *dvb = dv + b * s.T * kvrow + kh * d;
        const T* Wh = W + h * dd;
        T* dWh = dW + h * dd;
        T* G = scratch<T>((3 + chunk) * dd + d);
        T *dS = G + dd, *P = dS + dd, *Sc = P + dd, *tmp = Sc + chunk * dd;
        const T* saved_bh = S + (b * s.H + h) * saved * dd;
        std::fill(G, G + dd, T(0));
        for (int64_t t = s.T - 1; t >= 0; --t) {
          if (s.causal && (t == s.T - 1 || t % chunk == chunk - 1)) {  // entering a chunk from its end: its S_t again
            const int64_t t0 = t - t % chunk;
            std::copy(saved_bh + (t0 / chunk) * dd, saved_bh + (t0 / chunk + 1) * dd, P);
            for (int64_t u = t0; u <= t; ++u)
              accumulate_and_normalise(P, Sc + (u - t0) * dd, qb + u * qrow, kb + u * kvrow, u + 1, d, s.rows, s.by_count, tmp);
          }
          const T* St = s.causal ? Sc + (t % chunk) * dd : saved_bh;
          const T *g = dout + (b * s.T + t) * qrow + h * d, *vt = vb + t * kvrow;
          T* dvt = dvb + t * kvrow;
          for (int64_t i = 0; i < d; ++i) {  // dA = g v^T: dv += A^T g, dW += dA . S, dS = dA . W
            const T gi = g[i], *w = Wh + i * d, *si = St + i * d;
            T *dw = dWh + i * d, *ds = dS + i * d;
#pragma omp simd
            for (int64_t j = 0; j < d; ++j) {
              const T a = gi * vt[j];
              dvt[j] += w[j] * si[j] * gi;
              dw[j] += a * si[j];
              ds[j] = a * w[j];
            }
          }
          normalise_backward(dS, St, scale_of<T>(s.causal ? t + 1 : s.T, d, s.by_count), d, s.rows);
#pragma omp simd
          for (int64_t i = 0; i < dd; ++i) G[i] += dS[i];
          if (s.causal) outer_backward(dqb + t * qrow, dkb + t * kvrow, G, qb + t * qrow, kb + t * kvrow, d);
        }
        if (!s.causal)
          for (int64_t t = 0; t < s.T; ++t) outer_backward(dqb + t * qrow, dkb + t * kvrow, G, qb + t * qrow, kb + t * kvrow, d);
      }
}

void dim_attention_step(float* out, float* P, float* scratch_, const float* q, const float* k, const float* v, const float* W,
                        int64_t hd, int64_t count, bool rows, bool by_count) {
  float tmp[1024];
  if (hd > 1024) throw std::invalid_argument("dim_attention_step: head dim above 1024");
  accumulate_and_normalise(P, scratch_, q, k, count, hd, rows, by_count, tmp);
  apply(out, W, scratch_, v, hd, tmp);
}

#define CLM_INSTANTIATE_DIM(T)                                                                                      \
  template void dim_attention_forward<T>(T*, T*, const T*, const T*, const T*, const T*, const DimAttnShape&);     \
  template void dim_attention_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, \
                                          const DimAttnShape&);
CLM_INSTANTIATE_DIM(float)
CLM_INSTANTIATE_DIM(double)

}  // namespace clm::kernels
