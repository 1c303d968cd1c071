// Software prefetch for the batch-1 decode kernels, whose weights stream once from memory per
// token. The hardware prefetcher alone kept one core's bf16 panels at 54-59% of its read bandwidth
// (its f32 ones at 85-92%: half the work per line); asking for each line kStreamAhead bytes before
// it is used raised bf16 decode by 39-50% on an Intel Xeon, to 92% of its bound (docs/RESULTS.md, session
// 20). Prefetches never fault, so reading past the end of a matrix is harmless.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace clm::kernels {

inline constexpr int64_t kStreamAhead = 4096;

// Every 64-byte line of the `bytes` that follow p + kStreamAhead (bytes: a compile-time multiple of 64).
template <int64_t bytes> inline void prefetch_ahead(const void* p) {
  const char* c = static_cast<const char*>(p) + kStreamAhead;
#pragma GCC unroll 8
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

}  // namespace clm::kernels
