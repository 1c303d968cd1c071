#include "models/transformer.h"

#include "autograd/ops.h"

namespace clm {

size_t KVCache::bytes() const {
  size_t n = 0;
  for (auto& l : layers) n += l.k.nbytes() + l.v.nbytes();
  return n;
}
void KVCache::reset() {
  for (auto& l : layers) l.len = 0;
}

void KVCache::truncate(int64_t n) {
  if (n < 0 || n > len()) throw std::out_of_range("KVCache::truncate: " + std::to_string(n) + " outside 0.." + std::to_string(len()));
  for (auto& l : layers) l.len = n;
}

TransformerLM::TransformerLM(const ModelConfig& cfg, uint64_t seed, DType dtype) : cfg_(cfg), dtype_(dtype) {
  cfg_.validate();
  nn::Init init{Rng(seed), dtype};
  embed_ = nn::EmbeddingRegistry::get().create("embedding", cfg_.embedding, cfg_, init);
  pos_ = nn::PositionRegistry::get().create("position", cfg_.position, cfg_, init);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    Block b;
    b.attn_norm = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.d_model, cfg_, init);
    b.attn = nn::AttentionRegistry::get().create("attention", cfg_.attention, cfg_, init);
    b.mlp_norm = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.d_model, cfg_, init);
    b.mlp = nn::MlpRegistry::get().create("mlp", cfg_.mlp, cfg_, init);
    blocks_.push_back(std::move(b));
  }
  final_norm_ = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.d_model, cfg_, init);
  if (!cfg_.tie_embeddings) lm_head_ = init.normal({cfg_.vocab_size, cfg_.d_model}, cfg_.init_std);
}

nn::Var TransformerLM::forward(const Tensor& ids, int64_t B, int64_t T, KVCache* cache) {
  return run(ids, B, T, cache, false);
}

nn::Var TransformerLM::forward_last(const Tensor& ids, int64_t B, int64_t T, KVCache* cache) {
  if (ag::grad_enabled()) throw std::logic_error("forward_last needs NoGrad");
  return run(ids, B, T, cache, true);
}

nn::Var TransformerLM::run(const Tensor& ids, int64_t B, int64_t T, KVCache* cache, bool last_only) {
  if (ids.numel() != B * T) throw std::invalid_argument("forward: ids size != B*T");
  if (cache && ag::grad_enabled()) throw std::logic_error("forward with a KV cache needs NoGrad");
  nn::Ctx ctx{B, T, cache ? cache->len() : 0};
  if (!cache && cfg_.position == "learned" && T > cfg_.max_seq_len)
    throw std::invalid_argument("sequence of " + std::to_string(T) + " exceeds max_seq_len " +
                                std::to_string(cfg_.max_seq_len));
  nn::Var x = pos_->embed(embed_->forward(ids), ctx);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = blocks_[l];
    x = ag::add(x, b.attn->forward(b.attn_norm->forward(x), *pos_, ctx, cache ? &cache->layers[l] : nullptr));
    x = ag::add(x, b.mlp->forward(b.mlp_norm->forward(x)));
  }
  if (last_only && T > 1)  // keep each sequence's last row: [B*T, D] -> [B, D]
    x = ag::leaf(x->value.contiguous().reshape({B, T, -1}).slice(1, T - 1, T).contiguous().reshape({B, -1}));
  x = final_norm_->forward(x);
  return ag::linear(x, lm_head_ ? lm_head_ : embed_->output_weight());
}

KVCache TransformerLM::make_cache(int64_t B, int64_t capacity) const {
  KVCache c;
  for (auto& b : blocks_) {
    int64_t W = b.attn->kv_width();
    c.layers.push_back({Tensor::empty({B, capacity, W}, dtype_), Tensor::empty({B, capacity, W}, dtype_), 0});
  }
  return c;
}

void TransformerLM::visit(const nn::ParamVisitor& f) {
  embed_->visit("model.embed_tokens", f);
  pos_->visit("model.embed_positions", f);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    std::string p = "model.layers." + std::to_string(l);
    blocks_[l].attn_norm->visit(p + ".input_layernorm", f);
    blocks_[l].attn->visit(p + ".self_attn", f);
    blocks_[l].mlp_norm->visit(p + ".post_attention_layernorm", f);
    blocks_[l].mlp->visit(p + ".mlp", f);
  }
  final_norm_->visit("model.norm", f);
  if (lm_head_) f("lm_head.weight", lm_head_, nn::ParamKind::weight);
}

std::vector<std::pair<std::string, Tensor>> TransformerLM::named_weights() {
  std::vector<std::pair<std::string, Tensor>> w;
  visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { w.push_back({n, v->value}); });
  return w;
}

int64_t TransformerLM::num_params() {
  int64_t n = 0;
  visit([&](const std::string&, nn::Var& p, nn::ParamKind) { n += p->value.numel(); });
  return n;
}

}  // namespace clm
