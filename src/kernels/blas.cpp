#include "kernels/blas.h"

#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace clm::kernels {

const char* blas_core() { return openblas_get_corename(); }

void use_best_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = openblas_get_corename();
  if (!core || (strcasecmp(core, "prescott") != 0 && strcasecmp(core, "core2") != 0)) return;
  const char* want = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")    ? "Haswell"
                                                                                          : nullptr;
  if (!want) return;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || std::string(self, size_t(n)).find("/ld-linux") != std::string::npos) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: go on with the kernels we have
}

}  // namespace clm::kernels
