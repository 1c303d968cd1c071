// Batch-1 decode and prefill speed of a random-initialised Llama (default: the ~110M shape of
// issue #3: dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000), f32, bf16, W8A8 and NVFP4 W4A4 weights, plus a
// STREAM-like triad and a read-only sum measuring the memory bandwidth in the same process (the
// bound uses the read bandwidth: decoding streams weights and writes almost nothing). Prints one JSON line.
// --export-llama2c PATH writes the same model for llama2.c's run.c (bench/decode_vs_peers.py).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernels/blas.h"
#include "autograd/autograd.h"
#include "formats/llama2c.h"
#include "models/lm.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "quant/methods.h"
#include "shape_flags.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

// Best-of-5 triad a = b + s*c over 3 x 128 MiB, in GB/s (bytes moved: 3 arrays per pass).
static double triad_gbs() {
  const int64_t n = 32 << 20;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = clk::now();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    double dt = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::max(best, 3.0 * 4.0 * double(n) / dt / 1e9);
  }
  return best + a[n / 2] * 0;  // keep the stores
}

// Best-of-5 read bandwidth: a sum over 512 MiB (decode reads weights; it writes almost nothing).
static double read_gbs() {
  const int64_t n = 128 << 20;
  std::vector<float> a(n, 1.0f);
  double best = 0, sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = clk::now();
    double total = 0;
    const auto& v = kernels::vec();
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < n; i += 4096) total += v.sumsq(a.data() + i, 4096);
    double dt = std::chrono::duration<double>(clk::now() - t0).count();
    sink += total;
    best = std::max(best, 4.0 * double(n) / dt / 1e9);
  }
  return best + sink * 0;
}

static int bench_main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);  // OpenBLAS's own choice may be its SSE3 fallback
  ModelConfig c;
  c.vocab_size = 32000, c.d_model = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.d_ff = 2048;
  c.max_seq_len = 256, c.rope_interleaved = true, c.init_std = 0.02;
  int64_t prompt = 32, tokens = 64;
  int threads = 2;
  std::string export_path, only;
  CLI::App app{"CompactLM decode benchmark"};
  add_shape_flags(app, c, prompt, tokens);
  app.add_option("--threads", threads);
  app.add_option("--init-std", c.init_std, "Weight init std (larger: peaked logits, for greedy comparisons)");
  app.add_option("--only", only,
                 "f32 | bf16 | w8a8 | w4a4 | w4a8 | w8 | w4g32 | w4nv | w4mx (default: all; the quantized ones: the layers on int8 / NVFP4 "
                 "kernels, MXFP4 codes with int8 activations per 32 (w4a8), or weight-only int8, int4/g32, NVFP4, MXFP4 codes with f32 "
                 "activations; the head in bf16 unless --quant-head)");
  app.add_option("--export-llama2c", export_path, "Also write the model as a llama2.c checkpoint");
  bool quant_head = false;
  app.add_flag("--quant-head", quant_head, "Quantize the output head too in the quantized rows (as llama.cpp's Q8_0 files do)");
  CLI11_PARSE(app, argc, argv);
  if (c.n_kv_heads > c.n_heads) c.n_kv_heads = c.n_heads;
  kernels::set_num_threads(threads);
  auto mp = make_model(c, 1234);
  LanguageModel& model = *mp;
  if (!export_path.empty()) write_llama2c_checkpoint(export_path, c, model.named_weights());
  nlohmann::json out = {{"impl", "compactlm"}, {"params", model.num_params()}, {"threads", threads},
                        {"isa", kernels::vec().isa}, {"triad_gbs", triad_gbs()}, {"read_gbs", read_gbs()}};
  const std::vector<std::pair<std::string, nlohmann::json>> rows = {
      {"f32", nullptr},
      {"bf16", nullptr},
      {"w8a8", {{"w", "int8"}, {"a", "int8"}, {"kernel", "int8"}}},
      {"w4a4", {{"w", "nvfp4"}, {"a", "nvfp4"}, {"kernel", "nvfp4"}}},
      {"w4a8", {{"w", "mxfp4"}, {"a", "int8/g32"}, {"kernel", "w4a8"}}},
      {"w8", {{"w", "int8"}, {"kernel", "w-only"}}},
      {"w4g32", {{"w", "int4/g32"}, {"kernel", "w-only"}}},
      {"w4nv", {{"w", "nvfp4"}, {"kernel", "w-only"}}},
      {"w4mx", {{"w", "mxfp4"}, {"kernel", "w-only"}}}};
  for (const auto& [tag, qopt] : rows) {
    if (!only.empty() && only != tag) continue;
    model.pack(tag == "f32" ? "f32" : "bf16");
    if (!qopt.is_null()) {
      nlohmann::json o = qopt;
      o["head"] = quant_head;
      quant::quantize_model(model, "rtn", o, nullptr);
    }
    InferState s = model.make_state(prompt + tokens + 8);
    std::vector<int32_t> ids(prompt);
    for (int64_t i = 0; i < prompt; ++i) ids[i] = int32_t((i * 7919) % c.vocab_size);
    auto t0 = clk::now();
    const float* l = model.infer(s, ids);
    double prefill_s = std::chrono::duration<double>(clk::now() - t0).count();
    int32_t tok = int32_t(std::max_element(l, l + c.vocab_size) - l);
    model.infer(s, {&tok, 1});  // warm
    auto t1 = clk::now();
    for (int64_t i = 0; i < tokens; ++i) {
      l = model.infer(s, {&tok, 1});
      tok = int32_t(std::max_element(l, l + c.vocab_size) - l);
    }
    double dt = std::chrono::duration<double>(clk::now() - t1).count();
    // the first prefill above is cold (buffers, page faults); then the median of five warm ones
    std::vector<double> warm;
    for (int rep = 0; rep < 5; ++rep) {
      InferState w = model.make_state(prompt + 8);
      auto t2 = clk::now();
      model.infer(w, ids);
      warm.push_back(double(prompt) / std::chrono::duration<double>(clk::now() - t2).count());
    }
    std::sort(warm.begin(), warm.end());
    const double tps = double(tokens) / dt, bytes = double(model.packed_bytes());
    out[tag] = {{"decode_tok_s", tps}, {"prefill_tok_s", double(prompt) / prefill_s}, {"prefill_warm_tok_s", warm[2]}, {"weight_bytes", bytes},
                {"bound_tok_s", out["read_gbs"].get<double>() * 1e9 / bytes},
                {"fraction_of_bound", tps * bytes / (out["read_gbs"].get<double>() * 1e9)}};
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
