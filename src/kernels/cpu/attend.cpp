#include <algorithm>
#include <limits>

#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm::kernels {

namespace {
// s [n] holds scale * q·K for the visible cells; becomes the probabilities (masked cells 0).
// Returns false when no cell is visible.
bool masked_softmax(float* s, const int32_t* pos, int64_t n, int32_t qpos) {
  const auto& vk = vec();
  float m = -std::numeric_limits<float>::infinity();
  int64_t masked = 0;
  for (int64_t i = 0; i < n; ++i)
    if (pos[i] > qpos) ++masked;
    else m = std::max(m, s[i]);
  if (masked == n) {
    std::fill(s, s + n, 0.0f);
    return false;
  }
  if (masked)  // a score far below the max: exact zeros after the exponential, removed from the sum
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos) s[i] = m - 200.0f;
  float z = vk.exp_sum(s, m, s, n);
  if (masked)
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos) z -= s[i], s[i] = 0.0f;
  vk.scale(1.0f / z, s, n);
  return true;
}
}  // namespace

void attend_cells(float* out, int64_t out_stride, float* s, const float* q, int64_t q_stride, const int32_t* qpos,
                  int64_t T, const float* K, const float* V, const int32_t* pos, int64_t n, int64_t hd, float scale,
                  float slope) {
  const auto& vk = vec();
  auto bias = [&](float* row, int32_t qp) {
    if (slope != 0.0f)
      for (int64_t i = 0; i < n; ++i) row[i] -= slope * float(qp - pos[i]);
  };
  if (T == 1) {  // decoding: dot products over the visible cells, then a weighted sum of values
    for (int64_t i = 0; i < n; ++i) s[i] = pos[i] > qpos[0] ? 0.0f : vk.dot(q, K + i * hd, hd) * scale;
    bias(s, qpos[0]);
    std::fill(out, out + hd, 0.0f);
    if (!masked_softmax(s, pos, n, qpos[0])) return;
    for (int64_t i = 0; i < n; ++i)
      if (s[i] != 0.0f) vk.axpy(s[i], V + i * hd, out, hd);
    return;
  }
  gemm<float>(false, true, int(T), int(n), int(hd), scale, q, int(q_stride), K, int(hd), 0.0f, s, int(n));
  for (int64_t t = 0; t < T; ++t) bias(s + t * n, qpos[t]), masked_softmax(s + t * n, pos, n, qpos[t]);
  gemm<float>(false, false, int(T), int(hd), int(n), 1.0f, s, int(n), V, int(hd), 0.0f, out, int(out_stride));
}

}  // namespace clm::kernels
