#include <algorithm>

#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm::kernels {

namespace {
// A masked cell's score: far enough below any real one that its exponential is the clamped minimum
// (~1e-38, lost in the sum), and no ALiBi bias, however large, brings it back.
constexpr float kFar = -1e30f;

// s [n] in place: scores -> probabilities (masked cells, already at kFar, end exactly 0). masked:
// how many there are; the row's max comes from the SIMD tier, so rows without any pay no scan.
void softmax_row(float* s, const int32_t* pos, int64_t n, int32_t qpos, int64_t masked) {
  const auto& vk = vec();
  const float m = vk.max(s, n);
  vk.scale(1.0f / vk.exp_sum(s, m, s, n), s, n);
  if (masked)
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos) s[i] = 0.0f;
}

// Row of a multi-token call: the cells a query may not see (a later position, or hidden) masked,
// then the softmax. With the cells in position order (the usual case: a cache appended to, or
// compacted in order) they are a suffix, found by binary search; else one pass marks them.
// Returns false when no cell is visible (the row is all zeros).
bool masked_softmax(float* s, const int32_t* pos, int64_t n, int32_t qpos, bool sorted) {
  if (sorted) {
    const int64_t k = std::upper_bound(pos, pos + n, qpos) - pos;
    std::fill(s + k, s + n, 0.0f);
    if (k) softmax_row(s, pos, k, qpos, 0);
    return k > 0;
  }
  int64_t masked = 0;
  for (int64_t i = 0; i < n; ++i)
    if (pos[i] > qpos) s[i] = kFar, ++masked;
  if (masked == n) {
    std::fill(s, s + n, 0.0f);
    return false;
  }
  softmax_row(s, pos, n, qpos, masked);
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
    int64_t masked = 0;
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos[0]) s[i] = kFar, ++masked;
      else s[i] = vk.dot(q, K + i * hd, hd) * scale;
    std::fill(out, out + hd, 0.0f);
    if (masked == n) {
      std::fill(s, s + n, 0.0f);
      return;
    }
    bias(s, qpos[0]);
    softmax_row(s, pos, n, qpos[0], masked);
    for (int64_t i = 0; i < n; ++i)
      if (s[i] != 0.0f) vk.axpy(s[i], V + i * hd, out, hd);
    return;
  }
  gemm<float>(false, true, int(T), int(n), int(hd), scale, q, int(q_stride), K, int(hd), 0.0f, s, int(n));
  const bool sorted = std::is_sorted(pos, pos + n);
  for (int64_t t = 0; t < T; ++t) bias(s + t * n, qpos[t]), masked_softmax(s + t * n, pos, n, qpos[t], sorted);
  gemm<float>(false, false, int(T), int(hd), int(n), 1.0f, s, int(n), V, int(hd), 0.0f, out, int(out_stride));
}

}  // namespace clm::kernels
