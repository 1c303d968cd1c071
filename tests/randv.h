// Random float vectors for kernel tests (header-only: test_vec also builds as a static binary).
#pragma once
#include <cstdint>
#include <vector>

#include "util/rng.h"

namespace clm::test {

inline std::vector<float> randv(Rng& r, int64_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.normal() * scale);
  return v;
}

}  // namespace clm::test
