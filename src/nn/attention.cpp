// Attention variants: causal (multi-head / grouped-query softmax attention, Llama style).
#include <cmath>
#include <cstring>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/kv_cache.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct CausalAttention : Attention {
  Linear q, k, v, o;
  int64_t H, Hkv, hd;
  bool causal = true;
  CausalAttention(const ModelConfig& c, Init& init, bool causal_ = true)
      : q(c.d_model, c.n_heads * c.hd(), c.attn_bias, init, c.init_std),
        k(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        v(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        o(c.n_heads * c.hd(), c.d_model, false, init, c.init_std),
        H(c.n_heads),
        Hkv(c.n_kv_heads),
        hd(c.hd()),
        causal(causal_) {}

  Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx) override {
    Var qs = pe.rotate(q(x), H, ctx);
    Var ks = pe.rotate(k(x), Hkv, ctx);
    std::vector<double> slopes;
    if (pe.alibi_slope(0, H) != 0.0)
      for (int64_t h = 0; h < H; ++h) slopes.push_back(pe.alibi_slope(h, H));
    return o(ag::attention(qs, ks, v(x), ctx.B, ctx.T, H, Hkv, hd, 1.0 / std::sqrt(double(hd)), slopes, causal));
  }

  std::unique_ptr<LayerState> make_state(int64_t capacity) const override {
    return std::make_unique<KVCells>(Hkv, hd, capacity);
  }
  size_t state_bytes_per_token() const override { return size_t(2 * Hkv * hd) * sizeof(float); }

  // Project, rotate at the tokens' positions, append to the cells, then each (token, head) attends
  // over its KV head's cells with positions up to its own.
  void infer(const float* x, float* y, PositionEncoding& pe, LayerState& state, const InferCtx& ctx) override {
    if (!causal) throw std::invalid_argument("attention 'causal' with causal=false (a masked LM) cannot decode");
    auto& kv = static_cast<KVCells&>(state);
    const int64_t T = ctx.T, cap = kv.capacity();
    if (kv.max_len() + T > cap)
      throw std::length_error("KV cache full (" + std::to_string(cap) + " positions)");
    float *qs = ctx.ws->take(size_t(T * H * hd)), *ks = ctx.ws->take(size_t(T * Hkv * hd)),
          *vs = ctx.ws->take(size_t(T * Hkv * hd)), *att = ctx.ws->take(size_t(T * H * hd));
    q.infer(x, T, qs);
    k.infer(x, T, ks);
    v.infer(x, T, vs);
    pe.infer_rotate(qs, H, ctx);
    pe.infer_rotate(ks, Hkv, ctx);
    kv.append(ks, vs, T, ctx.pos, ctx.tag, ctx.tags);
    attend(kv, qs, att, H, float(1.0 / std::sqrt(double(hd))), pe, ctx);
    o.infer(att, T, y);
  }

  // The projections run once over every sequence's rows; rotation, cells and attention per sequence.
  void infer_batch(const float* x, float* y, int64_t D, PositionEncoding& pe, std::span<LayerState* const> states,
                   std::span<const InferCtx> ctx) override {
    if (!causal) throw std::invalid_argument("attention 'causal' with causal=false (a masked LM) cannot decode");
    (void)D;
    int64_t N = 0;
    for (size_t i = 0; i < states.size(); ++i) {
      auto& kv = static_cast<KVCells&>(*states[i]);
      if (kv.max_len() + ctx[i].T > kv.capacity())
        throw std::length_error("KV cache full (" + std::to_string(kv.capacity()) + " positions)");
      N += ctx[i].T;
    }
    Workspace& ws = *ctx[0].ws;
    float *qs = ws.take(size_t(N * H * hd)), *ks = ws.take(size_t(N * Hkv * hd)), *vs = ws.take(size_t(N * Hkv * hd)),
          *att = ws.take(size_t(N * H * hd));
    q.infer(x, N, qs);
    k.infer(x, N, ks);
    v.infer(x, N, vs);
    int64_t r = 0;
    for (size_t i = 0; i < states.size(); ++i) {
      auto& kv = static_cast<KVCells&>(*states[i]);
      float *qi = qs + r * H * hd, *ki = ks + r * Hkv * hd, *vi = vs + r * Hkv * hd;
      pe.infer_rotate(qi, H, ctx[i]);
      pe.infer_rotate(ki, Hkv, ctx[i]);
      kv.append(ki, vi, ctx[i].T, ctx[i].pos, ctx[i].tag, ctx[i].tags);
      const auto mark = ws.mark();
      attend(kv, qi, att + r * H * hd, H, float(1.0 / std::sqrt(double(hd))), pe, ctx[i]);
      ws.release(mark);
      r += ctx[i].T;
    }
    o.infer(att, N, y);
  }

  void linears(const std::string& p, const LinearVisitor& f) override {
    f(p + ".q_proj", q), f(p + ".k_proj", k), f(p + ".v_proj", v), f(p + ".o_proj", o);
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    q.visit(p + ".q_proj", f);
    k.visit(p + ".k_proj", f);
    v.visit(p + ".v_proj", f);
    o.visit(p + ".o_proj", f);
  }
};

const bool reg_causal = AttentionRegistry::get().add(
    "causal", {{"causal", true, "false: bidirectional softmax attention (masked-LM training only; cannot decode)", nullptr}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<CausalAttention>(c, i, o.flag("causal")); });

}  // namespace
}  // namespace clm::nn
