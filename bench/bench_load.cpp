// Loading for inference: peak resident memory and time to the first token of `clm generate
// --weights bf16` (and the time of `clm info`) on a random-initialised Llama-shaped CompactLM
// folder stored in bf16 (default ~258M parameters, a 0.5 GB file), each command run as a child
// process (wait4's ru_maxrss). --clm picks the binary, so an older build can be measured on the
// same file. Prints one JSON line.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kernels/blas.h"
#include "formats/safetensors.h"
#include "models/io.h"
#include "tokenizers/tokenizer.h"
#include "util/fs.h"
#include "guarded_main.h"

using namespace clm;
namespace fs = std::filesystem;

struct Child {
  double seconds, max_rss_mb;
  int rc;
};

// posix_spawn, not fork: a forked child would start with (and report) this process's pages.
static Child run(const std::vector<std::string>& argv) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  if (posix_spawn(&pid, a[0], &fa, nullptr, a.data(), environ) != 0) throw std::runtime_error("cannot run " + argv[0]);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), double(ru.ru_maxrss) / 1024.0,
          WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

static int bench_main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);  // OpenBLAS's own choice may be its SSE3 fallback
  ModelConfig c;
  c.vocab_size = 32000, c.d_model = 1024, c.n_layers = 15, c.n_heads = 16, c.n_kv_heads = 16, c.d_ff = 2816, c.max_seq_len = 2048;
  std::string dir = "/tmp/clm-bench-load-bf16", clm = "build/clm";
  CLI::App app{"CompactLM loading benchmark"};
  app.add_option("--dir", dir, "Where the bf16 checkpoint is (written if missing)");
  app.add_option("--clm", clm, "The clm binary to measure");
  app.add_option("--layers", c.n_layers);
  CLI11_PARSE(app, argc, argv);
  if (!fs::exists(dir + "/model.safetensors")) {
    auto m = make_model(c, 7);
    std::vector<std::pair<std::string, Tensor>> w;
    for (auto& [n, t] : m->named_weights()) w.push_back({n, t.to(DType::bf16)});
    fs::create_directories(dir);
    save_safetensors(dir + "/model.safetensors", w);
    write_file_atomic(dir + "/config.json", nlohmann::json(c).dump());
    write_file_atomic(dir + "/tokenizer.json", ByteTokenizer().to_json().dump());
  }
  const double file_mb = double(fs::file_size(dir + "/model.safetensors")) / 1048576.0;
  Child info = run({clm, "info", "--model", dir});
  Child gen = run({clm, "generate", "--model", dir, "--weights", "bf16", "--max-new-tokens", "1", "--prompt", "Hi",
                   "--threads", "2"});
  nlohmann::json out = {{"clm", clm},
                        {"file_mb", file_mb},
                        {"info_s", info.seconds},
                        {"info_rss_mb", info.max_rss_mb},
                        {"generate_first_token_s", gen.seconds},
                        {"generate_rss_mb", gen.max_rss_mb},
                        {"generate_rss_over_file", gen.max_rss_mb / file_mb},
                        {"rc", {info.rc, gen.rc}}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
