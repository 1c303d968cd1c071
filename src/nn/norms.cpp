// Norm variants: rmsnorm, layernorm.
#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

// offset 0: y = x/rms(x) * w (Llama); offset 1: y = x/rms(x) * (1 + w) (Gemma, w initialised to 0).
struct RmsNorm : Norm {
  Var w;
  double eps, offset;
  RmsNorm(int64_t d, const ModelConfig& c, Init& init, double off)
      : w(init.constant({d}, 1.0 - off)), eps(c.norm_eps), offset(off) {}
  Var forward(const Var& x) override { return ag::rmsnorm(x, w, eps, offset); }
  void infer(const float* x, float* y, int64_t T) const override {
    const int64_t D = w->value.numel();
    for (int64_t t = 0; t < T; ++t) {  // one row at a time: rstd needs no buffer
      float rstd;
      kernels::rmsnorm_forward<float>(y + t * D, &rstd, x + t * D, w->value.data<float>(), 1, D, float(eps), float(offset));
    }
  }
  void visit(const std::string& p, const ParamVisitor& f) override { f(p + ".weight", w, ParamKind::norm); }
  bool divide_output(const std::vector<float>& div) override {  // (w' + offset) = (w + offset) / div
    if (int64_t(div.size()) != w->value.numel() || w->value.dtype() != DType::f32 || w->value.is_cuda()) return false;
    float* p = w->value.data<float>();
    for (size_t j = 0; j < div.size(); ++j) p[j] = float((double(p[j]) + offset) / double(div[j]) - offset);
    return true;
  }
};

struct LayerNorm : Norm {
  Var w, b;
  double eps;
  LayerNorm(int64_t d, const ModelConfig& c, Init& init)
      : w(init.constant({d}, 1.0)), b(init.constant({d}, 0.0)), eps(c.norm_eps) {}
  Var forward(const Var& x) override { return ag::layernorm(x, w, b, eps); }
  void infer(const float* x, float* y, int64_t T) const override {
    const int64_t D = w->value.numel();
    for (int64_t t = 0; t < T; ++t) {
      float mean, rstd;
      kernels::layernorm_forward<float>(y + t * D, &mean, &rstd, x + t * D, w->value.data<float>(), b->value.data<float>(),
                                        1, D, float(eps));
    }
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".weight", w, ParamKind::norm);
    f(p + ".bias", b, ParamKind::bias);
  }
  bool divide_output(const std::vector<float>& div) override {
    if (int64_t(div.size()) != w->value.numel() || w->value.dtype() != DType::f32 || w->value.is_cuda()) return false;
    float *pw = w->value.data<float>(), *pb = b->value.data<float>();
    for (size_t j = 0; j < div.size(); ++j) pw[j] /= div[j], pb[j] /= div[j];
    return true;
  }
};

const bool reg_rms = NormRegistry::get().add("rmsnorm", [](int64_t d, const ModelConfig& c, Init& i) {
  return std::make_unique<RmsNorm>(d, c, i, 0.0);
});
const bool reg_rms_1p = NormRegistry::get().add("rmsnorm_1p", [](int64_t d, const ModelConfig& c, Init& i) {
  return std::make_unique<RmsNorm>(d, c, i, 1.0);
});
const bool reg_ln = NormRegistry::get().add("layernorm", [](int64_t d, const ModelConfig& c, Init& i) {
  return std::make_unique<LayerNorm>(d, c, i);
});

}  // namespace
}  // namespace clm::nn
