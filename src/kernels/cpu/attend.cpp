#include <algorithm>
#include <limits>

#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm::kernels {

void attend_cells(float* out, float* s, const float* q, const float* K, const float* V, const int32_t* pos, int64_t n,
                  int32_t qpos, int64_t hd, float scale) {
  const auto& vk = vec();
  std::fill(out, out + hd, 0.0f);
  float m = -std::numeric_limits<float>::infinity();
  int64_t masked = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (pos[i] > qpos) {
      ++masked;
      continue;
    }
    s[i] = vk.dot(q, K + i * hd, hd) * scale;
    m = std::max(m, s[i]);
  }
  if (masked == n) return;  // nothing visible: a zero output
  if (masked) {  // masked cells get a score far below the max; exact zeros after the exponential
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos) s[i] = m - 200.0f;
  }
  float z = vk.exp_sum(s, m, s, n);
  if (masked)
    for (int64_t i = 0; i < n; ++i)
      if (pos[i] > qpos) z -= s[i], s[i] = 0.0f;
  const float inv = 1.0f / z;
  for (int64_t i = 0; i < n; ++i) {
    if (s[i] == 0.0f) continue;
    s[i] *= inv;
    vk.axpy(s[i], V + i * hd, out, hd);
  }
}

}  // namespace clm::kernels
