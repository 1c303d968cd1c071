// MLP variants: swiglu (gate/up/down, Llama), gelu and gelu_tanh (up/down, GPT).
#include "autograd/ops.h"
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
