// AVX-512 VNNI tier (compiled with the AVX-512 flags plus -mavx512vnni): the AVX-512 registers
// with VNNI's int8 dot product (regs_avx512.h).
#include "kernels/cpu/regs_avx512.h"

namespace clm::kernels {

const VecKernels* vec_avx512vnni() {
  static const bool ok = vec_avx512() && __builtin_cpu_supports("avx512vnni");
  // constant-initialised: building the table runs no instruction of this ISA on a CPU without it
  static constexpr VecKernels k = SimdVec<Avx512Vnni>::table("avx512vnni");
  return ok ? &k : nullptr;
}

}  // namespace clm::kernels
