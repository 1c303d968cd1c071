// Tensor-core GEMMs on the GPU at square shapes (issue #13's bar: FP8 and INT8 >= 1.6x bf16 at
// 4096^3): bf16 x bf16 -> f32 (cuBLAS, the engine's autocast GEMM), FP8 E4M3 -> bf16 and -> f32
// (cuBLASLt, per-tensor scales), INT8 -> INT32 (cuBLASLt). Operands are zero-initialised codes: the
// tensor cores' speed does not depend on the values. Median of --reps timed runs after 3 warm-ups;
// one JSON line per shape. Built with -DCLM_CUDA=ON.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernels/cuda/cuda.h"
#include "tensor/device.h"
#include "tensor/tensor.h"
#include "guarded_main.h"

using namespace clm;

static double median_s(const std::function<void()>& f, int reps) {
  for (int i = 0; i < 3; ++i) f();
  gpu::sync();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    gpu::sync();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static int bench_main(int argc, char** argv) {
  std::vector<int> sizes = {2048, 4096, 8192};
  int reps = 20;
  CLI::App app{"GPU GEMM benchmark"};
  app.add_option("--sizes", sizes, "Square sizes M = N = K");
  app.add_option("--reps", reps);
  CLI11_PARSE(app, argc, argv);
  gpu::require("bench_gemm_cuda");
  for (int n : sizes) {
    const int64_t nn = int64_t(n) * n;
    Tensor a16 = Tensor::zeros({nn}, DType::bf16, Device::cuda), b16 = Tensor::zeros({nn}, DType::bf16, Device::cuda);
    Tensor a8 = Tensor::zeros({nn}, DType::u8, Device::cuda), b8 = Tensor::zeros({nn}, DType::u8, Device::cuda);
    Tensor c32 = Tensor::zeros({nn}, DType::f32, Device::cuda), cbf = Tensor::zeros({nn}, DType::bf16, Device::cuda);
    Tensor ci = Tensor::zeros({nn}, DType::i32, Device::cuda);
    Tensor s = Tensor::from(std::vector<float>{1.f}, {1}).to_device(Device::cuda);
    const auto* A16 = static_cast<const uint16_t*>(a16.raw());
    const auto* B16 = static_cast<const uint16_t*>(b16.raw());
    const auto* A8 = static_cast<const uint8_t*>(a8.raw());
    const auto* B8 = static_cast<const uint8_t*>(b8.raw());
    const double flop = 2.0 * double(n) * n * n;
    const double t_bf16 = median_s([&] { cuda::gemm_bf16(false, true, n, n, n, 1.f, A16, n, B16, n, 0.f, c32.data<float>(), n); }, reps);
    const double t_fp8_bf16 = median_s([&] { cuda::gemm_fp8(n, n, n, A8, B8, s.data<float>(), s.data<float>(), cbf.raw(), true); }, reps);
    const double t_fp8_f32 = median_s([&] { cuda::gemm_fp8(n, n, n, A8, B8, s.data<float>(), s.data<float>(), c32.raw(), false); }, reps);
    const double t_i8 = median_s([&] {
      cuda::gemm_i8(n, n, n, reinterpret_cast<const int8_t*>(A8), reinterpret_cast<const int8_t*>(B8), ci.data<int32_t>());
    }, reps);
    // Whole linear layers on f32 activations: bf16 (round x, GEMM) and W8A8 (quantize x per token,
    // INT8 GEMM, scales applied).
    Tensor x = Tensor::zeros({nn}, DType::f32, Device::cuda), sx = Tensor::zeros({n}, DType::f32, Device::cuda);
    Tensor sw = Tensor::zeros({n}, DType::f32, Device::cuda);
    const double t_lin_bf16 = median_s([&] {
      cuda::to_bf16(static_cast<uint16_t*>(a16.raw()), x.data<float>(), nn);
      cuda::gemm_bf16(false, true, n, n, n, 1.f, A16, n, B16, n, 0.f, c32.data<float>(), n);
    }, reps);
    const double t_lin_i8 = median_s([&] {
      cuda::linear_i8(c32.data<float>(), x.data<float>(), reinterpret_cast<const int8_t*>(B8), sw.data<float>(), n, n, n, nullptr, 0, 1.0,
                      reinterpret_cast<int8_t*>(a8.raw()), sx.data<float>(), ci.data<int32_t>());
    }, reps);
    nlohmann::json o = {{"device", gpu::describe()}, {"M", n}, {"N", n}, {"K", n},
                        {"linear_bf16_ms", t_lin_bf16 * 1e3}, {"linear_w8a8_ms", t_lin_i8 * 1e3}, {"linear_w8a8_vs_bf16", t_lin_bf16 / t_lin_i8},
                        {"bf16_tflops", flop / t_bf16 / 1e12}, {"fp8_bf16out_tflops", flop / t_fp8_bf16 / 1e12},
                        {"fp8_f32out_tflops", flop / t_fp8_f32 / 1e12}, {"int8_tops", flop / t_i8 / 1e12},
                        {"fp8_vs_bf16", t_bf16 / t_fp8_bf16}, {"int8_vs_bf16", t_bf16 / t_i8}};
    std::printf("%s\n", o.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
