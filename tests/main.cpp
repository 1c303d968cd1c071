// The tests' main: OpenBLAS's kernels chosen as clm chooses them (kernels/blas.h: on a CPU the
// library does not know, its SSE3 fallback is replaced by the kernels the instruction set allows),
// so that what the tests assert — bit-identical resumes, results independent of the thread count —
// is asserted of the engine users run; then GoogleTest.
#include <gtest/gtest.h>

#include "kernels/blas.h"

int main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
