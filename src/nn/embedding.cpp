// Token-embedding variants: standard (one row per token).
#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct StandardEmbedding : TokenEmbedding {
  Var table;
  double scale;
  StandardEmbedding(const ModelConfig& c, Init& init)
      : table(init.normal({c.vocab_size, c.d_model}, c.init_std)), scale(c.embed_scale) {}
  Var forward(const Tensor& ids) override {
    Var e = ag::embedding(table, ids);
    return scale == 1.0 ? e : ag::scale(e, scale);
  }
  void infer(const int32_t* ids, int64_t T, float* out) const override {
    const int64_t V = table->value.dim(0), D = table->value.dim(1);
    kernels::embedding_forward<float>(out, table->value.data<float>(), ids, T, V, D);
    if (scale != 1.0) kernels::vec().scale(float(scale), out, T * D);
  }
  Var output_weight() override { return table; }
  void visit(const std::string& p, const ParamVisitor& f) override { f(p + ".weight", table, ParamKind::embedding); }
};

const bool reg_standard = EmbeddingRegistry::get().add(
    "standard", [](const ModelConfig& c, Init& i) { return std::make_unique<StandardEmbedding>(c, i); });

}  // namespace
}  // namespace clm::nn
