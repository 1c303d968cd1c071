// AVX-512 tier (compiled with -mavx512f -mavx512bw -mavx512vl -mfma): the registers for vec_simd.h.
#include "kernels/cpu/regs_avx512.h"

namespace clm::kernels {

const VecKernels* vec_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  // constant-initialised: building the table runs no instruction of this ISA on a CPU without it
  static constexpr VecKernels k = SimdVec<Avx512>::table("avx512");
  return ok ? &k : nullptr;
}

}  // namespace clm::kernels
