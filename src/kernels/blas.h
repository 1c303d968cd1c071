// OpenBLAS chooses its GEMM kernels from the CPU's model number when the library loads; a CPU its
// table does not know (a newer Xeon, a generic model in a VM) gets the SSE3 "Prescott" kernels,
// about 4x slower here (docs/RESULTS.md). OPENBLAS_CORETYPE overrides the choice, but only if it
// is set before the library loads: a program calls this first thing in main, and it runs itself
// again (same arguments) with the best core type the instruction set allows. A user's
// OPENBLAS_CORETYPE is respected; started through the dynamic loader (ld-linux ... prog), nothing
// happens (re-running the loader would not run the program).
#pragma once

namespace clm::kernels {

void use_best_blas_kernels(char** argv);
const char* blas_core();  // the kernels OpenBLAS uses ("SkylakeX", "Haswell", "Prescott", ...)

}  // namespace clm::kernels
