// The attention variants side by side at one model size (default: the PTB comparison shape, d_model
// 256, 4 layers, 4 heads, d_ff 688, vocab 10,000): batch-1 decode step time at growing context
// (softmax's KV cache grows, TensorCoder's d x d state does not, multi-linear caches one K/V of rank
// R for all blocks), state memory, and training tokens/s (forward + backward of batch x seq).
// One JSON line per (variant, measurement); the ratio to softmax ("causal") is computed by the
// reader (docs/RESULTS.md). Random weights: speed does not depend on them.
#include <CLI/CLI.hpp>
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernels/blas.h"
#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "models/lm.h"
#include "nn/module.h"
#include "util/rng.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

static double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }

static int bench_main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);  // OpenBLAS's own choice may be its SSE3 fallback
  ModelConfig c;
  c.vocab_size = 10000, c.d_model = 256, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 4, c.d_ff = 688;
  c.tie_embeddings = true;
  std::vector<int64_t> contexts{512, 1024, 2048, 4096, 8192};
  std::vector<std::string> variants{"causal", "tensorcoder", "multilinear", "multilinear:rank=256"};
  int64_t tokens = 32, B = 8, T = 256, train_steps = 3;
  int threads = 1;
  std::string weights = "f32";
  CLI::App app{"attention variants: decode at long context, state memory, training speed"};
  app.add_option("--d-model", c.d_model);
  app.add_option("--n-layers", c.n_layers);
  app.add_option("--n-heads", c.n_heads);
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--contexts", contexts, "Context lengths for the decode measurement");
  app.add_option("--variants", variants, "attention[:key=value], e.g. multilinear:rank=256");
  app.add_option("--tokens", tokens, "Decoded tokens timed per context");
  app.add_option("--batch", B);
  app.add_option("--seq", T);
  app.add_option("--train-steps", train_steps, "Timed forward+backward steps (0 = skip)");
  app.add_option("--threads", threads);
  app.add_option("--weights", weights, "Packed weight format for decoding (f32, bf16, ...), as clm generate --weights");
  CLI11_PARSE(app, argc, argv);
  c.n_kv_heads = c.n_heads;
  kernels::set_num_threads(threads);
  for (const std::string& v : variants) {
    ModelConfig mc = c;
    const auto colon = v.find(':');
    mc.attention = v.substr(0, colon);
    if (colon != std::string::npos) nn::set_option(mc.attention_opt, v.substr(colon + 1), "--variants");
    int64_t maxc = 0;
    for (int64_t n : contexts) maxc = std::max(maxc, n);
    mc.max_seq_len = std::max(maxc + tokens, T);
    auto m = make_model(mc, 1);
    m->pack(weights);
    for (int64_t n : contexts) {
      InferState st = m->make_state(n + tokens);
      std::vector<int32_t> prompt(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) prompt[size_t(i)] = int32_t((i * 7919) % mc.vocab_size);
      auto t0 = clk::now();
      const float* l = m->infer(st, prompt);
      const double prefill = secs(t0);
      int32_t next = 1;
      t0 = clk::now();
      for (int64_t i = 0; i < tokens; ++i) {
        l = m->infer(st, std::span<const int32_t>(&next, 1));
        next = int32_t(std::max_element(l, l + mc.vocab_size) - l);
      }
      const double dt = secs(t0) / double(tokens);
      std::printf("%s\n", nlohmann::json{{"variant", v}, {"measure", "decode"}, {"context", n}, {"ms_per_token", dt * 1e3},
                                         {"prefill_s", prefill}, {"state_bytes", st.bytes()}, {"threads", threads}, {"weights", weights},
                                         {"isa", kernels::vec().isa}, {"params", m->num_params()}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    }
    // The attention slot alone (one layer: its projections, rotation, cache or state, attention):
    // the part of a decode step that differs between the variants, without the MLPs and the output
    // layer that every variant pays alike.
    for (int64_t n : contexts) {
      nn::Init init{Rng(1), DType::f32, true};
      auto pe = nn::PositionRegistry::get().create("position", mc.position, mc.position_opt, mc, init);
      auto attn = nn::AttentionRegistry::get().create("attention", mc.attention, mc.attention_opt, mc, init);
      attn->linears("", [&](const std::string&, nn::Linear& l) { l.pack(weights); });
      pe->reserve(n + tokens);
      auto state = attn->make_state(n + tokens);
      nn::Workspace ws;
      const int64_t D = mc.d_model, chunk = 256;
      std::vector<float> x(static_cast<size_t>(chunk * D)), y(static_cast<size_t>(chunk * D));
      Rng r(2);
      for (auto& v : x) v = float(r.normal());
      std::vector<int32_t> pos(static_cast<size_t>(chunk));
      for (int64_t p0 = 0; p0 < n; p0 += chunk) {  // fill the cache / state to n positions
        const int64_t len = std::min(chunk, n - p0);
        for (int64_t t = 0; t < len; ++t) pos[size_t(t)] = int32_t(p0 + t);
        ws.reset();
        attn->infer(x.data(), y.data(), *pe, *state, nn::InferCtx{len, pos.data(), 0, nullptr, 0, &ws, nullptr});
      }
      std::vector<double> each;
      for (int64_t i = 0; i < tokens; ++i) {
        pos[0] = int32_t(n + i);
        ws.reset();
        auto t0 = clk::now();
        attn->infer(x.data(), y.data(), *pe, *state, nn::InferCtx{1, pos.data(), 0, nullptr, 0, &ws, nullptr});
        each.push_back(secs(t0));
      }
      std::sort(each.begin(), each.end());
      std::printf("%s\n", nlohmann::json{{"variant", v}, {"measure", "attention_step"}, {"context", n}, {"ms_per_layer", each[each.size() / 2] * 1e3},
                                         {"threads", threads}, {"weights", weights}, {"isa", kernels::vec().isa}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    }
    if (train_steps > 0) {
      std::vector<int32_t> ids(static_cast<size_t>(B * T)), tg(static_cast<size_t>(B * T));
      for (int64_t i = 0; i < B * T; ++i) ids[size_t(i)] = int32_t((i * 31) % mc.vocab_size), tg[size_t(i)] = int32_t((i * 17) % mc.vocab_size);
      Tensor tid = Tensor::from(ids, {B * T}), ttg = Tensor::from(tg, {B * T});
      double best = 1e30;
      for (int64_t s = 0; s < train_steps + 1; ++s) {  // the first is a warm-up
        auto t0 = clk::now();
        nn::Var loss = ag::cross_entropy(m->forward(tid, B, T), ttg);
        ag::backward(loss);
        if (s > 0) best = std::min(best, secs(t0));
      }
      std::printf("%s\n", nlohmann::json{{"variant", v}, {"measure", "train"}, {"batch", B}, {"seq", T},
                                         {"tokens_per_s", double(B * T) / best}, {"threads", threads},
                                         {"isa", kernels::vec().isa}, {"params", m->num_params()}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
