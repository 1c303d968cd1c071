// Position-encoding variants: rope, learned, none.
#include <cmath>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {

void rope_table(int64_t pos0, int64_t T, int64_t hd, double theta, DType dt, Tensor& cos, Tensor& sin) {
  const int64_t half = hd / 2;
  Tensor c = Tensor::empty({T, half}, DType::f64), s = Tensor::empty({T, half}, DType::f64);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      double a = double(pos0 + t) * std::pow(theta, -2.0 * double(i) / double(hd));
      c.data<double>()[t * half + i] = std::cos(a);
      s.data<double>()[t * half + i] = std::sin(a);
    }
  cos = c.to(dt);
  sin = s.to(dt);
}

namespace {

struct NoPosition : PositionEncoding {};

// Rotary: angle(p, i) = p * theta^(-2i/hd). The cos/sin table for the current positions is built
// once per forward and reused by every layer.
struct Rope : PositionEncoding {
  double theta;
  bool interleaved;
  int64_t hd;
  mutable Tensor cos_, sin_;
  mutable int64_t t_pos0 = -1, t_T = -1;
  mutable DType t_dtype = DType::f32;

  Rope(const ModelConfig& c) : theta(c.rope_theta), interleaved(c.rope_interleaved), hd(c.hd()) {}

  void table(const Ctx& ctx, DType dt) const {
    if (t_pos0 == ctx.pos0 && t_T == ctx.T && t_dtype == dt) return;
    rope_table(ctx.pos0, ctx.T, hd, theta, dt, cos_, sin_);
    t_pos0 = ctx.pos0, t_T = ctx.T, t_dtype = dt;
  }

  Var rotate(const Var& x, int64_t n_heads, const Ctx& ctx) override {
    table(ctx, x->value.dtype());
    return ag::rotary(x, cos_, sin_, ctx.B, ctx.T, n_heads, hd, interleaved);
  }

  // Inference: rows of one f32 table indexed by absolute position, grown by reserve().
  std::vector<float> icos_, isin_;
  void reserve(int64_t positions) override {
    const int64_t have = int64_t(icos_.size()) / (hd / 2);
    if (positions <= have) return;
    Tensor c, s;
    rope_table(have, positions - have, hd, theta, DType::f32, c, s);
    icos_.insert(icos_.end(), c.data<float>(), c.data<float>() + c.numel());
    isin_.insert(isin_.end(), s.data<float>(), s.data<float>() + s.numel());
  }
  void infer_rotate(float* x, int64_t n_heads, const InferCtx& ctx) override {
    const int64_t half = hd / 2, W = n_heads * hd;
    for (int64_t t = 0; t < ctx.T; ++t) {
      if (int64_t(ctx.pos[t]) * half >= int64_t(icos_.size())) reserve(ctx.pos[t] + 1);
      const float *c = icos_.data() + ctx.pos[t] * half, *s = isin_.data() + ctx.pos[t] * half;
      kernels::rotary_forward<float>(x + t * W, x + t * W, c, s, 1, 1, n_heads, hd, interleaved);  // in place: pairs read before written
    }
  }
};

struct LearnedPosition : PositionEncoding {
  Var table;
  LearnedPosition(const ModelConfig& c, Init& init) : table(init.normal({c.max_seq_len, c.d_model}, c.init_std)) {}
  Var embed(const Var& x, const Ctx& ctx) override { return ag::add_rows(x, table, ctx.pos0, ctx.T); }
  void infer_embed(float* x, const InferCtx& ctx) override {
    const int64_t P = table->value.dim(0), D = table->value.dim(1);
    for (int64_t t = 0; t < ctx.T; ++t) {
      if (ctx.pos[t] >= P) throw std::length_error("position " + std::to_string(ctx.pos[t]) + " beyond the learned table of " + std::to_string(P));
      kernels::vec().axpy(1.0f, table->value.data<float>() + ctx.pos[t] * D, x + t * D, D);
    }
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".weight", table, ParamKind::embedding);
  }
};

const bool reg_none = PositionRegistry::get().add(
    "none", [](const ModelConfig&, Init&) { return std::make_unique<NoPosition>(); });
const bool reg_rope = PositionRegistry::get().add(
    "rope", [](const ModelConfig& c, Init&) { return std::make_unique<Rope>(c); });
const bool reg_learned = PositionRegistry::get().add(
    "learned", [](const ModelConfig& c, Init& i) { return std::make_unique<LearnedPosition>(c, i); });

}  // namespace
}  // namespace clm::nn
