// Multi-linear attention (Tensorized Transformer, arXiv 1906.09777): h blocks share one set of
// Q/K/V projections of rank R and differ only by a diagonal core g_j in R^R. The single-block
// tensor T_j[a,b,c] = sum_r g_j[r] Q[a,r] K[b,r] V[c,r] is reduced in its causal "reconstruction"
// form: the value axis is tied to the key axis and normalised by a causal softmax, so block j is
//   O_j = softmax_causal(Q diag(g_j) K^T / sqrt(R)) V,   O = mean_j O_j,   y = O W_o.
// One K/V of rank R is cached for all blocks (h times smaller than h heads' KV cache at R = hd).
// mode=split_concat reproduces the paper's form instead (non-causal, fixed length N = max_seq_len):
// each query's N x N slice of the averaged tensor, flattened, through an N^2 x d_model projection.
#include <cmath>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/kv_cache.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct MultiLinearAttention : Attention {
  Linear q, k, v, o;
  Var g;  // [h, R] the blocks' diagonal cores
  int64_t h, R, hd, sub;  // sub: rotary sub-heads of the model's head dim per block
  bool split;             // split-concat reproduction mode
  int64_t N;              // its fixed length
  MultiLinearAttention(const ModelConfig& c, Init& init, const Options& opt)
      : h(c.n_heads), R(opt.integer("rank") > 0 ? opt.integer("rank") : c.hd()), hd(c.hd()),
        split(opt.str("mode") == "split_concat"), N(c.max_seq_len) {
    if (R % hd)
      throw std::invalid_argument("attention 'multilinear': rank " + std::to_string(R) + " must be a multiple of the head dim " +
                                  std::to_string(hd) + " (rotary pairs)");
    sub = R / hd;
    q = Linear(c.d_model, R, c.attn_bias, init, c.init_std);
    k = Linear(c.d_model, R, c.attn_bias, init, c.init_std);
    v = Linear(c.d_model, R, c.attn_bias, init, c.init_std);
    if (split && N * N > (int64_t(1) << 22))
      throw std::invalid_argument("attention 'multilinear' mode=split_concat: max_seq_len " + std::to_string(N) +
                                  " makes an N^2 x d_model output projection of " + std::to_string(N * N) + " rows (at most 2^22)");
    o = Linear(split ? N * N : R, c.d_model, false, init, c.init_std);
    g = init.normal({h, R}, opt.num("core_std"));  // around 1: equal cores would never become different
    if (init.random) {
      Tensor& t = g->value;
      for (int64_t i = 0; i < t.numel(); ++i)
        t.dtype() == DType::f64 ? void(t.data<double>()[i] += 1.0) : void(t.data<float>()[i] += 1.0f);
    }
  }

  std::vector<double> slopes(const PositionEncoding& pe) const {
    std::vector<double> s;
    if (pe.alibi_slope(0, h) != 0.0)
      for (int64_t j = 0; j < h; ++j) s.push_back(pe.alibi_slope(j, h));
    return s;
  }

  Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx) override {
    if (split) {
      if (ctx.T != N)
        throw std::invalid_argument("attention 'multilinear' mode=split_concat runs at its fixed length " + std::to_string(N) + " only, not " +
                                    std::to_string(ctx.T));
      if (!slopes(pe).empty()) throw std::invalid_argument("attention 'multilinear' mode=split_concat has no scores for alibi's bias");
      if (double(ctx.B) * double(N) * double(N) * double(N) * 4.0 > 8e9)
        throw std::invalid_argument("attention 'multilinear' mode=split_concat: batch " + std::to_string(ctx.B) + " x N^3 slices (N = " +
                                    std::to_string(N) + ") would take over 8 GB per layer");
      return o(ag::btd_slices(pe.rotate(q(x), sub, ctx), pe.rotate(k(x), sub, ctx), v(x), g, ctx.B, N));
    }
    Var qs = pe.rotate(ag::diag_blocks(q(x), g), h * sub, ctx), ks = pe.rotate(k(x), sub, ctx);
    Var att = ag::attention(qs, ks, v(x), ctx.B, ctx.T, h, 1, R, 1.0 / std::sqrt(double(R)), slopes(pe));
    return o(ag::block_mean(att, h));
  }

  std::unique_ptr<LayerState> make_state(int64_t capacity) const override { return std::make_unique<KVCells>(1, R, capacity); }
  size_t state_bytes_per_token() const override { return size_t(2 * R) * sizeof(float); }

  void infer(const float* x, float* y, PositionEncoding& pe, LayerState& state, const InferCtx& ctx) override {
    if (split) throw std::invalid_argument("attention 'multilinear' mode=split_concat (non-causal, fixed length) cannot decode");
    auto& kv = static_cast<KVCells&>(state);
    const int64_t T = ctx.T, cap = kv.capacity();
    if (kv.max_len() + T > cap) throw std::length_error("KV cache full (" + std::to_string(cap) + " positions)");
    float *qr = ctx.ws->take(size_t(T * R)), *qs = ctx.ws->take(size_t(T * h * R)), *ks = ctx.ws->take(size_t(T * R)),
          *vs = ctx.ws->take(size_t(T * R)), *att = ctx.ws->take(size_t(T * h * R)), *mean = ctx.ws->take(size_t(T * R));
    q.infer(x, T, qr);
    k.infer(x, T, ks);
    v.infer(x, T, vs);
    const float* G = g->value.data<float>();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < h; ++j)
        for (int64_t r = 0; r < R; ++r) qs[(t * h + j) * R + r] = qr[t * R + r] * G[j * R + r];
    pe.infer_rotate(qs, h * sub, ctx);
    pe.infer_rotate(ks, sub, ctx);
    kv.append(ks, vs, T, ctx.pos, ctx.tag, ctx.tags);
    attend(kv, qs, att, h, float(1.0 / std::sqrt(double(R))), pe, ctx);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < R; ++r) {
        float acc = 0;
        for (int64_t j = 0; j < h; ++j) acc += att[(t * h + j) * R + r];
        mean[t * R + r] = acc / float(h);
      }
    o.infer(mean, T, y);
  }

  void linears(const std::string& p, const LinearVisitor& f) override {
    f(p + ".q_proj", q), f(p + ".k_proj", k), f(p + ".v_proj", v), f(p + ".o_proj", o);
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    q.visit(p + ".q_proj", f);
    k.visit(p + ".k_proj", f);
    v.visit(p + ".v_proj", f);
    o.visit(p + ".o_proj", f);
    f(p + ".core", g, ParamKind::norm);  // multiplicative, around 1: no weight decay
  }
};

const bool reg = AttentionRegistry::get().add(
    "multilinear",
    {{"rank", 0, "R: width of the shared Q/K/V projections (0 = the head dim); a multiple of the head dim",
      [](const nlohmann::json& v) { return v.get<int64_t>() >= 0 ? "" : "must be >= 0"; }},
     {"core_std", 0.5, "the cores start at 1 + N(0, core_std^2)",
      [](const nlohmann::json& v) { return v.get<double>() >= 0 ? "" : "must be >= 0"; }},
     {"mode", "causal", "causal (reconstruction: any length, decodes) | split_concat (the paper's form: NON-CAUSAL, fixed length max_seq_len; reproduction only)",
      one_of({"causal", "split_concat"})}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<MultiLinearAttention>(c, i, o); });

}  // namespace
}  // namespace clm::nn
