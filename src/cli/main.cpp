// clm: the CompactLM command. Each subcommand is wired in its own file (cli/*.cpp); the work is
// done by the library. Every subcommand has --help.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli/cli.h"
#include "kernels/blas.h"
#include "kernels/threads.h"
#include "util/memory.h"

int main(int argc, char** argv) {
  using namespace clm::cli;
  clm::kernels::use_best_blas_kernels(argv);  // before anything else (kernels/blas.h)
  CLI::App app{"CompactLM: train, compress and run efficient transformer language models", "clm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last wins
  // Global, accepted after the subcommand too (fallthrough): clm generate --max-memory 8G ...
  std::string max_memory;
  app.add_option("--max-memory", max_memory,
                 "Memory clm may use, e.g. 8G (default: what the machine has available); a model or context that needs more is refused before loading");
  std::string thread_policy;
  app.add_option("--thread-policy", thread_policy,
                 "adaptive (default): fewer threads while other processes keep cores busy, measured as it runs; fixed: exactly --threads");
  app.fallthrough();
  Commands cmds;
  for (auto add : {add_train, add_eval, add_generate, add_serve, add_info, add_tokenize, add_convert, add_plot, add_calibrate, add_quantize, add_units, add_kvbench}) add(app, cmds);
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
    if (!max_memory.empty()) clm::set_memory_limit(clm::parse_size(max_memory));
    if (const char* e = std::getenv("CLM_THREAD_POLICY"); thread_policy.empty() && e) thread_policy = e;
    if (!thread_policy.empty()) clm::kernels::set_thread_policy(clm::kernels::parse_thread_policy(thread_policy));
    for (auto& c : cmds)
      if (c.app->parsed()) return c.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sclm: error: %s\n", isatty(2) ? "\r\033[K" : "", e.what());
    return 1;
  }
  return 0;
}
