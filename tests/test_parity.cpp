// Parity with PyTorch (fixtures written by tools/make_fixtures.py): logits, loss, every gradient,
// in float32 and float64, and the loss curve of 10 AdamW steps with warmup, cosine and clipping.
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "common.h"
#include "formats/safetensors.h"
#include "models/lm.h"
#include "train/optim.h"

using namespace clm;

namespace {

struct Fixture {
  SafeTensors st;
  ModelConfig cfg;
  nlohmann::json opt;
  int64_t B, T;
};

Fixture load(const std::string& name) {
  Fixture f;
  f.st = load_safetensors(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/" + name + ".safetensors");
  f.cfg = nlohmann::json::parse(f.st.metadata.at("config")).get<ModelConfig>();
  f.opt = nlohmann::json::parse(f.st.metadata.at("opt"));
  f.B = std::stoll(f.st.metadata.at("B"));
  f.T = std::stoll(f.st.metadata.at("T"));
  return f;
}

// A vision fixture's images go to the model before each forward (which consumes them).
void give_images(const Fixture& f, LanguageModel& m) {
  for (const auto& t : f.st.tensors)
    if (t.first == "images") m.set_images(t.second);
}

std::unique_ptr<LanguageModel> build(const Fixture& f, DType dt) {
  auto m = make_model(f.cfg, 0, dt);
  int n = 0;
  m->visit([&](const std::string& name, nn::Var& v, nn::ParamKind) {
    const Tensor& t = f.st.get(name);
    ASSERT_EQ(t.shape(), v->value.shape()) << name;
    v->value.copy_(t);
    ++n;
  });
  EXPECT_GT(n, 5);
  return m;
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsLossAndEveryGradient) {
  Fixture f = load(GetParam());
  for (auto [dt, tag, tol] : {std::tuple{DType::f32, "f32", 1e-5}, std::tuple{DType::f64, "f64", 1e-10}}) {
    auto m = build(f, dt);
    give_images(f, *m);
    nn::Var logits = m->forward(f.st.get("ids"), f.B, f.T);
    EXPECT_LT(test::rel_err(logits->value, f.st.get(std::string(tag) + ".logits")), tol) << tag << " logits";
    nn::Var loss = ag::cross_entropy(logits, f.st.get("targets"));
    EXPECT_LT(test::rel_err(loss->value, f.st.get(std::string(tag) + ".loss")), tol) << tag << " loss";
    ag::backward(loss);
    int checked = 0;
    m->visit([&](const std::string& name, nn::Var& v, nn::ParamKind kind) {
      if (kind == nn::ParamKind::buffer) return;  // ids stored as floats (SEE units, hash buckets)
      ASSERT_TRUE(v->grad.defined()) << name;
      // floor 1e-2: a key bias has an exactly-zero true gradient (softmax ignores a per-query
      // constant), so both sides are rounding noise there.
      EXPECT_LT(test::rel_err(v->grad, f.st.get(std::string(tag) + ".grad." + name), 1e-2), tol) << tag << " grad " << name;
      ++checked;
    });
    EXPECT_EQ(checked, (int)std::count_if(f.st.tensors.begin(), f.st.tensors.end(), [&](auto& p) {
                return p.first.rfind(std::string(tag) + ".grad.", 0) == 0;
              }));
  }
}

TEST_P(Parity, TenAdamWStepsFollowPyTorch) {
  Fixture f = load(GetParam());
  auto m = build(f, DType::f32);
  auto params = collect_params(*m);
  AdamWConfig ac;
  ac.beta1 = f.opt["beta1"], ac.beta2 = f.opt["beta2"], ac.eps = f.opt["eps"], ac.weight_decay = f.opt["weight_decay"];
  AdamW opt(params, ac);
  const int64_t steps = f.opt["steps"];
  const Tensor& ref = f.st.get("adamw.losses");
  for (int64_t s = 0; s < steps; ++s) {
    give_images(f, *m);
    nn::Var loss = ag::cross_entropy(m->forward(f.st.get("ids"), f.B, f.T), f.st.get("targets"));
    EXPECT_NEAR(loss->value.item(), ref.at(s), 1e-4 * std::abs(ref.at(s))) << "step " << s;
    ag::backward(loss);
    clip_grad_norm(params, f.opt["clip"]);
    opt.step(lr_at(s, steps, f.opt["warmup"], f.opt["lr"], f.opt["min_lr_ratio"]));
    zero_grads(params);
  }
  EXPECT_LT(ref.at(steps - 1), 0.5 * ref.at(0));  // the fixture itself learns
  for (auto& p : params) {
    // Adam turns a zero gradient's rounding noise into full-size steps of random sign: parameters
    // whose exact (float64) gradient vanishes are not comparable after 10 steps.
    double g = 0;
    const Tensor& g64 = f.st.get("f64.grad." + p.name);
    for (int64_t i = 0; i < g64.numel(); ++i) g += g64.at(i) * g64.at(i);
    if (std::sqrt(g) < 1e-9) continue;
    EXPECT_LT(test::rel_err(p.var->value, f.st.get("adamw.final." + p.name)), 1e-4) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Values("llama_tiny", "gpt_tiny", "tensorcoder_tiny", "tensorcoder_cols_tiny", "multilinear_tiny", "multilinear_split_tiny",
                                           "rpe3d_tiny", "yarn_tiny", "alibi_tiny", "see_tiny", "see2_tiny", "see_gain_tiny", "tslm_tiny", "lstm_tiny",
                                           "factorized_tiny", "hashed_tiny", "vision_tiny"));

}  // namespace
