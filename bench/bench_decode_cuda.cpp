// Batch-1 decoding on a GPU through the GPU decoder (infer/gpu_decoder.h): a random-initialised
// Llama of the given shape, a prompt of --prompt tokens, then --tokens decoded greedily (each step
// the real user path: graph replay, logits copied to the host, argmax there). Reports tokens/s, the
// weight bytes one token reads, and the fraction of two bounds: the card's peak bandwidth (--peak-gbs,
// the data-sheet number) and the read bandwidth this build's matrix-vector kernel reaches on a 2 GiB
// matrix. Prints one JSON line. Built with -DCLM_CUDA=ON; bench/torch_decode.py is the peer.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "infer/gpu_decoder.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/decode.h"
#include "models/lm.h"
#include "quant/calibrate.h"
#include "quant/methods.h"
#include "shape_flags.h"
#include "tensor/device.h"
#include "tensor/tensor.h"
#include "guarded_main.h"

using namespace clm;
using clk = std::chrono::steady_clock;

// Best of 5: y = W x over a [65536, 16384] bf16 matrix (2 GiB), in GB/s of weights read.
static double gemv_read_gbs() {
  const int64_t N = 65536, K = 16384;
  Tensor W = Tensor::zeros({N * K / 2}, DType::f32, Device::cuda);  // 2 GiB of bf16 zeros
  Tensor x = Tensor::zeros({K}, DType::f32, Device::cuda), y = Tensor::zeros({N}, DType::f32, Device::cuda);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    gpu::sync();
    auto t0 = clk::now();
    cuda::gemv_bf16(y.data<float>(), static_cast<const uint16_t*>(W.raw()), nullptr, x.data<float>(), N, K, 1, false);
    gpu::sync();
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    if (rep) best = std::max(best, 2.0 * double(N * K) / dt / 1e9);
  }
  return best;
}

// Microseconds per call of f on the device: 50 calls back to back after 5 warm-up ones.
static double us_per_call(const std::function<void()>& f) {
  for (int i = 0; i < 5; ++i) f();
  gpu::sync();
  auto t0 = clk::now();
  for (int i = 0; i < 50; ++i) f();
  gpu::sync();
  return std::chrono::duration<double>(clk::now() - t0).count() / 50 * 1e6;
}

// The read bandwidth (GB/s) of the GEMV over one bf16 [N, K] matrix, one token: what each of a
// layer's products reaches on its own.
static double gemv_gbs(int64_t N, int64_t K) {
  Tensor W = Tensor::zeros({N * K / 2 + 16}, DType::f32, Device::cuda);
  Tensor x = Tensor::zeros({K}, DType::f32, Device::cuda), y = Tensor::zeros({N}, DType::f32, Device::cuda);
  const double us = us_per_call([&] { cuda::gemv_bf16(y.data<float>(), static_cast<const uint16_t*>(W.raw()), nullptr, x.data<float>(), N, K, 1, false); });
  return 2.0 * double(N * K) / us / 1e3;
}

// Microseconds per NVFP4 W4A4 product of one token at [N, K] (zero codes: the speed does not depend on
// them), the activations' quantization included. With N = 8 it is almost all quantization (k_nv_encode).
static double nvfp4_us(int64_t N, int64_t K) {
  const int64_t Kp = cuda::nvfp4_pad(K);
  auto dev = [](int64_t n) { return Tensor::zeros({n}, DType::f32, Device::cuda); };
  Tensor codes = dev(N * Kp / 8 + 16), scales = dev(N * Kp / 64 + 16), stw = dev(N), x = dev(K), y = dev(N), xq = dev(Kp / 4 + 16),
         xs = dev(Kp / 16 + 16), amax = dev(cuda::kNvfp4AmaxFloats);
  return us_per_call([&] {
    cuda::linear_nvfp4(y.data<float>(), x.data<float>(), static_cast<const uint8_t*>(codes.raw()), static_cast<const uint8_t*>(scales.raw()),
                       stw.data<float>(), 1, N, K, 0, nullptr, false, static_cast<int8_t*>(xq.raw()), xs.data<float>(), amax.data<float>());
  });
}

// Microseconds per launch of the other kernels of a decode step at the model's shapes (one token at
// position `pos` of a cache of `cap`), each launched 50 times back to back after 5 warm-up launches:
// with the GEMVs' times, what a layer would cost if its kernels did not wait on each other.
static nlohmann::json small_kernel_us(const ModelConfig& c, int64_t pos, int64_t cap) {
  const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.d_model / c.n_heads, D = c.d_model, F = c.d_ff;
  const int64_t chunks = (cap + cuda::kDecodeChunk - 1) / cuda::kDecodeChunk;
  auto dev = [](int64_t n) { return Tensor::zeros({n}, DType::f32, Device::cuda); };
  Tensor x = dev(D), y = dev(D), w = dev(D), qkv = dev((H + 2 * Hkv) * hd), kc = dev(cap * Hkv * hd), vc = dev(cap * Hkv * hd);
  Tensor rot = dev(cap * hd), att = dev(H * hd), part = dev(H * chunks * (hd + 2)), gu = dev(2 * F), act = dev(F);
  Tensor p0 = Tensor::from(std::vector<int32_t>{int32_t(pos)}, {1}).to_device(Device::cuda);
  const int32_t* pp = p0.data<int32_t>();
  const auto& time = us_per_call;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  return {{"norm", time([&] { cuda::norm_rows(y.data<float>(), x.data<float>(), w.data<float>(), nullptr, 1, D, 1e-5f, 0.f, false); })},
          {"rope_append", time([&] { cuda::rope_append(qkv.data<float>(), kc.data<float>(), vc.data<float>(), rot.data<float>(), pp, 1, H, Hkv, hd, false); })},
          {"attention", time([&] {
             cuda::decode_attention(att.data<float>(), part.data<float>(), qkv.data<float>(), kc.data<float>(), vc.data<float>(), pp, 1, H,
                                    Hkv, hd, chunks, scale, nullptr);
           })},
          {"glu", time([&] { cuda::glu(act.data<float>(), gu.data<float>(), 1, F, false); })}};
}

static int bench_main(int argc, char** argv) {
  ModelConfig c;
  c.vocab_size = 32000, c.d_model = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 4, c.d_ff = 2048, c.max_seq_len = 4096;
  int64_t prompt = 128, tokens = 256, rounds = 3;
  std::string weights = "bf16";
  double peak_gbs = 0;
  std::string quant = "none";
  CLI::App app{"GPU decode benchmark"};
  add_shape_flags(app, c, prompt, tokens);  // --tokens: per round
  app.add_option("--rounds", rounds, "Rounds (the median is reported)");
  app.add_option("--weights", weights, "bf16 | f32");
  app.add_option("--peak-gbs", peak_gbs, "The card's data-sheet bandwidth in GB/s (H100 SXM 3350, H200 4800)");
  app.add_option("--quant", quant,
                 "Quantize every Linear but the head first: none | w8a8 (rtn w=int8 a=int8) | nvfp4 (rtn w=nvfp4 a=nvfp4) | "
                 "arcquant (calibrated on two windows of token ids, KE by the ratio rule)")
      ->check(CLI::IsMember({"none", "w8a8", "nvfp4", "arcquant"}));
  CLI11_PARSE(app, argc, argv);
  c.max_seq_len = std::max<int64_t>(c.max_seq_len, prompt + tokens + 8);
  gpu::require("bench_decode_cuda");
  // Random weights up to ~2B parameters; beyond, the allocated (zero) weights: the speed of reading
  // them does not depend on their values, and drawing billions of normals takes minutes.
  const bool init = c.min_params() < int64_t(2e9);
  auto host = make_model(c, 1234, DType::f32, init);
  const int64_t params = host->num_params();
  const double wb = weights == "bf16" ? 2 : 4, head = double(c.vocab_size * c.d_model);
  const double mats = double(params - c.vocab_size * c.d_model * (c.tie_embeddings ? 1 : 2) - (2 * c.n_layers + 1) * c.d_model);
  if (quant == "w8a8") quant::quantize_model(*host, "rtn", {{"w", "int8"}, {"a", "int8"}}, nullptr);
  if (quant == "nvfp4") quant::quantize_model(*host, "rtn", {{"w", "nvfp4"}, {"a", "nvfp4"}}, nullptr);
  if (quant == "arcquant") {
    std::vector<int32_t> calib(256);
    for (size_t i = 0; i < calib.size(); ++i) calib[i] = int32_t((i * 104729) % size_t(c.vocab_size));
    const quant::Calibration cal = quant::calibrate(*host, calib, 2, 128, "token ids");
    quant::quantize_model(*host, "arcquant", {}, &cal);
  }
  double qbytes = 0;  // the quantized Linears' stored bytes (codes and scales)
  host->linears([&](const std::string&, nn::Linear& l) { qbytes += l.packed ? double(l.packed->bytes()) : 0.0; });
  const double wbytes = (quant == "none" ? wb * mats : qbytes) + wb * head;  // the layers' matrices + the head; not the embedding table or norms
  auto model = gpu_decoder(std::move(host), weights);
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (int64_t i = 0; i < prompt; ++i) ids[size_t(i)] = int32_t((i * 7919) % c.vocab_size);
  std::vector<double> dec, pre;
  for (int64_t r = 0; r < rounds + 1; ++r) {  // round 0 warms up (graph capture, caches)
    InferState s = model->make_state(prompt + tokens + 8);
    auto t0 = clk::now();
    const float* l = model->infer(s, ids);
    const double p = std::chrono::duration<double>(clk::now() - t0).count();
    int32_t tok = int32_t(std::max_element(l, l + c.vocab_size) - l);
    auto t1 = clk::now();
    for (int64_t i = 0; i < tokens; ++i) {
      l = model->infer(s, {&tok, 1});
      tok = int32_t(std::max_element(l, l + c.vocab_size) - l);
    }
    const double d = std::chrono::duration<double>(clk::now() - t1).count();
    if (r) dec.push_back(double(tokens) / d), pre.push_back(double(prompt) / p);
  }
  std::sort(dec.begin(), dec.end());
  std::sort(pre.begin(), pre.end());
  const double tps = dec[dec.size() / 2], read = gemv_read_gbs();
  nlohmann::json out = {{"impl", "compactlm"}, {"device", gpu::describe()}, {"params", params}, {"weights", weights}, {"quant", quant}, {"random_init", init},
                        {"prompt", prompt}, {"tokens", tokens}, {"decode_tok_s", tps}, {"decode_tok_s_all", dec},
                        {"prefill_tok_s", pre[pre.size() / 2]}, {"weight_bytes", wbytes}, {"gemv_read_gbs", read},
                        {"achieved_gbs", tps * wbytes / 1e9}, {"fraction_of_gemv_read", tps * wbytes / (read * 1e9)}};
  if (peak_gbs > 0) out["peak_gbs"] = peak_gbs, out["fraction_of_peak"] = tps * wbytes / (peak_gbs * 1e9);
  if (quant == "none") {  // the layer's four products and the head, and the other kernels, each on its own
    const int64_t hd = c.d_model / c.n_heads, D = c.d_model, F = c.d_ff;
    out["gemv_gbs_by_matrix"] = {{"qkv", gemv_gbs((c.n_heads + 2 * c.n_kv_heads) * hd, D)}, {"o", gemv_gbs(D, c.n_heads * hd)},
                                 {"gate_up", gemv_gbs(2 * F, D)}, {"down", gemv_gbs(D, F)}, {"head", gemv_gbs(c.vocab_size, D)}};
    out["kernel_us"] = small_kernel_us(c, prompt + tokens / 2, prompt + tokens + 8);
  }
  if (quant == "nvfp4") {  // where an NVFP4 layer's time goes: each product, and the quantization alone (N = 8)
    const int64_t hd = c.d_model / c.n_heads, D = c.d_model, F = c.d_ff;
    out["nvfp4_us_by_matrix"] = {{"qkv", nvfp4_us((c.n_heads + 2 * c.n_kv_heads) * hd, D)}, {"o", nvfp4_us(D, c.n_heads * hd)},
                                 {"gate_up", nvfp4_us(2 * F, D)}, {"down", nvfp4_us(D, F)}};
    out["nvfp4_quant_us"] = {{"K=d_model", nvfp4_us(8, D)}, {"K=d_ff", nvfp4_us(8, F)}};
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
