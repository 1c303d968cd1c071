// MLP variants: swiglu (gate/up/down, Llama), gelu and gelu_tanh (up/down, GPT).
#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

// Gated MLPs: down(act(gate(x)) * up(x)); act = SiLU (swiglu, fused op) or GELU-tanh (geglu_tanh, Gemma).
struct GatedMlp : Mlp {
  Linear gate, up, down;
  bool gelu;
  GatedMlp(const ModelConfig& c, Init& init, bool use_gelu)
      : gate(c.d_model, c.d_ff, c.mlp_bias, init, c.init_std),
        up(c.d_model, c.d_ff, c.mlp_bias, init, c.init_std),
        down(c.d_ff, c.d_model, c.mlp_bias, init, c.init_std),
        gelu(use_gelu) {}
  Var forward(const Var& x) override {
    return down(gelu ? ag::mul(ag::gelu(gate(x), true), up(x)) : ag::swiglu(gate(x), up(x)));
  }
  void infer(const float* x, float* y, const InferCtx& ctx) override {
    const int64_t F = gate.out(), n = ctx.T * F;
    float *g = ctx.ws->take(size_t(n)), *u = ctx.ws->take(size_t(n));
    gate.infer(x, ctx.T, g);
    up.infer(x, ctx.T, u);
    if (gelu) {
      kernels::gelu_forward<float>(g, g, n, true);
      for (int64_t i = 0; i < n; ++i) g[i] *= u[i];
    } else {
      kernels::swiglu_forward<float>(g, g, u, n);
    }
    down.infer(g, ctx.T, y);
  }
  void linears(const std::string& p, const LinearVisitor& f) override {
    f(p + ".gate_proj", gate), f(p + ".up_proj", up), f(p + ".down_proj", down);
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    gate.visit(p + ".gate_proj", f);
    up.visit(p + ".up_proj", f);
    down.visit(p + ".down_proj", f);
  }
};

struct GeluMlp : Mlp {
  Linear up, down;
  bool tanh_approx;
  GeluMlp(const ModelConfig& c, Init& init, bool tanh)
      : up(c.d_model, c.d_ff, c.mlp_bias, init, c.init_std),
        down(c.d_ff, c.d_model, c.mlp_bias, init, c.init_std),
        tanh_approx(tanh) {}
  Var forward(const Var& x) override { return down(ag::gelu(up(x), tanh_approx)); }
  void infer(const float* x, float* y, const InferCtx& ctx) override {
    const int64_t n = ctx.T * up.out();
    float* h = ctx.ws->take(size_t(n));
    up.infer(x, ctx.T, h);
    kernels::gelu_forward<float>(h, h, n, tanh_approx);
    down.infer(h, ctx.T, y);
  }
  void linears(const std::string& p, const LinearVisitor& f) override { f(p + ".up_proj", up), f(p + ".down_proj", down); }
  void visit(const std::string& p, const ParamVisitor& f) override {
    up.visit(p + ".up_proj", f);
    down.visit(p + ".down_proj", f);
  }
};

const bool reg_swiglu = MlpRegistry::get().add(
    "swiglu", [](const ModelConfig& c, Init& i) { return std::make_unique<GatedMlp>(c, i, false); });
const bool reg_geglu_tanh = MlpRegistry::get().add(
    "geglu_tanh", [](const ModelConfig& c, Init& i) { return std::make_unique<GatedMlp>(c, i, true); });
const bool reg_gelu = MlpRegistry::get().add(
    "gelu", [](const ModelConfig& c, Init& i) { return std::make_unique<GeluMlp>(c, i, false); });
const bool reg_gelu_tanh = MlpRegistry::get().add(
    "gelu_tanh", [](const ModelConfig& c, Init& i) { return std::make_unique<GeluMlp>(c, i, true); });

}  // namespace
}  // namespace clm::nn
