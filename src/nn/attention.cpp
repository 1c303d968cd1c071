// Attention variants: causal (multi-head / grouped-query softmax attention, Llama style).
#include <cmath>
#include <cstring>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct CausalAttention : Attention {
  Linear q, k, v, o;
  int64_t H, Hkv, hd;
  CausalAttention(const ModelConfig& c, Init& init)
      : q(c.d_model, c.n_heads * c.hd(), c.attn_bias, init, c.init_std),
        k(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        v(c.d_model, c.n_kv_heads * c.hd(), c.attn_bias, init, c.init_std),
        o(c.n_heads * c.hd(), c.d_model, false, init, c.init_std),
        H(c.n_heads),
        Hkv(c.n_kv_heads),
        hd(c.hd()) {}

  int64_t kv_width() const override { return Hkv * hd; }

  Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx, LayerKV* kv) override {
    Var qs = pe.rotate(q(x), H, ctx);
    Var ks = pe.rotate(k(x), Hkv, ctx);
    Var vs = v(x);
    const double scale = 1.0 / std::sqrt(double(hd));
    if (!kv) return o(ag::attention(qs, ks, vs, ctx.B, ctx.T, H, Hkv, hd, scale));
    return o(cached(qs, ks, vs, ctx, *kv, scale));
  }

  // Append this call's keys/values to the cache, then attend over all cached positions.
  Var cached(const Var& qs, const Var& ks, const Var& vs, const Ctx& ctx, LayerKV& kv, double scale) {
    const int64_t W = Hkv * hd, cap = kv.k.dim(1);
    if (kv.len != ctx.pos0) throw std::logic_error("kv cache: position mismatch");
    if (kv.len + ctx.T > cap) throw std::length_error("kv cache full (" + std::to_string(cap) + " positions)");
    const size_t es = dtype_size(kv.k.dtype());
    for (int64_t b = 0; b < ctx.B; ++b) {
      char* kd = static_cast<char*>(kv.k.raw()) + ((b * cap + kv.len) * W) * es;
      char* vd = static_cast<char*>(kv.v.raw()) + ((b * cap + kv.len) * W) * es;
      std::memcpy(kd, static_cast<const char*>(ks->value.raw()) + b * ctx.T * W * es, ctx.T * W * es);
      std::memcpy(vd, static_cast<const char*>(vs->value.raw()) + b * ctx.T * W * es, ctx.T * W * es);
    }
    kv.len += ctx.T;
    kernels::AttnShape s{ctx.B, ctx.T, kv.len, H, Hkv, hd, H * hd, ctx.T * H * hd, W, cap * W};
    Tensor out = Tensor::empty({ctx.B * ctx.T, H * hd}, qs->value.dtype());
    ag::dispatch_float(out.dtype(), [&]<class T>() {
      kernels::attention_forward<T>(out.data<T>(), nullptr, qs->value.data<T>(), kv.k.data<T>(), kv.v.data<T>(), s,
                                    T(scale));
    });
    return ag::leaf(out);
  }

  void visit(const std::string& p, const ParamVisitor& f) override {
    q.visit(p + ".q_proj", f);
    k.visit(p + ".k_proj", f);
    v.visit(p + ".v_proj", f);
    o.visit(p + ".o_proj", f);
  }
};

const bool reg_causal = AttentionRegistry::get().add(
    "causal", [](const ModelConfig& c, Init& i) { return std::make_unique<CausalAttention>(c, i); });

}  // namespace
}  // namespace clm::nn
