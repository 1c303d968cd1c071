#include "infer/session.h"

#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "autograd/autograd.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm {

bool DecodeSession::supported(const ModelConfig& c, std::string* why) {
  auto no = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  if (c.attention != "causal") return no("attention '" + c.attention + "'");
  if (c.position != "rope") return no("position '" + c.position + "'");
  if (c.mlp != "swiglu" && c.mlp != "geglu_tanh") return no("mlp '" + c.mlp + "'");
  if (c.norm != "rmsnorm" && c.norm != "rmsnorm_1p") return no("norm '" + c.norm + "'");
  if (c.embedding != "standard") return no("embedding '" + c.embedding + "'");
  if (c.mlp_bias) return no("mlp biases");
  return true;
}

DecodeSession::Mat DecodeSession::pack(const Tensor& w) {
  Mat m(w.data<float>(), w.dim(0), w.dim(1), wdt_ == DType::bf16 ? Mat::Type::bf16 : Mat::Type::f32);
  weight_bytes_ += m.bytes();
  return m;
}

DecodeSession::DecodeSession(TransformerLM& model, DType wdt, int64_t capacity)
    : model_(model), c_(model.config()), wdt_(wdt) {
  std::string why;
  if (!supported(c_, &why)) throw std::invalid_argument("fast decoding does not support " + why);
  if (model.dtype() != DType::f32) throw std::invalid_argument("fast decoding needs an f32 model");
  if (wdt != DType::f32 && wdt != DType::bf16) throw std::invalid_argument("fast decoding weights must be f32 or bf16");
  cache_ = model.make_cache(1, capacity);
  norm_offset_ = c_.norm == "rmsnorm_1p" ? 1.0 : 0.0;
  const auto named = model.named_weights();
  const std::map<std::string, Tensor> p(named.begin(), named.end());
  embed_ = p.at("model.embed_tokens.weight").data<float>();
  final_norm_ = p.at("model.norm.weight").data<float>();
  for (int64_t l = 0; l < c_.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.attn_norm = p.at(pre + "input_layernorm.weight").data<float>();
    L.mlp_norm = p.at(pre + "post_attention_layernorm.weight").data<float>();
    L.q = pack(p.at(pre + "self_attn.q_proj.weight"));
    L.k = pack(p.at(pre + "self_attn.k_proj.weight"));
    L.v = pack(p.at(pre + "self_attn.v_proj.weight"));
    L.o = pack(p.at(pre + "self_attn.o_proj.weight"));
    if (c_.attn_bias) {
      L.bq = p.at(pre + "self_attn.q_proj.bias").data<float>();
      L.bk = p.at(pre + "self_attn.k_proj.bias").data<float>();
      L.bv = p.at(pre + "self_attn.v_proj.bias").data<float>();
    }
    L.gate = pack(p.at(pre + "mlp.gate_proj.weight"));
    L.up = pack(p.at(pre + "mlp.up_proj.weight"));
    L.down = pack(p.at(pre + "mlp.down_proj.weight"));
    layers_.push_back(std::move(L));
  }
  head_ = pack(c_.tie_embeddings ? p.at("model.embed_tokens.weight") : p.at("lm_head.weight"));
  const int64_t hd = c_.hd();
  nn::rope_table(0, capacity, hd, c_.rope_theta, DType::f32, rope_cos_, rope_sin_);
  const int64_t D = c_.d_model;
  x_.resize(D), o_.resize(D), xb_.resize(std::max(D, c_.n_heads * hd)), q_.resize(c_.n_heads * hd);
  k_.resize(c_.n_kv_heads * hd), v_.resize(c_.n_kv_heads * hd);
  att_.resize(size_t(c_.n_heads * capacity)), g_.resize(c_.d_ff), u_.resize(c_.d_ff), logits_.resize(c_.vocab_size);
}

void DecodeSession::rmsnorm(float* out, const float* x, const float* w) const {
  float rstd;
  kernels::rmsnorm_forward<float>(out, &rstd, x, w, 1, c_.d_model, float(c_.norm_eps), float(norm_offset_));
}

const float* DecodeSession::prefill(const std::vector<int32_t>& ids) {
  if (ids.empty()) throw std::invalid_argument("prefill: no tokens");
  if (len() + int64_t(ids.size()) > capacity()) throw std::length_error("prefill: KV cache full");
  ag::NoGrad ng;
  Tensor t = Tensor::from(ids, {int64_t(ids.size())});
  nn::Var logits = model_.forward_last(t, 1, int64_t(ids.size()), &cache_);  // [1, vocab]
  const float* last = logits->value.data<float>();
  std::memcpy(logits_.data(), last, sizeof(float) * c_.vocab_size);
  return logits_.data();
}

const float* DecodeSession::step(int32_t token) {
  const int64_t pos = len(), D = c_.d_model, hd = c_.hd(), half = hd / 2, H = c_.n_heads, K = c_.n_kv_heads;
  if (pos >= capacity()) throw std::length_error("decode: KV cache full (" + std::to_string(capacity()) + ")");
  if (token < 0 || token >= c_.vocab_size) throw std::out_of_range("decode: token id outside vocab");
  const auto& vk = kernels::vec();
  std::memcpy(x_.data(), embed_ + int64_t(token) * D, sizeof(float) * D);
  if (c_.embed_scale != 1.0) vk.scale(float(c_.embed_scale), x_.data(), D);
  const float *cs = rope_cos_.data<float>() + pos * half, *sn = rope_sin_.data<float>() + pos * half;
  auto rotate = [&](float* v, int64_t heads) {  // in place: the kernel reads each pair before writing it
    kernels::rotary_forward<float>(v, v, cs, sn, 1, 1, heads, hd, c_.rope_interleaved);
  };
  const float scale = 1.0f / std::sqrt(float(hd));
  const int64_t cap = capacity(), W = K * hd, group = H / K;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    nn::LayerKV& kv = cache_.layers[l];
    rmsnorm(xb_.data(), x_.data(), L.attn_norm);
    L.q.matvec(xb_.data(), q_.data());
    L.k.matvec(xb_.data(), k_.data());
    L.v.matvec(xb_.data(), v_.data());
    if (L.bq) {
      vk.axpy(1.0f, L.bq, q_.data(), H * hd);
      vk.axpy(1.0f, L.bk, k_.data(), W);
      vk.axpy(1.0f, L.bv, v_.data(), W);
    }
    rotate(q_.data(), H);
    rotate(k_.data(), K);
    float* kc = kv.k.data<float>();
    float* vc = kv.v.data<float>();
    std::memcpy(kc + pos * W, k_.data(), sizeof(float) * W);
    std::memcpy(vc + pos * W, v_.data(), sizeof(float) * W);
    // one query per head over positions 0..pos
#pragma omp parallel for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = q_.data() + h * hd;
      const int64_t kh = h / group;
      float* s = att_.data() + h * cap;
      for (int64_t t = 0; t <= pos; ++t) s[t] = vk.dot(qh, kc + t * W + kh * hd, hd) * scale;
      float m = vk.max(s, pos + 1);
      float z = vk.exp_sum(s, m, s, pos + 1);
      float* out = xb_.data() + h * hd;
      std::fill(out, out + hd, 0.0f);
      for (int64_t t = 0; t <= pos; ++t) vk.axpy(s[t] / z, vc + t * W + kh * hd, out, hd);
    }
    L.o.matvec(xb_.data(), o_.data());
    vk.axpy(1.0f, o_.data(), x_.data(), D);
    rmsnorm(xb_.data(), x_.data(), L.mlp_norm);
    L.gate.matvec(xb_.data(), g_.data());
    L.up.matvec(xb_.data(), u_.data());
    const int64_t F = c_.d_ff;
    if (c_.mlp == "swiglu") {
      kernels::swiglu_forward<float>(g_.data(), g_.data(), u_.data(), F);
    } else {  // tanh GELU gate
      kernels::gelu_forward<float>(g_.data(), g_.data(), F, true);
      for (int64_t i = 0; i < F; ++i) g_[i] *= u_[i];
    }
    L.down.matvec(g_.data(), o_.data());
    vk.axpy(1.0f, o_.data(), x_.data(), D);
    kv.len = pos + 1;
  }
  rmsnorm(xb_.data(), x_.data(), final_norm_);
  head_.matvec(xb_.data(), logits_.data());
  return logits_.data();
}

}  // namespace clm
