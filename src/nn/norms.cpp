// Norm variants: rmsnorm, layernorm.
#include "autograd/ops.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct RmsNorm : Norm {
  Var w;
  double eps;
  RmsNorm(int64_t d, const ModelConfig& c, Init& init) : w(init.constant({d}, 1.0)), eps(c.norm_eps) {}
  Var forward(const Var& x) override { return ag::rmsnorm(x, w, eps); }
  void visit(const std::string& p, const ParamVisitor& f) override { f(p + ".weight", w, ParamKind::norm); }
};

struct LayerNorm : Norm {
  Var w, b;
  double eps;
  LayerNorm(int64_t d, const ModelConfig& c, Init& init)
      : w(init.constant({d}, 1.0)), b(init.constant({d}, 0.0)), eps(c.norm_eps) {}
  Var forward(const Var& x) override { return ag::layernorm(x, w, b, eps); }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".weight", w, ParamKind::norm);
    f(p + ".bias", b, ParamKind::bias);
  }
};

const bool reg_rms = NormRegistry::get().add("rmsnorm", [](int64_t d, const ModelConfig& c, Init& i) {
  return std::make_unique<RmsNorm>(d, c, i);
});
const bool reg_ln = NormRegistry::get().add("layernorm", [](int64_t d, const ModelConfig& c, Init& i) {
  return std::make_unique<LayerNorm>(d, c, i);
});

}  // namespace
}  // namespace clm::nn
