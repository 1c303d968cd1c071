#include "models/transformer.h"

#include <algorithm>
#include <cstring>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"

namespace clm {

TransformerLM::TransformerLM(const ModelConfig& cfg, uint64_t seed, DType dtype)
    : TransformerLM(cfg, nn::Init{Rng(seed), dtype}) {}

TransformerLM::TransformerLM(const ModelConfig& cfg, nn::Init init) : cfg_(cfg), dtype_(init.dtype), dropout_rng_(Rng(init.rng).next() ^ 0x64726f70ull) {  // a copy: the weights' stream is not advanced
  cfg_.validate();
  embed_ = nn::EmbeddingRegistry::get().create("embedding", cfg_.embedding, cfg_.embedding_opt, cfg_, init);
  pos_ = nn::PositionRegistry::get().create("position", cfg_.position, cfg_.position_opt, cfg_, init);
  if (cfg_.vision != "none") vision_ = nn::VisionRegistry::get().create("vision", cfg_.vision, cfg_.vision_opt, cfg_, init);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    Block b;
    b.attn_norm = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.norm_opt, cfg_.d_model, cfg_, init);
    b.attn = nn::AttentionRegistry::get().create("attention", cfg_.attention, cfg_.attention_opt, cfg_, init);
    b.mlp_norm = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.norm_opt, cfg_.d_model, cfg_, init);
    b.mlp = nn::MlpRegistry::get().create("mlp", cfg_.mlp, cfg_.mlp_opt, cfg_, init);
    blocks_.push_back(std::move(b));
  }
  final_norm_ = nn::NormRegistry::get().create("norm", cfg_.norm, cfg_.norm_opt, cfg_.d_model, cfg_, init);
  if (!cfg_.tie_embeddings) lm_head_ = init.normal({cfg_.vocab_size, cfg_.d_model}, cfg_.init_std);
  head_ = nn::Linear::wrap(lm_head_ ? lm_head_ : embed_->output_weight());
}

void TransformerLM::set_images(const Tensor& images) {
  if (!vision_) LanguageModel::set_images(images);
  const auto shape = vision_->image_shape();
  const int64_t per = shape[0] * shape[1] * shape[2];
  if (images.numel() == 0 || images.numel() % per)
    throw std::invalid_argument("images: " + std::to_string(images.numel()) + " values are not a whole number of " + std::to_string(shape[0]) +
                                "x" + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) + " images (the model's size)");
  images_ = images;
}

std::vector<int64_t> TransformerLM::image_rows(const int32_t* ids, int64_t n) {
  std::vector<int64_t> rows;
  if (!vision_) return rows;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] == vision_->token_id()) rows.push_back(i);
  const auto shape = vision_->image_shape();
  const int64_t given = images_.numel() ? images_.numel() / (shape[0] * shape[1] * shape[2]) * vision_->tokens() : 0;
  if (int64_t(rows.size()) != given) {
    images_ = Tensor();
    throw std::invalid_argument("the input holds " + std::to_string(rows.size()) + " image tokens but the images give " +
                                std::to_string(given) + " (" + std::to_string(vision_->tokens()) + " per image)");
  }
  return rows;
}

nn::Var TransformerLM::forward(const Tensor& ids, int64_t B, int64_t T) {
  const nn::Var h = hidden(ids, B, T);  // first: it builds this step's embedding table, which a tied head reads
  return ag::linear(h, lm_head_ ? lm_head_ : embed_->forward_output_weight());
}

nn::Var TransformerLM::hidden(const Tensor& ids, int64_t B, int64_t T) {
  if (ids.numel() != B * T) throw std::invalid_argument("forward: ids size != B*T");
  nn::Ctx ctx{B, T, 0};
  if (cfg_.position == "learned" && T > cfg_.max_seq_len)
    throw std::invalid_argument("sequence of " + std::to_string(T) + " exceeds max_seq_len " +
                                std::to_string(cfg_.max_seq_len));
  const double p = ag::grad_enabled() ? cfg_.dropout : 0.0;  // training only
  auto drop = [&](const nn::Var& v) { return p > 0 ? ag::dropout(v, p, dropout_rng_) : v; };
  nn::Var e = embed_->forward(ids);
  if (const auto rows = image_rows(ids.data<int32_t>(), ids.numel()); !rows.empty()) {
    Tensor img = dtype_ == DType::f64 ? images_.to(DType::f64) : images_;
    images_ = Tensor();
    e = ag::replace_rows(e, vision_->forward(img), rows);
  }
  nn::Var x = drop(pos_->embed(e, ctx));
  for (Block& b : blocks_) {
    x = ag::add(x, drop(b.attn->forward(b.attn_norm->forward(x), *pos_, ctx)));
    x = ag::add(x, drop(b.mlp->forward(b.mlp_norm->forward(x))));
  }
  return final_norm_->forward(x);
}

InferState TransformerLM::make_state(int64_t capacity) {
  if (capacity <= 0) throw std::invalid_argument("inference state: capacity must be > 0");
  InferState s;
  for (auto& b : blocks_) s.layers.push_back(b.attn->make_state(capacity));
  s.logits.resize(size_t(cfg_.vocab_size));
  s.pos.reserve(size_t(capacity));
  pos_->reserve(capacity);
  return s;
}

size_t TransformerLM::state_bytes_per_token() const {
  size_t n = 0;
  for (auto& b : blocks_) n += b.attn->state_bytes_per_token();
  return n;
}

// Asks the state's token filter which of the T tokens go on after layer `layer`; compacts the
// hidden rows x [T, D], the positions and the tags of those that do. Returns the new count.
static int64_t filter_tokens(InferState& s, int64_t layer, float* x, int64_t T, int64_t D) {
  std::vector<uint8_t> keep(size_t(T), 1);
  if (!s.token_filter(layer, T, s.pos.data(), keep.data())) return T;
  keep[size_t(T - 1)] = 1;
  int64_t w = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (!keep[size_t(t)]) continue;
    if (w != t) {
      std::memmove(x + w * D, x + t * D, sizeof(float) * size_t(D));
      s.pos[size_t(w)] = s.pos[size_t(t)];
      if (!s.tags.empty()) s.tags[size_t(w)] = s.tags[size_t(t)];
    }
    ++w;
  }
  s.pos.resize(size_t(w));
  if (!s.tags.empty()) s.tags.resize(size_t(w));
  return w;
}

// One sequence's call, checked before anything is touched (infer and infer_batch).
static void check_call(const InferState& s, std::span<const int32_t> ids, size_t layers, int64_t V) {
  if (ids.empty()) throw std::invalid_argument("infer: no tokens");
  if (s.layers.size() != layers) throw std::invalid_argument("infer: state made for another model");
  for (int32_t id : ids)
    if (id < 0 || id >= V) throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(V));
  if (!s.tags.empty() && s.tags.size() != ids.size())
    throw std::invalid_argument("infer: " + std::to_string(s.tags.size()) + " tags for " + std::to_string(ids.size()) + " tokens");
}

const float* TransformerLM::infer(InferState& s, std::span<const int32_t> ids) {
  int64_t T = int64_t(ids.size());
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;
  if (dtype_ != DType::f32) throw std::invalid_argument("inference needs an f32 model");
  check_call(s, ids, blocks_.size(), V);
  if (embed_->refresh() && !lm_head_ && !packed_format().empty()) head_.pack(packed_format());  // a rebuilt tied table
  if (s.token_filter && s.all_logits) throw std::invalid_argument("infer: a token filter cannot give every token's logits");
  const auto img_rows = image_rows(ids.data(), T);
  if (!img_rows.empty() && s.tags.empty()) {  // image cells are tagged 1 (KV policies tell them apart)
    s.tags.assign(size_t(T), 0);
    for (int64_t r : img_rows) s.tags[size_t(r)] = 1;
  }
  s.ws.reset();
  s.pos.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) s.pos[size_t(t)] = int32_t(s.next_pos + t);
  nn::InferCtx ctx{T, s.pos.data(), s.tag, s.tags.empty() ? nullptr : s.tags.data(), 0, &s.ws,
                   s.on_attention ? &s.on_attention : nullptr};
  const int64_t T_in = T;
  if (s.on_call_start) s.on_call_start(s, T);
  const auto& vk = kernels::vec();
  float *x = s.ws.take(size_t(T * D)), *h = s.ws.take(size_t(T * D)), *y = s.ws.take(size_t(T * D));
  embed_->infer(ids.data(), T, x);
  if (!img_rows.empty()) {
    const auto mark = s.ws.mark();
    const int64_t N = int64_t(img_rows.size()) / vision_->tokens();
    float* v = s.ws.take(size_t(N * vision_->tokens() * D));
    vision_->infer(images_.contiguous().data<float>(), N, v, s.ws);
    for (size_t k = 0; k < img_rows.size(); ++k) std::memcpy(x + img_rows[k] * D, v + int64_t(k) * D, sizeof(float) * size_t(D));
    s.ws.release(mark);
    images_ = Tensor();
  }
  pos_->infer_embed(x, ctx);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = blocks_[l];
    ctx.layer = int64_t(l);
    const auto mark = s.ws.mark();  // each sublayer's scratch is released after it
    b.attn_norm->infer(x, h, T);
    b.attn->infer(h, y, *pos_, *s.layers[l], ctx);
    vk.axpy(1.0f, y, x, T * D);
    s.ws.release(mark);
    b.mlp_norm->infer(x, h, T);
    b.mlp->infer(h, y, ctx);
    vk.axpy(1.0f, y, x, T * D);
    s.ws.release(mark);
    if (s.token_filter && l + 1 < blocks_.size()) T = ctx.T = filter_tokens(s, int64_t(l), x, T, D);
  }
  const int64_t rows = s.all_logits ? T : 1;  // the head only for the last position, unless scoring
  if (s.logits.size() < size_t(rows * V)) s.logits.resize(size_t(rows * V));
  final_norm_->infer(x + (T - rows) * D, h, rows);
  head_.infer(h, rows, s.logits.data());
  s.next_pos += T_in;
  s.tags.clear();
  if (s.on_call_end) s.on_call_end(s);
  return s.logits.data() + (rows - 1) * V;
}

// Every sequence's rows go through the embedding, norms, MLPs and Linears together (one GEMM per
// weight for the whole batch: a decode step of 16 sequences reads the weights once, not 16 times);
// rotation, cells and attention stay per sequence. A vision model or a state with a token filter
// takes the one-sequence path.
void TransformerLM::infer_batch(std::span<InferState* const> states, std::span<const std::span<const int32_t>> ids) {
  if (states.size() != ids.size()) throw std::invalid_argument("infer_batch: one id list per state");
  bool shared = states.size() > 1 && !vision_;
  for (InferState* s : states) shared = shared && !s->token_filter;
  if (!shared) return LanguageModel::infer_batch(states, ids);
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;
  const size_t n = states.size();
  if (dtype_ != DType::f32) throw std::invalid_argument("inference needs an f32 model");
  int64_t N = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < i; ++j)
      if (states[j] == states[i]) throw std::invalid_argument("infer_batch: a state appears twice");
  for (size_t i = 0; i < n; ++i) {
    check_call(*states[i], ids[i], blocks_.size(), V);
    N += int64_t(ids[i].size());
  }
  if (embed_->refresh() && !lm_head_ && !packed_format().empty()) head_.pack(packed_format());
  batch_ws_.reset();
  std::vector<nn::InferCtx> ctx(n);
  std::vector<nn::LayerState*> layer(n);
  std::vector<int64_t> off(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    InferState& s = *states[i];
    const int64_t T = int64_t(ids[i].size());
    s.pos.resize(size_t(T));
    for (int64_t t = 0; t < T; ++t) s.pos[size_t(t)] = int32_t(s.next_pos + t);
    ctx[i] = {T, s.pos.data(), s.tag, s.tags.empty() ? nullptr : s.tags.data(), 0, &batch_ws_,
              s.on_attention ? &s.on_attention : nullptr};
    off[i + 1] = off[i] + T;
    if (s.on_call_start) s.on_call_start(s, T);
  }
  const auto& vk = kernels::vec();
  float *x = batch_ws_.take(size_t(N * D)), *h = batch_ws_.take(size_t(N * D)), *y = batch_ws_.take(size_t(N * D));
  for (size_t i = 0; i < n; ++i) {
    embed_->infer(ids[i].data(), ctx[i].T, x + off[i] * D);
    pos_->infer_embed(x + off[i] * D, ctx[i]);
  }
  nn::InferCtx all{N, nullptr, 0, nullptr, 0, &batch_ws_, nullptr};
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = blocks_[l];
    for (size_t i = 0; i < n; ++i) ctx[i].layer = all.layer = int64_t(l), layer[i] = states[i]->layers[l].get();
    const auto mark = batch_ws_.mark();
    b.attn_norm->infer(x, h, N);
    b.attn->infer_batch(h, y, D, *pos_, layer, ctx);
    vk.axpy(1.0f, y, x, N * D);
    batch_ws_.release(mark);
    b.mlp_norm->infer(x, h, N);
    b.mlp->infer(h, y, all);
    vk.axpy(1.0f, y, x, N * D);
    batch_ws_.release(mark);
  }
  // The head: the last row of each sequence in one GEMM; every row of the scoring states apart.
  std::vector<size_t> last;
  for (size_t i = 0; i < n; ++i) {
    InferState& s = *states[i];
    if (s.logits.size() < size_t(V)) s.logits.resize(size_t(V));
    if (!s.all_logits) {
      std::memcpy(h + int64_t(last.size()) * D, x + (off[i + 1] - 1) * D, sizeof(float) * size_t(D));
      last.push_back(i);
      continue;
    }
    const int64_t T = ctx[i].T;
    if (s.logits.size() < size_t(T * V)) s.logits.resize(size_t(T * V));
    final_norm_->infer(x + off[i] * D, y, T);
    head_.infer(y, T, s.logits.data());
  }
  if (!last.empty()) {
    const int64_t R = int64_t(last.size());
    final_norm_->infer(h, y, R);
    float* lg = batch_ws_.take(size_t(R * V));
    head_.infer(y, R, lg);
    for (int64_t r = 0; r < R; ++r) std::memcpy(states[last[size_t(r)]]->logits.data(), lg + r * V, sizeof(float) * size_t(V));
  }
  for (size_t i = 0; i < n; ++i) {
    InferState& s = *states[i];
    s.next_pos += ctx[i].T;
    s.tags.clear();
    if (s.on_call_end) s.on_call_end(s);
  }
}

void TransformerLM::visit(const nn::ParamVisitor& f) {
  embed_->visit("model.embed_tokens", f);
  if (vision_) vision_->visit("model.vision", f);
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

void TransformerLM::linears(const nn::LinearVisitor& f) {
  if (vision_) vision_->linears("model.vision", f);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    std::string p = "model.layers." + std::to_string(l);
    blocks_[l].attn->linears(p + ".self_attn", f);
    blocks_[l].mlp->linears(p + ".mlp", f);
  }
  f("lm_head", head_);
}

nn::Norm* TransformerLM::norm_feeding(const std::vector<std::string>& group) const {
  std::vector<std::string> g = group;
  std::sort(g.begin(), g.end());
  const bool gated = cfg_.mlp == "swiglu" || cfg_.mlp == "geglu_tanh";
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    if (cfg_.attention == "causal" && g == std::vector<std::string>{p + ".self_attn.k_proj", p + ".self_attn.q_proj", p + ".self_attn.v_proj"})
      return blocks_[l].attn_norm.get();
    if (gated ? g == std::vector<std::string>{p + ".mlp.gate_proj", p + ".mlp.up_proj"} : g == std::vector<std::string>{p + ".mlp.up_proj"})
      return blocks_[l].mlp_norm.get();
  }
  return nullptr;
}

bool TransformerLM::divide_norm_output(const std::vector<std::string>& group, const std::vector<float>& div) {
  nn::Norm* n = norm_feeding(group);
  return n && n->divide_output(div);
}

namespace {
const bool reg_transformer = ModelRegistry::get().add("transformer", [](const ModelConfig& c, const nn::Init& init) {
  return std::make_unique<TransformerLM>(c, init);
});
}  // namespace

}  // namespace clm
