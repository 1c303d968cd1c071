// TensorCoder dimension-wise attention (arXiv 2008.01547): per head, the d x d map
// S = f(Q^T K) replaces the N x N one, O = V (W . S)^T, at O(N d^2) instead of O(N^2 d). Causal:
// S_t sums the tokens up to t, a running d x d state per head when decoding (constant memory).
#include <cmath>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

// Decoding state: per query head the running sum P = sum_n q_n k_n^T [hd, hd], and the token count.
struct DimState final : LayerState {
  int64_t H, hd, count = 0;
  std::vector<float> P, scratch;
  DimState(int64_t H_, int64_t hd_) : H(H_), hd(hd_), P(size_t(H_ * hd_ * hd_)), scratch(size_t(hd_ * hd_)) {}
  size_t bytes() const override { return (P.size() + scratch.size()) * sizeof(float); }
  void reset() override { std::fill(P.begin(), P.end(), 0.0f), count = 0; }
  bool truncate(int64_t pos) override {  // a sum cannot forget single tokens
    if (pos >= count) return true;
    if (pos == 0) return reset(), true;
    return false;
  }
};

struct TensorCoderAttention : Attention {
  Linear q, k, v, o;
  Var w;  // [H, hd, hd], starts at ones (o = S v)
  int64_t H, Hkv, hd;
  bool causal, rows, by_count;
  TensorCoderAttention(const ModelConfig& c, Init& init, const Options& opt)
      : q(c.d_model, c.n_heads * c.hd(), c.attn_bias, init, c.init_std),
        k(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        v(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        o(c.n_heads * c.hd(), c.d_model, false, init, c.init_std),
        w(init.constant({c.n_heads, c.hd(), c.hd()}, 1.0)),
        H(c.n_heads),
        Hkv(c.n_kv_heads),
        hd(c.hd()),
        causal(opt.flag("causal")),
        rows(opt.str("f") == "softmax_rows"),
        by_count(opt.str("scale") == "sqrt_n") {
    if (hd > 1024) throw std::invalid_argument("attention 'tensorcoder': head dim " + std::to_string(hd) + " above 1024");
  }

  static void no_bias(const PositionEncoding& pe) {
    if (pe.alibi_slope(0, 1) != 0.0) throw std::invalid_argument("attention 'tensorcoder' has no token-pair scores for alibi's bias");
  }

  Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx) override {
    no_bias(pe);
    Var qs = pe.rotate(q(x), H, ctx), ks = pe.rotate(k(x), Hkv, ctx);
    return o(ag::dim_attention(qs, ks, v(x), w, ctx.B, ctx.T, H, Hkv, hd, causal, rows, by_count));
  }

  std::unique_ptr<LayerState> make_state(int64_t) const override { return std::make_unique<DimState>(H, hd); }
  size_t state_bytes_per_token() const override { return 0; }

  void infer(const float* x, float* y, PositionEncoding& pe, LayerState& state, const InferCtx& ctx) override {
    if (!causal) throw std::invalid_argument("attention 'tensorcoder' with causal=false (a masked LM) cannot decode");
    no_bias(pe);
    auto& st = static_cast<DimState&>(state);
    const int64_t T = ctx.T, group = H / Hkv, dd = hd * hd;
    float *qs = ctx.ws->take(size_t(T * H * hd)), *ks = ctx.ws->take(size_t(T * Hkv * hd)),
          *vs = ctx.ws->take(size_t(T * Hkv * hd)), *att = ctx.ws->take(size_t(T * H * hd));
    q.infer(x, T, qs);
    k.infer(x, T, ks);
    v.infer(x, T, vs);
    pe.infer_rotate(qs, H, ctx);
    pe.infer_rotate(ks, Hkv, ctx);
    const float* W = w->value.data<float>();
    for (int64_t t = 0; t < T; ++t) {
      ++st.count;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kh = h / group;
        kernels::dim_attention_step(att + (t * H + h) * hd, st.P.data() + h * dd, st.scratch.data(), qs + (t * H + h) * hd,
                                    ks + (t * Hkv + kh) * hd, vs + (t * Hkv + kh) * hd, W + h * dd, hd, st.count, rows,
                                    by_count);
      }
    }
    o.infer(att, T, y);
  }

  void linears(const std::string& p, const LinearVisitor& f) override {
    f(p + ".q_proj", q), f(p + ".k_proj", k), f(p + ".v_proj", v), f(p + ".o_proj", o);
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    q.visit(p + ".q_proj", f);
    k.visit(p + ".k_proj", f);
    v.visit(p + ".v_proj", f);
    o.visit(p + ".o_proj", f);
    f(p + ".dim_weight", w, ParamKind::norm);  // a multiplicative gate around 1: no weight decay
  }
};

const bool reg = AttentionRegistry::get().add(
    "tensorcoder",
    {{"f", "softmax_rows", "softmax_rows | softmax_cols: the normalisation of the d x d map S", one_of({"softmax_rows", "softmax_cols"})},
     {"scale", "sqrt_d", "sqrt_d | sqrt_n: S is scaled by 1/sqrt(head dim) or 1/sqrt(tokens summed)", one_of({"sqrt_d", "sqrt_n"})},
     {"causal", true, "false: every token sees the whole sequence (masked-LM training only; cannot decode)", nullptr}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<TensorCoderAttention>(c, i, o); });

}  // namespace
}  // namespace clm::nn
