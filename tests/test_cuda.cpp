// The CUDA backend against the CPU engine (the reference): every GPU op's forward and backward, the
// optimizer, a model's training curve and a checkpoint written from the device. Built only with
// -DCLM_CUDA=ON; skips when no device is visible.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <numeric>

#include "autograd/ops.h"
#include "autograd/ops_cuda.h"
#include "common.h"
#include "eval/retrieval.h"
#include "formats/safetensors.h"
#include "infer/generate.h"
#include "infer/gpu_decoder.h"
#include "kernels/cuda/cuda.h"
#include "quant/calibrate.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#include "quant/methods.h"
#include "quant/numfmt.h"
#include "models/io.h"
#include "models/lm.h"
#include "train/optim.h"
#include "util/rng.h"

using namespace clm;
using clm::test::rel_err;

namespace {

#define NEED_GPU() \
  if (gpu::count() == 0) GTEST_SKIP() << "no CUDA device: " << gpu::describe()

Tensor randn(const Shape& s, Rng& r, double scale = 1.0) {
  Tensor t = Tensor::empty(s, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(r.normal() * scale);
  return t;
}

// Runs f on CPU copies and on device copies of `inputs`; the loss is sum(y * R) for a fixed random
// R, so every output element sends its own gradient back. Compares y and each input's gradient.
void compare(const std::vector<Tensor>& inputs, const std::function<ag::Var(std::vector<ag::Var>&, Device)>& f, double tol = 2e-5,
             const char* what = "") {
  std::vector<Tensor> outs, grads[2];
  Tensor R;
  for (Device d : {Device::cpu, Device::cuda}) {
    std::vector<ag::Var> vs;
    for (const Tensor& t : inputs) vs.push_back(ag::leaf(t.to_device(d), true));
    ag::Var y = f(vs, d);
    if (!R.defined()) {
      Rng r(99);
      R = randn(y->value.shape(), r);
    }
    ag::Var loss = ag::sum(ag::mul(y, ag::leaf(R.to_device(d))));
    ag::backward(loss);
    outs.push_back(y->value.cpu());
    for (auto& v : vs) grads[d == Device::cuda].push_back(v->grad.defined() ? v->grad.cpu() : Tensor::zeros(v->value.shape()));
  }
  EXPECT_LT(rel_err(outs[1], outs[0]), tol) << what << ": forward";
  for (size_t i = 0; i < inputs.size(); ++i) EXPECT_LT(rel_err(grads[1][i], grads[0][i], 1e-12), tol) << what << ": gradient of input " << i;
}

}  // namespace

TEST(Cuda, DeviceTensors) {
  NEED_GPU();
  Rng r(1);
  Tensor h = randn({3, 5}, r);
  Tensor d = h.to_device(Device::cuda);
  EXPECT_TRUE(d.is_cuda());
  EXPECT_FALSE(d.same_storage(h));
  Tensor back = d.cpu();
  for (int64_t i = 0; i < h.numel(); ++i) EXPECT_EQ(back.at(i), h.at(i));
  d.fill_(2.5);
  EXPECT_EQ(d.at(7), 2.5);
  Tensor z = Tensor::zeros({4}, DType::f32, Device::cuda);
  EXPECT_EQ(z.cpu().at(3), 0.0);
  EXPECT_EQ(d.clone().cpu().at(0), 2.5);
  Tensor i32 = Tensor::empty({2}, DType::i32);
  i32.data<int32_t>()[0] = 7, i32.data<int32_t>()[1] = -3;
  EXPECT_EQ(i32.to_device(Device::cuda).cpu().data<int32_t>()[1], -3);
}

TEST(Cuda, ElementwiseOps) {
  NEED_GPU();
  Rng r(2);
  Tensor a = randn({37, 19}, r), b = randn({37, 19}, r);
  compare({a, b}, [](auto& v, Device) { return ag::add(v[0], v[1]); }, 1e-6, "add");
  compare({a, b}, [](auto& v, Device) { return ag::mul(v[0], v[1]); }, 1e-6, "mul");
  compare({a}, [](auto& v, Device) { return ag::scale(v[0], -0.37); }, 1e-6, "scale");
  compare({a, b}, [](auto& v, Device) { return ag::swiglu(v[0], v[1]); }, 1e-5, "swiglu");
}

TEST(Cuda, Linear) {
  NEED_GPU();
  Rng r(3);
  // Sizes off every tile boundary; 600 rows make the bias reduction use several chunks.
  for (int64_t N : {5, 600}) {
    Tensor x = randn({N, 48}, r), w = randn({29, 48}, r, 0.2), b = randn({29}, r);
    compare({x, w, b}, [](auto& v, Device) { return ag::linear(v[0], v[1], v[2]); }, 2e-5, "linear+bias");
    compare({x, w}, [](auto& v, Device) { return ag::linear(v[0], v[1]); }, 2e-5, "linear");
  }
}

// bf16 autocast: inputs rounded to 8 significant bits, so ~2^-9 relative error per product,
// averaging down over K; tf32 likewise with 11 bits. Both stay near the f32 result, not on it.
TEST(Cuda, LinearBf16AndTf32) {
  NEED_GPU();
  Rng r(13);
  Tensor x = randn({300, 256}, r), w = randn({96, 256}, r, 0.1), b = randn({96}, r);
  gpu::set_bf16(true);
  compare({x, w, b}, [](auto& v, Device) { return ag::linear(v[0], v[1], v[2]); }, 8e-3, "linear bf16");
  gpu::set_bf16(false);
  gpu::set_tf32(true);
  compare({x, w, b}, [](auto& v, Device) { return ag::linear(v[0], v[1], v[2]); }, 2e-3, "linear tf32");
  gpu::set_tf32(false);
}

TEST(Cuda, RmsNorm) {
  NEED_GPU();
  Rng r(4);
  Tensor x = randn({300, 72}, r), w = randn({72}, r);
  for (double off : {0.0, 1.0})
    compare({x, w}, [off](auto& v, Device) { return ag::rmsnorm(v[0], v[1], 1e-5, off); }, 2e-5, "rmsnorm");
}

TEST(Cuda, LayerNormGeluAndLearnedPositions) {
  NEED_GPU();
  Rng r(14);
  Tensor x = randn({300, 72}, r, 2.0), w = randn({72}, r), b = randn({72}, r);
  compare({x, w, b}, [](auto& v, Device) { return ag::layernorm(v[0], v[1], v[2], 1e-5); }, 2e-5, "layernorm");
  compare({x, w}, [](auto& v, Device) { return ag::layernorm(v[0], v[1], nullptr, 1e-5); }, 2e-5, "layernorm, no bias");
  for (bool t : {false, true}) compare({x}, [t](auto& v, Device) { return ag::gelu(v[0], t); }, 1e-5, "gelu");
  Tensor table = randn({50, 72}, r);  // 300 rows = 6 sequences of 50 positions, from row 0; and 30 from row 17
  compare({x, table}, [](auto& v, Device) { return ag::add_rows(v[0], v[1], 0, 50); }, 1e-6, "add_rows");
  compare({x, table}, [](auto& v, Device) { return ag::add_rows(v[0], v[1], 17, 30); }, 1e-6, "add_rows at 17");
}

// The GPU mask is not the CPU's (a counter-based hash, not the host RNG's stream): checked for its
// rate, its scale, and a backward that applies the forward's mask.
TEST(Cuda, Dropout) {
  NEED_GPU();
  Rng r(15), rng(16);
  const int64_t n = 1 << 20;
  Tensor x = randn({n}, r);
  ag::Var v = ag::leaf(x.to_device(Device::cuda), true);
  ag::Var y = ag::dropout(v, 0.25, rng);
  ag::backward(ag::sum(y));
  Tensor hy = y->value.cpu(), hg = v->grad.cpu();
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float yi = hy.data<float>()[i], gi = hg.data<float>()[i];
    if (yi == 0.f) {
      ++dropped;
      EXPECT_EQ(gi, 0.f);
    } else {
      ASSERT_NEAR(yi, x.data<float>()[i] / 0.75f, 1e-6 * std::abs(yi) + 1e-7);
      ASSERT_NEAR(gi, 1.f / 0.75f, 1e-6);
    }
  }
  EXPECT_NEAR(double(dropped) / double(n), 0.25, 0.003);  // ~7 standard deviations
  ag::Var y2 = ag::dropout(v, 0.25, rng);  // a new draw: another mask
  ag::clear_tape();
  EXPECT_GT(rel_err(y2->value.cpu(), hy), 0.1);
}

TEST(Cuda, Rotary) {
  NEED_GPU();
  Rng r(5);
  const int64_t B = 2, T = 9, H = 3, hd = 8;
  Tensor x = randn({B * T, H * hd}, r), c = randn({T, hd / 2}, r), s = randn({T, hd / 2}, r);
  for (bool inter : {false, true})
    compare({x}, [&](auto& v, Device d) { return ag::rotary(v[0], c.to_device(d), s.to_device(d), B, T, H, hd, inter); }, 1e-6,
            "rotary");
}

TEST(Cuda, Attention) {
  NEED_GPU();
  Rng r(6);
  struct Case {
    int64_t B, T, H, Hkv, hd;
    bool causal, alibi;
  };
  // T = 70 crosses the 32-key tiles; hd 16 / 64 / 96 / 128; GQA; bidirectional; ALiBi.
  for (Case k : {Case{2, 70, 4, 4, 16, true, false}, Case{1, 33, 4, 2, 64, true, false}, Case{2, 41, 2, 1, 96, false, false},
                 Case{1, 64, 4, 4, 32, true, true}, Case{1, 5, 2, 2, 128, true, false},
                 // rows held in registers (T 600: 3 of 4 slots a thread), and past 2048 the multi-pass rows
                 Case{1, 600, 2, 1, 32, true, false}, Case{1, 700, 2, 2, 16, false, false}, Case{1, 2100, 1, 1, 16, true, true}}) {
    Tensor q = randn({k.B * k.T, k.H * k.hd}, r), kk = randn({k.B * k.T, k.Hkv * k.hd}, r), v = randn({k.B * k.T, k.Hkv * k.hd}, r);
    std::vector<double> slopes;
    if (k.alibi)
      for (int64_t h = 0; h < k.H; ++h) slopes.push_back(0.5 / double(h + 1));
    for (auto path : {ag::cuda_ops::AttnPath::flash, ag::cuda_ops::AttnPath::gemm}) {
      ag::cuda_ops::set_attention_path(path);
      compare(
          {q, kk, v},
          [&](auto& vs, Device) {
            return ag::attention(vs[0], vs[1], vs[2], k.B, k.T, k.H, k.Hkv, k.hd, 1.0 / std::sqrt(double(k.hd)), slopes, k.causal);
          },
          5e-5,
          (std::string(path == ag::cuda_ops::AttnPath::flash ? "flash" : "gemm") + " attention T=" + std::to_string(k.T) +
           " hd=" + std::to_string(k.hd))
              .c_str());
    }
  }
  ag::cuda_ops::set_attention_path(ag::cuda_ops::AttnPath::automatic);
}

TEST(Cuda, EmbeddingAndCrossEntropy) {
  NEED_GPU();
  Rng r(7);
  const int64_t V = 50, D = 24, N = 200;
  Tensor table = randn({V, D}, r), ids = Tensor::empty({N}, DType::i32), tg = Tensor::empty({N}, DType::i32);
  for (int64_t i = 0; i < N; ++i) ids.data<int32_t>()[i] = int32_t(r.uniform() * 10), tg.data<int32_t>()[i] = i % 7 == 0 ? -1 : int32_t(r.uniform() * V);
  compare({table}, [&](auto& v, Device) { return ag::embedding(v[0], ids); }, 1e-6, "embedding (repeated ids)");
  Tensor z = randn({N, V}, r, 3.0);
  compare({z}, [&](auto& v, Device) { return ag::scale(ag::cross_entropy(v[0], tg), 1.0); }, 1e-5, "cross_entropy");
  // A bad id is a one-line error, as on the CPU.
  Tensor bad = ids.clone();
  bad.data<int32_t>()[3] = int32_t(V);
  EXPECT_THROW(ag::embedding(ag::leaf(table.to_device(Device::cuda)), bad), std::out_of_range);
}

TEST(Cuda, MixedDevicesAndMissingKernelsRefuse) {
  NEED_GPU();
  Rng r(8);
  ag::Var a = ag::leaf(randn({4, 4}, r).to_device(Device::cuda)), b = ag::leaf(randn({4, 4}, r));
  EXPECT_THROW(ag::add(a, b), std::invalid_argument);
  EXPECT_THROW(ag::softmax(a), std::invalid_argument);  // no GPU kernel: refused, never read as host memory
}

// A small Llama-style model: the GPU's losses over a few AdamW steps follow the CPU's, the clipped
// gradient norms agree, and a checkpoint written from the device loads back on the CPU unchanged.
TEST(Cuda, TrainingFollowsTheCpu) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 61, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96, c.max_seq_len = 48;
  const int64_t B = 3, T = 40, steps = 8;
  std::vector<double> loss[2], gnorm[2];
  std::unique_ptr<LanguageModel> gpu_model;
  for (Device d : {Device::cpu, Device::cuda}) {
    auto m = make_model(c, 11);
    m->to_device(d);
    AdamW opt(collect_params(*m), AdamWConfig{});
    Rng data(5);
    for (int64_t s = 0; s < steps; ++s) {
      Tensor x = Tensor::empty({B * T}, DType::i32), y = Tensor::empty({B * T}, DType::i32);
      for (int64_t i = 0; i < B * T; ++i) x.data<int32_t>()[i] = int32_t(data.uniform() * 61), y.data<int32_t>()[i] = (x.data<int32_t>()[i] * 7 + 3) % 61;
      ag::Var l = ag::cross_entropy(m->forward(x, B, T), y);
      loss[d == Device::cuda].push_back(l->value.item());
      ag::backward(l);
      gnorm[d == Device::cuda].push_back(clip_grad_norm(opt.params(), 0.5));
      opt.step(3e-3);
      zero_grads(opt.params());
    }
    if (d == Device::cuda) gpu_model = std::move(m);
  }
  for (int64_t s = 0; s < steps; ++s) {
    EXPECT_NEAR(loss[1][size_t(s)], loss[0][size_t(s)], 2e-4 * loss[0][size_t(s)]) << "step " << s;
    EXPECT_NEAR(gnorm[1][size_t(s)], gnorm[0][size_t(s)], 1e-3 * gnorm[0][size_t(s)]) << "step " << s;
  }
  EXPECT_LT(loss[1].back(), loss[1].front() - 0.05);  // it learns
  test::TempDir dir;
  save_model_files(dir.path, *gpu_model, nullptr);
  LoadedModel back = load_model(dir.path);
  auto want = gpu_model->named_weights();
  auto got = back.model->named_weights();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(rel_err(got[i].second, want[i].second.cpu()), 0.0) << want[i].first;
}

// The position variants train on the GPU as on the CPU (ALiBi's slopes in the attention kernel,
// 3D-RPE's chunked angles through the rotary tables), and the planted-pair retrieval task scores a
// model on the GPU as on the CPU (its logits come back to the host).
TEST(Cuda, PositionVariantsAndRetrievalFollowTheCpu) {
  NEED_GPU();
  for (const char* pos : {"alibi", "3d-rpe"}) {
    ModelConfig c;
    c.vocab_size = 61, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96, c.max_seq_len = 48;
    c.position = pos;
    if (c.position == "3d-rpe") c.position_opt = {{"chunk", 8}};
    const int64_t B = 2, T = 40;
    Rng data(3);
    Tensor x = Tensor::empty({B * T}, DType::i32);
    for (int64_t i = 0; i < B * T; ++i) x.data<int32_t>()[i] = int32_t(data.uniform() * 61);
    std::vector<int32_t> stream(400);
    for (auto& t : stream) t = int32_t(data.uniform() * 61);
    std::vector<RetrievalPoint> rt[2];
    Tensor logits[2];
    for (Device d : {Device::cpu, Device::cuda}) {
      auto m = make_model(c, 11);
      m->to_device(d);
      ag::NoGrad ng;
      logits[d == Device::cuda] = m->forward(x, B, T)->value.cpu();
      rt[d == Device::cuda] = retrieval(*m, stream, 32, 6, {0.0, 0.5}, 4);
    }
    EXPECT_LT(rel_err(logits[1], logits[0]), 2e-5) << pos;
    ASSERT_EQ(rt[1].size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(rt[1][i].trials, 6) << pos;
      EXPECT_EQ(rt[1][i].hits, rt[0][i].hits) << pos;
      EXPECT_NEAR(rt[1][i].logp_sum, rt[0][i].logp_sum, 1e-4 * std::abs(rt[0][i].logp_sum)) << pos;
    }
  }
}

// A GPT-2-shaped model (LayerNorm with biases, GELU MLP, learned positions, tied embeddings)
// follows the CPU over a few steps too.
TEST(Cuda, Gpt2ShapedTrainingFollowsTheCpu) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 53, c.d_model = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 4, c.d_ff = 96, c.max_seq_len = 32;
  c.norm = "layernorm", c.mlp = "gelu_tanh", c.position = "learned", c.tie_embeddings = true, c.attn_bias = true, c.mlp_bias = true;
  const int64_t B = 2, T = 32;
  std::vector<double> loss[2];
  for (Device d : {Device::cpu, Device::cuda}) {
    auto m = make_model(c, 21);
    m->to_device(d);
    AdamW opt(collect_params(*m), AdamWConfig{});
    Rng data(6);
    for (int s = 0; s < 6; ++s) {
      Tensor x = Tensor::empty({B * T}, DType::i32), y = Tensor::empty({B * T}, DType::i32);
      for (int64_t i = 0; i < B * T; ++i) x.data<int32_t>()[i] = int32_t(data.uniform() * 53), y.data<int32_t>()[i] = (x.data<int32_t>()[i] + 1) % 53;
      ag::Var l = ag::cross_entropy(m->forward(x, B, T), y);
      loss[d == Device::cuda].push_back(l->value.item());
      ag::backward(l);
      clip_grad_norm(opt.params(), 1.0);
      opt.step(3e-3);
      zero_grads(opt.params());
    }
  }
  for (size_t s = 0; s < loss[0].size(); ++s) EXPECT_NEAR(loss[1][s], loss[0][s], 2e-4 * loss[0][s]) << "step " << s;
}

// The recurrent scans: outputs, final states and every gradient against the CPU's, from non-zero
// carried-in states, for lanes of several steps (rows b*T + t).
TEST(Cuda, RecurrentScansFollowTheCpu) {
  NEED_GPU();
  Rng r(12);
  const int64_t B = 3, T = 7, H = 24;
  const Tensor h0 = randn({B, H}, r, 0.5), c0 = randn({B, H}, r, 0.5);
  Tensor last[2][2];
  compare({randn({B * T, H}, r), randn({H, H}, r, 0.3), randn({H}, r)},
          [&](auto& v, Device d) { return ag::tslm_scan(v[0], v[1], v[2], h0.to_device(d), B, T, &last[d == Device::cuda][0]); },
          2e-5, "tslm_scan");
  EXPECT_LT(rel_err(last[1][0].cpu(), last[0][0]), 2e-5) << "tslm h_last";
  compare({randn({B * T, 4 * H}, r), randn({4 * H, H}, r, 0.3), randn({4 * H}, r)},
          [&](auto& v, Device d) {
            const int k = d == Device::cuda;
            return ag::lstm_scan(v[0], v[1], v[2], h0.to_device(d), c0.to_device(d), B, T, &last[k][0], &last[k][1]);
          },
          2e-5, "lstm_scan");
  EXPECT_LT(rel_err(last[1][0].cpu(), last[0][0]), 2e-5) << "lstm h_last";
  EXPECT_LT(rel_err(last[1][1].cpu(), last[0][1]), 2e-5) << "lstm c_last";
}

// TSLM and LSTM models train on the GPU as on the CPU: truncated BPTT with the state carried across
// batches, tied and untied heads, a few AdamW steps; then a checkpoint's evaluation forward agrees.
TEST(Cuda, RecurrentTrainingFollowsTheCpu) {
  NEED_GPU();
  for (const char* arch : {"tslm", "lstm"}) {
    ModelConfig c;
    c.arch = arch, c.vocab_size = 47, c.d_model = 32, c.n_layers = 2, c.max_seq_len = 64, c.tie_embeddings = std::string(arch) == "tslm";
    c.init_std = 0.1;
    const int64_t B = 4, T = 9, steps = 6;
    std::vector<double> loss[2], gnorm[2];
    Tensor eval_logits[2];
    for (Device d : {Device::cpu, Device::cuda}) {
      auto m = make_model(c, 17);
      m->to_device(d);
      m->carry_state(true);
      AdamW opt(collect_params(*m), AdamWConfig{});
      Rng data(4);
      for (int64_t s = 0; s < steps; ++s) {
        Tensor x = Tensor::empty({B * T}, DType::i32), y = Tensor::empty({B * T}, DType::i32);
        // inputs from six tokens, so that six AdamW steps visibly learn the map (an untied LSTM
        // over all 47 does not move in six steps, on either device)
        for (int64_t i = 0; i < B * T; ++i) x.data<int32_t>()[i] = int32_t(data.uniform() * 6), y.data<int32_t>()[i] = (x.data<int32_t>()[i] * 5 + 1) % 47;
        ag::Var l = ag::cross_entropy(m->forward(x, B, T), y);
        loss[d == Device::cuda].push_back(l->value.item());
        ag::backward(l);
        gnorm[d == Device::cuda].push_back(clip_grad_norm(opt.params(), 1.0));
        opt.step(1e-2);
        zero_grads(opt.params());
      }
      ag::NoGrad ng;
      Tensor x = Tensor::empty({2 * 20}, DType::i32);
      for (int64_t i = 0; i < x.numel(); ++i) x.data<int32_t>()[i] = int32_t(i * 7 % 47);
      eval_logits[d == Device::cuda] = m->forward(x, 2, 20)->value.cpu();
    }
    for (int64_t s = 0; s < steps; ++s) {
      EXPECT_NEAR(loss[1][size_t(s)], loss[0][size_t(s)], 2e-4 * loss[0][size_t(s)]) << arch << " step " << s;
      EXPECT_NEAR(gnorm[1][size_t(s)], gnorm[0][size_t(s)], 1e-3 * gnorm[0][size_t(s)]) << arch << " step " << s;
    }
    EXPECT_LT(loss[1].back(), loss[1].front() - 0.05) << arch;  // it learns
    EXPECT_LT(rel_err(eval_logits[1], eval_logits[0]), 1e-4) << arch << " evaluation forward";
  }
}

TEST(Cuda, OutOfMemoryIsOneLine) {
  NEED_GPU();
  try {
    Tensor t = Tensor::empty({int64_t(1) << 42}, DType::f32, Device::cuda);  // 16 TiB
    FAIL() << "allocated 16 TiB";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("out of GPU memory"), std::string::npos) << e.what();
  }
  Tensor ok = Tensor::zeros({1024}, DType::f32, Device::cuda);  // and the device still works
  EXPECT_EQ(ok.cpu().at(1023), 0.0);
}

TEST(Cuda, UnsupportedModelsRefuseToMove) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 16, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.d_ff = 24, c.attention = "tensorcoder";
  auto m = make_model(c, 1);
  EXPECT_THROW(m->to_device(Device::cuda), std::invalid_argument);
  EXPECT_EQ(m->device(), Device::cpu);
}

// The GPU decoder (infer/gpu_decoder.h) against the CPU's infer: a prompt of 250 tokens (prefill
// passes of 64, the cache's 256-key chunks crossed), then 20 decoded tokens, the CPU's greedy choice
// fed to both; logits compared at every step, for each family of slots the decoder reads.
namespace {
// Feeds `prompt`, then `steps` greedy tokens of the CPU model to both models; their logits must stay
// within `tol` (norm-wise relative) at every step.
void follow(LanguageModel& cpu, LanguageModel& gpu, const std::vector<int32_t>& prompt, int steps, int64_t capacity, double tol,
            const std::string& what) {
  const int64_t V = cpu.config().vocab_size;
  InferState sc = cpu.make_state(capacity), sg = gpu.make_state(capacity);
  auto cmp = [&](const float* a, const float* b, int step) {
    Tensor ta = Tensor::from(std::vector<float>(a, a + V), {V}), tb = Tensor::from(std::vector<float>(b, b + V), {V});
    EXPECT_LT(rel_err(tb, ta), tol) << what << ", step " << step;
  };
  const float* lc = cpu.infer(sc, prompt);
  cmp(lc, gpu.infer(sg, prompt), -1);
  for (int s = 0; s < steps; ++s) {
    const int32_t one[1] = {int32_t(std::max_element(lc, lc + V) - lc)};
    lc = cpu.infer(sc, one);
    cmp(lc, gpu.infer(sg, one), s);
  }
  EXPECT_EQ(sg.next_pos, int64_t(prompt.size()) + steps) << what;
}

void decoder_follows_cpu(const ModelConfig& c, const char* what, const std::string& weights = "f32", double tol = 2e-5,
                         size_t prompt_len = 250) {
  auto cpu = make_model(c, 17);
  if (weights == "bf16") cpu->pack("bf16");
  auto gpu = gpu_decoder(make_model(c, 17), weights);
  Rng r(3);
  std::vector<int32_t> prompt(prompt_len);
  for (auto& t : prompt) t = int32_t(r.uniform() * double(c.vocab_size));
  follow(*cpu, *gpu, prompt, 20, 300, tol, what);
}

// Each method's quantized model (calibrated on random ids) decodes on the GPU as on the CPU: a
// prompt of prompt_len tokens, then 10 greedy steps, logits within 5e-3 (a code may round the other
// way where the two devices' activations differ in their last bits).
void quantized_models_follow(const ModelConfig& c, uint64_t seed, size_t prompt_len,
                             const std::vector<std::pair<std::string, nlohmann::json>>& methods) {
  Rng r(seed);
  std::vector<int32_t> calib(4096), prompt(prompt_len);
  for (auto& t : calib) t = int32_t(r.uniform() * double(c.vocab_size));
  for (auto& t : prompt) t = int32_t(r.uniform() * double(c.vocab_size));
  for (const auto& [method, opts] : methods) {
    auto cpu = make_model(c, 17), host = make_model(c, 17);
    const quant::Calibration cal = quant::calibrate(*cpu, calib, 8, 64, "random ids");
    quant::quantize_model(*cpu, method, opts, &cal);
    quant::quantize_model(*host, method, opts, &cal);
    auto gpu = gpu_decoder(std::move(host), "f32");
    follow(*cpu, *gpu, prompt, 10, 128, 5e-3, method + " " + opts.dump());
  }
}
}  // namespace

TEST(Cuda, DecoderFollowsTheCpu) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 301, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96, c.max_seq_len = 512;
  decoder_follows_cpu(c, "llama (rope, GQA, swiglu)");
  decoder_follows_cpu(c, "llama, bf16 weights", "bf16", 2e-2);
  // 204 = 3 passes of 64 and one of 12: a short pass through the GEMVs' 8-token form (8 tokens, then 4).
  decoder_follows_cpu(c, "llama, a 12-token pass", "f32", 2e-5, 204);
  ModelConfig b = c;
  b.mlp_bias = true, b.attn_bias = true;
  decoder_follows_cpu(b, "llama with biases, 12-token pass", "f32", 2e-5, 204);
  ModelConfig g = c;  // Gemma-like: interleaved rotary with YaRN, (1 + w) norms, GELU-gated MLP, embeddings scaled, biases
  g.rope_interleaved = true, g.norm = "rmsnorm_1p", g.mlp = "geglu_tanh", g.embed_scale = 8.0, g.attn_bias = true, g.mlp_bias = true;
  g.position_opt = {{"scaling", "yarn"}, {"scale", 4.0}};
  decoder_follows_cpu(g, "interleaved rope + yarn, rmsnorm_1p, geglu, biases");
  ModelConfig p = c;  // GPT-2: learned positions, LayerNorm, GELU, tied embeddings, MHA
  p.position = "learned", p.norm = "layernorm", p.mlp = "gelu_tanh", p.tie_embeddings = true, p.n_kv_heads = 4, p.attn_bias = true;
  decoder_follows_cpu(p, "gpt-2 shape");
  ModelConfig a = c;
  a.position = "alibi";
  decoder_follows_cpu(a, "alibi");
  ModelConfig d = c;
  d.position = "3d-rpe", d.d_model = 96, d.n_heads = 3, d.n_kv_heads = 1;  // head dim 32
  decoder_follows_cpu(d, "3d-rpe, head dim 32, one KV head");
}

// What a user runs: greedy generation through the Generator (chunked prefill, graph replay) gives
// the CPU's tokens; a chat's prefix reuse (truncate, feed the rest) gives the same logits as a fresh
// state; scoring (all_logits) gives every position's logits; the refusals are one line each.
TEST(Cuda, DecoderGeneratesTheCpuTokens) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 301, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96, c.max_seq_len = 512;
  auto cpu = make_model(c, 5);
  auto gpu = gpu_decoder(make_model(c, 5), "f32");
  std::vector<int32_t> prompt = {1, 5, 9, 14, 200, 33, 7};
  GenerateConfig gc;
  gc.max_new_tokens = 60;
  SamplerConfig greedy{0.0};
  Sampler s1(greedy), s2(greedy);
  EXPECT_EQ(generate(*gpu, prompt, gc, s2), generate(*cpu, prompt, gc, s1));

  auto logits = [&](InferState& st, std::span<const int32_t> x) {
    const float* l = gpu->infer(st, x);
    return Tensor::from(std::vector<float>(l, l + c.vocab_size), {c.vocab_size});
  };
  std::vector<int32_t> ids(90);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 301);
  const std::span<const int32_t> all(ids);
  InferState a = gpu->make_state(128);
  const Tensor whole = logits(a, all);
  ASSERT_TRUE(a.truncate(50));
  EXPECT_LT(rel_err(logits(a, all.subspan(50)), whole), 1e-6) << "prefix reuse";
  InferState b = gpu->make_state(128), one = gpu->make_state(128);
  b.all_logits = true;
  gpu->infer(b, all);
  ASSERT_EQ(b.logits.size(), size_t(90 * c.vocab_size));
  const Tensor row40 = logits(one, all.subspan(0, 41));
  EXPECT_LT(rel_err(Tensor::from(std::vector<float>(b.logits.begin() + 40 * c.vocab_size, b.logits.begin() + 41 * c.vocab_size), {c.vocab_size}), row40), 1e-6);
  EXPECT_LT(rel_err(Tensor::from(std::vector<float>(b.logits.end() - c.vocab_size, b.logits.end()), {c.vocab_size}), whole), 1e-6);

  InferState full = gpu->make_state(4);
  EXPECT_THROW(gpu->infer(full, all.subspan(0, 5)), std::length_error);
  const int32_t bad[1] = {301};
  EXPECT_THROW(gpu->infer(full, bad), std::out_of_range);
  full.on_attention = [](const nn::AttnEvent&) {};
  EXPECT_THROW(gpu->infer(full, all.subspan(0, 1)), std::invalid_argument);
  EXPECT_THROW(gpu_decoder(make_model(c, 5), "int8"), std::invalid_argument);
  ModelConfig t = c;
  t.attention = "tensorcoder";
  EXPECT_THROW(gpu_decoder(make_model(t, 5), "f32"), std::invalid_argument);
}

// cuBLASLt's tensor-core GEMMs of codes: INT8 exact against integer sums, FP8 E4M3 against the
// decoded codes' products in double (the CPU's E4M3 decoder: quant/numfmt.h), per-tensor scales.
TEST(Cuda, Int8AndFp8Gemms) {
  NEED_GPU();
  const int M = 48, N = 80, K = 160;
  Rng r(8);
  Tensor a = Tensor::empty({M, K}, DType::i8), b = Tensor::empty({N, K}, DType::i8);
  int8_t *pa = static_cast<int8_t*>(a.raw()), *pb = static_cast<int8_t*>(b.raw());
  for (int i = 0; i < M * K; ++i) pa[i] = int8_t(int(r.uniform() * 255) - 127);
  for (int i = 0; i < N * K; ++i) pb[i] = int8_t(int(r.uniform() * 255) - 127);
  Tensor c = Tensor::empty({M, N}, DType::i32, Device::cuda);
  cuda::gemm_i8(M, N, K, static_cast<const int8_t*>(a.to_device(Device::cuda).raw()), static_cast<const int8_t*>(b.to_device(Device::cuda).raw()),
                c.data<int32_t>());
  const Tensor ch = c.cpu();
  int bad = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      int64_t s = 0;
      for (int k = 0; k < K; ++k) s += int64_t(pa[i * K + k]) * pb[j * K + k];
      bad += ch.data<int32_t>()[i * N + j] != s;
    }
  EXPECT_EQ(bad, 0) << "INT8 sums that differ";

  // FP8: every code but the two NaNs, decoded on the CPU.
  Tensor fa = Tensor::empty({M, K}, DType::u8), fb = Tensor::empty({N, K}, DType::u8);
  uint8_t *qa = static_cast<uint8_t*>(fa.raw()), *qb = static_cast<uint8_t*>(fb.raw());
  auto code = [&] {
    uint8_t v;
    do v = uint8_t(r.uniform() * 256); while ((v & 0x7f) == 0x7f);
    return v;
  };
  for (int i = 0; i < M * K; ++i) qa[i] = code();
  for (int i = 0; i < N * K; ++i) qb[i] = code();
  const Tensor sa = Tensor::from(std::vector<float>{0.5f}, {1}).to_device(Device::cuda), sb = Tensor::from(std::vector<float>{3.f}, {1}).to_device(Device::cuda);
  Tensor want = Tensor::empty({M, N}, DType::f64);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += double(quant::kE4M3.decode(qa[i * K + k])) * quant::kE4M3.decode(qb[j * K + k]);
      want.data<double>()[i * N + j] = 1.5 * s;
    }
  const Tensor da = fa.to_device(Device::cuda), db = fb.to_device(Device::cuda);
  Tensor f32 = Tensor::empty({M, N}, DType::f32, Device::cuda), bf = Tensor::empty({M, N}, DType::bf16, Device::cuda);
  cuda::gemm_fp8(M, N, K, static_cast<const uint8_t*>(da.raw()), static_cast<const uint8_t*>(db.raw()), sa.data<float>(), sb.data<float>(),
                 f32.raw(), false);
  cuda::gemm_fp8(M, N, K, static_cast<const uint8_t*>(da.raw()), static_cast<const uint8_t*>(db.raw()), sa.data<float>(), sb.data<float>(),
                 bf.raw(), true);
  EXPECT_LT(rel_err(f32.cpu().to(DType::f64), want), 1e-3);  // Hopper accumulates FP8 products in reduced precision between promotions
  EXPECT_LT(rel_err(bf.cpu().to(DType::f64), want), 4e-3);
  EXPECT_THROW(cuda::gemm_i8(40, 48, 64, nullptr, nullptr, nullptr), std::invalid_argument);
}

// W8A8 on the GPU against the CPU's Int8Format (the kernel every INT8 method runs): the same codes
// from its stored form, activations quantized on the device by the same rules, for per-token INT8,
// SmoothQuant's division and CrossQuant's t^alpha c^(1-alpha) steps; M not a multiple of 16.
TEST(Cuda, W8A8LinearFollowsTheCpuInt8Format) {
  NEED_GPU();
  const int64_t M = 37, N = 96, K = 160;
  Rng r(12);
  Tensor w = randn({N, K}, r, 0.05), x = randn({M, K}, r);
  for (int64_t t = 0; t < M; ++t) x.data<float>()[t * K + 7] *= 20.f;  // an outlier channel
  std::vector<float> col(static_cast<size_t>(K));
  for (auto& v : col) v = float(0.5 + r.uniform());
  for (int mode = 0; mode < 3; ++mode) {
    quant::Int8Format::Act act;
    if (mode == 1) act.smooth = col;
    if (mode == 2) act.cross = true, act.alpha = 0.45, act.cw = col;
    quant::Int8Format f(w, act, std::make_shared<quant::LayerReport>(), "w");
    std::vector<float> want(static_cast<size_t>(M * N));
    f.matmul(x.data<float>(), M, want.data());
    std::vector<std::pair<std::string, Tensor>> parts;
    nlohmann::json meta;
    ASSERT_TRUE(f.store("", parts, meta));
    const Tensor q = parts[0].second.to_device(Device::cuda), sw = parts[1].second.to_device(Device::cuda);
    const Tensor cv = Tensor::from(col, {K}).to_device(Device::cuda), xd = x.to_device(Device::cuda);
    const int64_t Mp = cuda::i8_pad(M);
    Tensor y = Tensor::empty({M, N}, DType::f32, Device::cuda), xq = Tensor::empty({Mp, K}, DType::i8, Device::cuda);
    Tensor sx = Tensor::empty({Mp}, DType::f32, Device::cuda), acc = Tensor::empty({Mp, N}, DType::i32, Device::cuda);
    cuda::linear_i8(y.data<float>(), xd.data<float>(), static_cast<const int8_t*>(q.raw()), sw.data<float>(), M, N, K,
                    mode ? cv.data<float>() : nullptr, mode, act.alpha, static_cast<int8_t*>(xq.raw()), sx.data<float>(), acc.data<int32_t>());
    const Tensor got = y.cpu();
    int64_t differ = 0;
    for (int64_t i = 0; i < M * N; ++i) differ += got.data<float>()[i] != want[size_t(i)];
    EXPECT_LT(rel_err(got, Tensor::from(want, {M, N})), 1e-6) << "mode " << mode;
    EXPECT_EQ(differ, 0) << "mode " << mode << ": outputs not bit-identical to the CPU's";
  }
}

// A model quantized to W8A8 (per-token INT8, SmoothQuant folded into the norms and unfolded,
// CrossQuant static) decodes on the GPU as on the CPU: every Linear through the INT8 GEMM, d_ff 92
// (the GEMM's padding to 16), the head quantized too.
TEST(Cuda, DecoderRunsW8A8Models) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 301, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 92, c.max_seq_len = 512;
  quantized_models_follow(c, 4, 100,
                          {{"rtn", {{"w", "int8"}, {"a", "int8"}, {"head", true}}},
                           {"smoothquant", {{"alpha", 0.5}}},
                           {"smoothquant", {{"alpha", 0.5}, {"fold", "none"}}},
                           {"crossquant", {{"alpha", 0.45}}}});
  auto wo = make_model(c, 17);
  quant::quantize_model(*wo, "rtn", {{"w", "int4"}, {"a", "none"}}, nullptr);
  EXPECT_THROW(gpu_decoder(std::move(wo), "f32"), std::invalid_argument);  // weight-only: not a GPU format
}

// NVFP4 W4A4 on the GPU (linear_nvfp4) against the CPU's Nvfp4Format on the same input: plain
// (K = 150: a short last block, and padding to 32), and ARCQuant's channel order with 32 residual
// channels in f32 and bf16, for one token (decoding), 37 (five groups of 8, one tensor scale) and 230
// (enough activations that their absmax goes through partial maxima); the calls of 16 tokens or more
// also through the tensor-core path (bf16 values code x scale, exact, one GEMM).
// The codes and scales are the CPU's bit for bit and the block sums exact integers, so what differs
// is the order of the float sums: a single code rounded the other way would cost far more than 1e-6.
TEST(Cuda, Nvfp4LinearFollowsTheCpuFormat) {
  NEED_GPU();
  struct Case {
    int64_t K, ke;
    bool perm, bf16;
  };
  for (const Case cs : {Case{150, 0, false, false}, Case{160, 0, true, false}, Case{160, 32, true, false}, Case{160, 32, true, true}}) {
    const int64_t N = 72, K = cs.K;
    Rng r(21);
    Tensor w = randn({N, K}, r, 0.05), x = randn({230, K}, r);
    for (int64_t t = 0; t < 230; ++t) x.data<float>()[t * K + 11] *= 30.f, x.data<float>()[t * K + 3] *= 8.f;  // outlier channels
    std::vector<int64_t> perm;
    if (cs.perm) {
      perm.resize(size_t(K));
      std::iota(perm.begin(), perm.end(), 0);
      std::swap(perm[11], perm[size_t(K - 1)]), std::swap(perm[3], perm[size_t(K - 20)]), std::swap(perm[0], perm[size_t(K / 2)]);
    }
    float wmax = 0;
    for (int64_t i = 0; i < w.numel(); ++i) wmax = std::max(wmax, std::fabs(w.data<float>()[i]));
    quant::Nvfp4Format f(w, perm, cs.ke, wmax, cs.bf16, std::make_shared<quant::LayerReport>(), "w");
    std::vector<std::pair<std::string, Tensor>> parts;
    nlohmann::json meta;
    ASSERT_TRUE(f.store("", parts, meta));
    std::map<std::string, Tensor> dev;
    for (auto& [k, t] : parts) dev[k] = t.to_device(Device::cuda);
    const int64_t Kp = cuda::nvfp4_pad(K + cs.ke);
    const Tensor stw = Tensor::from(std::vector<float>(size_t(N), meta.at("tensor_scale").get<float>()), {N}).to_device(Device::cuda);
    for (int64_t M : {int64_t(1), int64_t(37), int64_t(230)}) {  // 230 x 160: the absmax through partial maxima first
      const std::string what = "K " + std::to_string(K) + " ke " + std::to_string(cs.ke) + (cs.perm ? " perm" : "") +
                               (cs.bf16 ? " bf16" : "") + " M " + std::to_string(M);
      std::vector<float> want(static_cast<size_t>(M * N));
      f.matmul(x.data<float>(), M, want.data());
      const Tensor xd = x.to_device(Device::cuda);
      Tensor y = Tensor::empty({M, N}, DType::f32, Device::cuda), xq = Tensor::empty({M, Kp}, DType::i8, Device::cuda);
      Tensor xs = Tensor::empty({M, Kp / 16}, DType::f32, Device::cuda), amax = Tensor::empty({cuda::kNvfp4AmaxFloats}, DType::f32, Device::cuda);
      cuda::linear_nvfp4(y.data<float>(), xd.data<float>(), static_cast<const uint8_t*>(dev["codes"].raw()),
                         static_cast<const uint8_t*>(dev["scales"].raw()), stw.data<float>(), M, N, K, cs.ke,
                         cs.perm ? dev["perm"].data<int32_t>() : nullptr, cs.bf16, static_cast<int8_t*>(xq.raw()), xs.data<float>(),
                         amax.data<float>());
      EXPECT_LT(rel_err(y.cpu(), Tensor::from(want, {M, N})), 1e-6) << what;
      if (M >= cuda::kNvfp4GemmTokens) {  // the tensor-core path: the same codes and scales, bf16 values, one GEMM
        Tensor gw = Tensor::empty({N, Kp}, DType::bf16, Device::cuda), gx = Tensor::empty({M, Kp}, DType::bf16, Device::cuda);
        Tensor gacc = Tensor::empty({M, N}, DType::f32, Device::cuda), y3 = Tensor::empty({M, N}, DType::f32, Device::cuda);
        cuda::linear_nvfp4(y3.data<float>(), xd.data<float>(), static_cast<const uint8_t*>(dev["codes"].raw()),
                           static_cast<const uint8_t*>(dev["scales"].raw()), stw.data<float>(), M, N, K, cs.ke,
                           cs.perm ? dev["perm"].data<int32_t>() : nullptr, cs.bf16, static_cast<int8_t*>(xq.raw()), xs.data<float>(),
                           amax.data<float>(), 0, false, {static_cast<uint16_t*>(gw.raw()), static_cast<uint16_t*>(gx.raw()), gacc.data<float>()});
        EXPECT_LT(rel_err(y3.cpu(), Tensor::from(want, {M, N})), 1e-6) << what << " (tensor cores)";
      }
      // accumulate into rows ldy apart
      Tensor y2 = Tensor::zeros({M, 2 * N}, DType::f32, Device::cuda);
      for (int rep = 0; rep < 2; ++rep)
        cuda::linear_nvfp4(y2.data<float>() + N, xd.data<float>(), static_cast<const uint8_t*>(dev["codes"].raw()),
                           static_cast<const uint8_t*>(dev["scales"].raw()), stw.data<float>(), M, N, K, cs.ke,
                           cs.perm ? dev["perm"].data<int32_t>() : nullptr, cs.bf16, static_cast<int8_t*>(xq.raw()), xs.data<float>(),
                           amax.data<float>(), 2 * N, true);
      const Tensor h2 = y2.cpu();
      double e = 0, n2 = 0;
      for (int64_t t = 0; t < M; ++t)
        for (int64_t n = 0; n < N; ++n) {
          const double a = h2.data<float>()[t * 2 * N + N + n], b = 2.0 * want[size_t(t * N + n)];
          e += (a - b) * (a - b), n2 += b * b;
          EXPECT_EQ(h2.data<float>()[t * 2 * N + n], 0.f) << what;
        }
      EXPECT_LT(std::sqrt(e / n2), 1e-6) << what << " (accumulated, ldy 2N)";
    }
  }
}

// A model quantized to NVFP4 W4A4 (RTN) and to ARCQuant (fixed KE 32, f32 and bf16 residuals)
// decodes on the GPU as on the CPU. The prompt fits one prefill pass, so both devices quantize it
// under one activation tensor scale.
TEST(Cuda, DecoderRunsNvfp4Models) {
  NEED_GPU();
  ModelConfig c;
  c.vocab_size = 301, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96, c.max_seq_len = 512;
  quantized_models_follow(c, 5, 60,
                          {{"rtn", {{"w", "nvfp4"}, {"a", "nvfp4"}}},
                           {"arcquant", {{"ke", 32}}},
                           {"arcquant", {{"ke", 32}, {"residual", "bf16"}, {"w_scale", "signed_max"}}}});
}
