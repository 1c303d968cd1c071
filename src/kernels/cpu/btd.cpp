// Multi-linear attention's split-concat form: the query slices of the averaged block-term tensor
// (kernels.h). Per (batch row, query a): u = gbar . q_a, slice = (K . u) V^T, one GEMM.
#include <omp.h>

#include <vector>

#include "kernels/cpu/rows.h"
#include "kernels/kernels.h"

namespace clm::kernels {

namespace {
template <class T> std::vector<T> mean_core(const T* g, int64_t R, int64_t h) {
  std::vector<T> m(static_cast<size_t>(R), T(0));
  for (int64_t j = 0; j < h; ++j)
    for (int64_t r = 0; r < R; ++r) m[size_t(r)] += g[j * R + r] / T(h);
  return m;
}
}  // namespace

template <class T>
void btd_slices_forward(T* y, const T* q, const T* k, const T* v, const T* g, int64_t B, int64_t N, int64_t R, int64_t h) {
  const std::vector<T> gb = mean_core(g, R, h);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t a = 0; a < N; ++a) {
      T* Ku = scratch<T>(size_t(N * R));
      const T *qa = q + (b * N + a) * R, *kb = k + b * N * R, *vb = v + b * N * R;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t r = 0; r < R; ++r) Ku[i * R + r] = kb[i * R + r] * gb[size_t(r)] * qa[r];
      gemm<T>(false, true, int(N), int(N), int(R), T(1), Ku, int(R), vb, int(R), T(0), y + (b * N + a) * N * N, int(N));
    }
}

// dKu = dS V: dk += dKu . u, du = sum_i dKu . k; dv += dS^T (K . u); dq = du . gbar, dgbar += du . q.
// Parallel over batch rows (each owns its k/v rows); dg gathers per-thread sums.
template <class T>
void btd_slices_backward(T* dq, T* dk, T* dv, T* dg, const T* dy, const T* q, const T* k, const T* v, const T* g, int64_t B,
                         int64_t N, int64_t R, int64_t h) {
  const std::vector<T> gb = mean_core(g, R, h);
  std::vector<std::vector<T>> parts(size_t(omp_get_max_threads()), std::vector<T>(static_cast<size_t>(R), T(0)));
#pragma omp parallel
  {
    std::vector<T>& part = parts[size_t(omp_get_thread_num())];
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t a = 0; a < N; ++a) {
        T* Ku = scratch<T>(size_t(2 * N * R));
        T* dKu = Ku + N * R;
        const T *qa = q + (b * N + a) * R, *kb = k + b * N * R, *vb = v + b * N * R, *dS = dy + (b * N + a) * N * N;
        T *dqa = dq + (b * N + a) * R, *dkb = dk + b * N * R, *dvb = dv + b * N * R;
        for (int64_t i = 0; i < N; ++i)
          for (int64_t r = 0; r < R; ++r) Ku[i * R + r] = kb[i * R + r] * gb[size_t(r)] * qa[r];
        gemm<T>(false, false, int(N), int(R), int(N), T(1), dS, int(N), vb, int(R), T(0), dKu, int(R));
        gemm<T>(true, false, int(N), int(R), int(N), T(1), dS, int(N), Ku, int(R), T(1), dvb, int(R));
        for (int64_t r = 0; r < R; ++r) {
          T du = 0;
          const T u = gb[size_t(r)] * qa[r];
          for (int64_t i = 0; i < N; ++i) du += dKu[i * R + r] * kb[i * R + r], dkb[i * R + r] += dKu[i * R + r] * u;
          dqa[r] += du * gb[size_t(r)];
          part[size_t(r)] += du * qa[r];
        }
      }
  }
  std::vector<T> dgb(static_cast<size_t>(R), T(0));
  for (auto& part : parts)  // in thread order: deterministic for a thread count
    for (int64_t r = 0; r < R; ++r) dgb[size_t(r)] += part[size_t(r)];
  for (int64_t j = 0; j < h; ++j)
    for (int64_t r = 0; r < R; ++r) dg[j * R + r] += dgb[size_t(r)] / T(h);
}

#define CLM_INSTANTIATE_BTD(T)                                                                                     \
  template void btd_slices_forward<T>(T*, const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t); \
  template void btd_slices_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, \
                                       int64_t, int64_t);
CLM_INSTANTIATE_BTD(float)
CLM_INSTANTIATE_BTD(double)

}  // namespace clm::kernels
