// INT8 GEMM against OpenBLAS SGEMM, same shapes, same process, alternating: y[n, M] = x[n, K] · Wᵀ
// with W [M, K]. The INT8 side is the W8A8 Linear as inference runs it (quant::Int8Format::matmul:
// per-token activation quantization included, weights quantized once beforehand); the SGEMM side
// is kernels::gemm<float> (OpenBLAS) on the f32 weights. Prints one JSON line per shape with the
// median of --reps runs of each and their ratio.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/blas.h"
#include "kernels/blas.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "quant/int8_format.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

static int bench_main(int argc, char** argv) {
  kernels::use_best_blas_kernels(argv);  // before anything else (kernels/blas.h)
  int threads = 2, reps = 5;
  std::vector<std::string> shapes = {"2048x2048x2048", "512x2048x2048", "512x5632x2048", "2048x768x768"};
  CLI::App app{"INT8 GEMM (W8A8 Linear) vs OpenBLAS SGEMM"};
  app.add_option("--threads", threads);
  app.add_option("--reps", reps);
  app.add_option("--shapes", shapes, "tokens x M x K");
  CLI11_PARSE(app, argc, argv);
  kernels::set_num_threads(threads);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  for (const std::string& sh : shapes) {
    int64_t n = 0, M = 0, K = 0;
    if (std::sscanf(sh.c_str(), "%ldx%ldx%ld", &n, &M, &K) != 3) throw std::invalid_argument("shape '" + sh + "': want NxMxK");
    Tensor w = Tensor::empty({M, K});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng);
    std::vector<float> x(size_t(n * K)), y(size_t(n * M));
    for (auto& v : x) v = nd(rng);
    auto rep = std::make_shared<quant::LayerReport>();
    rep->in = rep->k_eff = K;
    quant::Int8Format q(w, {}, rep, "w8a8");
    std::vector<double> ti, tf;
    for (int r = 0; r < reps + 1; ++r) {  // the first of each is a warm-up
      auto t0 = clk::now();
      q.matmul(x.data(), n, y.data());
      const double a = std::chrono::duration<double>(clk::now() - t0).count();
      t0 = clk::now();
      kernels::gemm<float>(false, true, int(n), int(M), int(K), 1.0f, x.data(), int(K), w.data<float>(), int(K), 0.0f, y.data(), int(M));
      const double b = std::chrono::duration<double>(clk::now() - t0).count();
      if (r) ti.push_back(a), tf.push_back(b);
    }
    std::sort(ti.begin(), ti.end());
    std::sort(tf.begin(), tf.end());
    const double gi = 2e-9 * double(n * M * K) / ti[ti.size() / 2], gf = 2e-9 * double(n * M * K) / tf[tf.size() / 2];
    const nlohmann::json j = {{"shape", sh}, {"threads", threads}, {"isa", kernels::vec().isa}, {"int8_gops", gi}, {"sgemm_gflops", gf},
                              {"ratio", gi / gf}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
