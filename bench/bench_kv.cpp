// KV eviction at long context, side by side in one run: a prompt of --context tokens is prefilled,
// then --tokens tokens are decoded, with no policy (the full cache) and with each policy at
// --budget. Reports decode tokens/s and its ratio to the full cache, the cells kept, and the
// policies' own bookkeeping (selection, compaction after each call) as a share of decode time.
// "full" (a policy that never evicts but still watches attention rows where its kind would) is
// not run: the watching cost shows in each policy's own row. Random weights: speed does not depend
// on them. One JSON line per row.
#include <CLI/CLI.hpp>
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernels/blas.h"
#include "autograd/autograd.h"
#include "eval/vqa.h"
#include "infer/kv_policy.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "models/lm.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

static double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }

static int bench_main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);  // OpenBLAS's own choice may be its SSE3 fallback
  ModelConfig c;
  c.vocab_size = 512, c.d_model = 256, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 4, c.d_ff = 688;
  c.tie_embeddings = true;
  int64_t context = 4096, tokens = 64, rounds = 5;
  double budget = 0.6;
  std::vector<std::string> policies{"streaming", "h2o", "tova", "snapkv", "hae"};
  int threads = 0;
  std::string weights = "f32";
  CLI::App app{"KV eviction: decode speed at long context against the full cache"};
  app.add_option("--d-model", c.d_model)->capture_default_str();
  app.add_option("--n-layers", c.n_layers)->capture_default_str();
  app.add_option("--n-heads", c.n_heads)->capture_default_str();
  app.add_option("--n-kv-heads", c.n_kv_heads)->capture_default_str();
  app.add_option("--d-ff", c.d_ff)->capture_default_str();
  app.add_option("--vocab", c.vocab_size)->capture_default_str();
  app.add_option("--context", context, "Prompt tokens prefilled before decoding")->capture_default_str();
  app.add_option("--tokens", tokens, "Decoded tokens timed")->capture_default_str();
  app.add_option("--rounds", rounds, "Repetitions, interleaved across the rows (the median is kept)")->capture_default_str();
  app.add_option("--budget", budget, "Fraction of the cells the policies keep")->capture_default_str();
  app.add_option("--policies", policies)->delimiter(',');
  app.add_option("--threads", threads);
  app.add_option("--weights", weights)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  kernels::set_num_threads(threads);
  c.max_seq_len = context + tokens;
  auto m = make_model(c, 1);
  m->pack(weights);
  ag::NoGrad ng;
  std::vector<int32_t> prompt(static_cast<size_t>(context));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919) % size_t(c.vocab_size));
  std::vector<std::string> rows{""};
  rows.insert(rows.end(), policies.begin(), policies.end());
  // rounds interleave the rows (A B C A B C ...) so that a slow spell of the machine hits all of
  // them; each row reports its median
  std::vector<std::vector<double>> tps(rows.size()), book(rows.size());
  std::vector<double> kept(rows.size());
  for (int64_t r = 0; r < rounds; ++r)
    for (size_t k = 0; k < rows.size(); ++k) {
      InferState s = m->make_state(context + tokens + 1);
      std::unique_ptr<KVPolicy> pol = rows[k].empty() ? nullptr : make_kv_policy(rows[k], nullptr, {budget, 0});
      if (pol) pol->attach(s);
      m->infer(s, prompt);
      const double book0 = pol ? pol->stats.seconds : 0;
      int32_t tok = 1;
      const auto t0 = clk::now();
      for (int64_t i = 0; i < tokens; ++i) {
        const float* l = m->infer(s, std::span<const int32_t>(&tok, 1));
        tok = int32_t(std::max_element(l, l + c.vocab_size) - l);
      }
      const double dt = secs(t0);
      tps[k].push_back(double(tokens) / dt);
      book[k].push_back(pol ? (pol->stats.seconds - book0) / dt : 0);
      kept[k] = kv_fraction(s, s.next_pos);
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  const double full_tps = median(tps[0]);
  for (size_t k = 0; k < rows.size(); ++k) {
    const std::string& p = rows[k];
    nlohmann::json j{{"policy", p.empty() ? "none (full cache)" : p}, {"budget", p.empty() ? 1.0 : budget}, {"context", context},
                     {"decode_tok_s", median(tps[k])}, {"ratio_to_full", median(tps[k]) / full_tps}, {"kv_kept", kept[k]},
                     {"bookkeeping_share", median(book[k])}, {"rounds", rounds}, {"d_model", c.d_model}, {"n_layers", c.n_layers},
                     {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"vocab", c.vocab_size}, {"weights", weights},
                     {"threads", kernels::num_threads()}, {"isa", kernels::vec().isa}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
