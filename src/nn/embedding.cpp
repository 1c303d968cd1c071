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
    const Tensor& tb = table->value;
    const int64_t V = tb.dim(0), D = tb.dim(1);
    if (tb.dtype() == DType::f32) {
      kernels::embedding_forward<float>(out, tb.data<float>(), ids, T, V, D);
    } else {  // a checkpoint's bf16 / f16 table, loaded for inference as it is on disk
      const uint16_t* h = static_cast<const uint16_t*>(tb.raw());
      for (int64_t t = 0; t < T; ++t) {
        if (ids[t] < 0 || ids[t] >= V) throw std::out_of_range("token id " + std::to_string(ids[t]) + " outside the vocabulary");
        for (int64_t i = 0; i < D; ++i) {
          const uint16_t v = h[int64_t(ids[t]) * D + i];
          out[t * D + i] = tb.dtype() == DType::bf16 ? bf16_to_f32(v) : f16_to_f32(v);
        }
      }
    }
    if (scale != 1.0) kernels::vec().scale(float(scale), out, T * D);
  }
  Var output_weight() override { return table; }
  void visit(const std::string& p, const ParamVisitor& f) override { f(p + ".weight", table, ParamKind::embedding); }
};

const bool reg_standard = EmbeddingRegistry::get().add(
    "standard", [](const ModelConfig& c, Init& i) { return std::make_unique<StandardEmbedding>(c, i); });

}  // namespace
}  // namespace clm::nn
