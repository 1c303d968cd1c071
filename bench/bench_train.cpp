// Training throughput of one configuration: warmup steps, then timed steps of forward + backward +
// AdamW on random tokens. Prints one JSON line (tokens/s, step time, peak RSS).
// Used by bench/train_vs_pytorch.py, which runs the PyTorch peer in the same session.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "kernels/blas.h"
#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "train/optim.h"
#include "guarded_main.h"

using namespace clm;

static int bench_main(int argc, char** argv) {
  clm::kernels::use_best_blas_kernels(argv);  // OpenBLAS's own choice may be its SSE3 fallback
  ModelConfig c;
  c.vocab_size = 10000, c.d_model = 256, c.n_layers = 6, c.n_heads = 8, c.n_kv_heads = 4, c.d_ff = 688;
  int64_t B = 8, T = 256, warmup = 2, steps = 10;
  int threads = 2;
  std::string device = "cpu";
  bool tf32 = false, bf16 = false;
  CLI::App app{"CompactLM training-throughput benchmark"};
  app.add_option("--arch", c.arch, "transformer | tslm | lstm (recurrent: hidden = d_model, head with bias)");
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--d-model", c.d_model);
  app.add_option("--n-layers", c.n_layers);
  app.add_option("--n-heads", c.n_heads);
  app.add_option("--n-kv-heads", c.n_kv_heads);
  app.add_option("--d-ff", c.d_ff);
  app.add_option("--batch", B);
  app.add_option("--seq", T);
  app.add_option("--warmup", warmup);
  app.add_option("--steps", steps);
  app.add_option("--threads", threads);
  app.add_option("--device", device, "cpu | cuda");
  app.add_flag("--tf32", tf32, "cuda: TF32 tensor-core matmuls");
  app.add_flag("--bf16", bf16, "cuda: bf16 autocast matmuls");
  CLI11_PARSE(app, argc, argv);
  const Device dev = parse_device(device);
  gpu::set_tf32(tf32);
  gpu::set_bf16(bf16);
  c.max_seq_len = T;
  if (c.arch != "transformer") c.n_heads = c.n_kv_heads = 1;  // unused by recurrent models
  kernels::set_num_threads(threads);
  auto mp = make_model(c, 1);
  LanguageModel& model = *mp;
  model.to_device(dev);
  auto params = collect_params(model);
  AdamW opt(params, {});
  Rng rng(7);
  Tensor x = Tensor::empty({B * T}, DType::i32), y = Tensor::empty({B * T}, DType::i32);
  std::vector<double> times;
  double loss = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    for (int64_t i = 0; i < B * T; ++i) {
      x.data<int32_t>()[i] = int32_t(rng.next() % uint64_t(c.vocab_size));
      y.data<int32_t>()[i] = int32_t(rng.next() % uint64_t(c.vocab_size));
    }
    auto t0 = std::chrono::steady_clock::now();
    nn::Var l = ag::cross_entropy(model.forward(x, B, T), y);
    ag::backward(l);
    clip_grad_norm(params, 1.0);
    opt.step(1e-4);
    zero_grads(params);
    loss = l->value.item();  // waits for the device
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  double med = times[times.size() / 2];
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::json j = {{"impl", "compactlm"},       {"arch", c.arch},       {"tokens_per_s", double(B * T) / med},
                      {"step_s_median", med},      {"step_s_min", times.front()},
                      {"step_s_max", times.back()}, {"peak_rss_mb", ru.ru_maxrss / 1024.0},
                      {"params", model.num_params()}, {"threads", threads},
                      {"isa", kernels::vec().isa},  {"loss", loss},
                      {"device", dev == Device::cuda ? gpu::describe() : "cpu"}, {"tf32", tf32}, {"bf16", bf16},
                      {"gpu_mb_in_use", double(gpu::bytes_in_use() + gpu::bytes_cached()) / (1 << 20)}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
