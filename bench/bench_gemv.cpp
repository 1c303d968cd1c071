// One token through one quantized Linear: the low-bit GEMV kernels on their own (bench_decode times
// them inside a model). For each weight format and shape, the median of many products of a fresh
// activation vector (the quantization of the activations included, as in decoding) in microseconds,
// and the weight bytes read per second; the matrices are larger than the caches at the default
// shapes, so that is a memory-bound speed like a decode step's. Prints one JSON line per row.
//   clm_bench_gemv --threads 1 [--shapes 2048x768,768x2048,32000x768]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/blas.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#include "quant/weight_only.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

static int bench_main(int argc, char** argv) {
  kernels::use_best_blas_kernels(argv);  // before anything else (kernels/blas.h)
  int threads = 1, reps = 200;
  std::string shapes = "2048x768,768x2048,5632x2048,32000x768";
  CLI::App app{"Low-bit GEMV kernels, one token"};
  app.add_option("--threads", threads);
  app.add_option("--reps", reps, "Products per row (the median is reported)");
  app.add_option("--shapes", shapes, "Output x input sizes, comma-separated");
  CLI11_PARSE(app, argc, argv);
  kernels::set_num_threads(threads);
  std::stringstream ss(shapes);
  for (std::string s; std::getline(ss, s, ',');) {
    const auto x_at = s.find('x');
    if (x_at == std::string::npos) {
      std::fprintf(stderr, "error: --shapes: '%s' is not NxK\n", s.c_str());
      return 1;
    }
    const int64_t N = std::stoll(s.substr(0, x_at)), K = std::stoll(s.substr(x_at + 1));
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0, 1);
    Tensor w = Tensor::empty({N, K});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng) * 0.02f;
    auto rep = std::make_shared<quant::LayerReport>();
    rep->in = rep->k_eff = K;
    float amax = 0;
    for (int64_t i = 0; i < w.numel(); ++i) amax = std::max(amax, std::fabs(w.data<float>()[i]));
    const quant::ElemSpec a32 = quant::ElemSpec::parse("int8/g32");
    std::vector<std::pair<std::string, std::shared_ptr<kernels::WeightFormat>>> rows = {
        {"w8a8", std::make_shared<quant::Int8Format>(w, quant::Int8Format::Act{}, rep, "w8a8")},
        {"w4a4-nvfp4", std::make_shared<quant::Nvfp4Format>(w, std::vector<int64_t>{}, 0, amax, false, rep, "w4a4")},
        {"w4a8-mxfp4", std::make_shared<quant::WeightOnlyFormat>(w, quant::ElemSpec::parse("mxfp4"), rep, "w4a8", a32)},
        {"w4a8-int4g32", std::make_shared<quant::WeightOnlyFormat>(w, quant::ElemSpec::parse("int4/g32"), rep, "w4a8", a32)},
        {"w4-mxfp4", std::make_shared<quant::WeightOnlyFormat>(w, quant::ElemSpec::parse("mxfp4"), rep, "w4")}};
    std::vector<float> x(static_cast<size_t>(K)), y(static_cast<size_t>(N));
    for (auto& v : x) v = nd(rng);
    for (auto& [tag, f] : rows) {
      std::vector<double> us;
      for (int r = 0; r < reps + 5; ++r) {
        x[size_t(r) % x.size()] += 1e-3f;  // a fresh input each time
        const auto t0 = clk::now();
        f->matmul(x.data(), 1, y.data());
        const double dt = std::chrono::duration<double, std::micro>(clk::now() - t0).count();
        if (r >= 5) us.push_back(dt);
      }
      std::sort(us.begin(), us.end());
      const double med = us[us.size() / 2], bytes = double(f->bytes());
      nlohmann::json o = {{"shape", s}, {"format", tag}, {"threads", threads}, {"isa", kernels::vec().isa}, {"us", med},
                          {"weight_bytes", bytes}, {"gbs", bytes / med / 1e3}, {"y0", y[0]}};
      std::printf("%s\n", o.dump().c_str());
    }
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
