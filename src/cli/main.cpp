// clm: the CompactLM command. Each subcommand is wired in its own file (cli/*.cpp); the work is
// done by the library. Every subcommand has --help.
#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/cli.h"

// OpenBLAS picks its kernels from the CPU's model number; a CPU its table does not know (a newer
// Xeon, a generic model in a VM) falls back to Prescott's SSE3 kernels, GEMMs several times slower.
// Then clm runs itself again with the best core type the CPU's instruction set allows
// (OPENBLAS_CORETYPE is read when the library loads). Set OPENBLAS_CORETYPE to choose yourself.
static void choose_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = openblas_get_corename();
  if (!core || (strcasecmp(core, "prescott") != 0 && strcasecmp(core, "core2") != 0)) return;
  const char* want = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")    ? "Haswell"
                                                                                          : nullptr;
  if (!want) return;
  char self[4096];  // started through the dynamic loader (ld-linux ... clm): re-running the loader would not work
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || std::strstr(std::string(self, size_t(n)).c_str(), "/ld-linux")) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: go on with the kernels we have
}

int main(int argc, char** argv) {
  using namespace clm::cli;
  choose_blas_kernels(argv);
  CLI::App app{"CompactLM: train, compress and run efficient transformer language models", "clm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last wins
  Commands cmds;
  for (auto add : {add_train, add_eval, add_generate, add_serve, add_info, add_tokenize, add_convert, add_plot, add_calibrate, add_units, add_kvbench}) add(app, cmds);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "clm: error: %s\n", e.what());
    return 2;
  }
  try {
    for (auto& c : cmds)
      if (c.app->parsed()) return c.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sclm: error: %s\n", isatty(2) ? "\r\033[K" : "", e.what());
    return 1;
  }
  return 0;
}
