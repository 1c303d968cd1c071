// Recurrent language models: TSLM (tensor-space LM, a multiplicative recurrent tensor network)
// and the LSTM baseline. arch "tslm" | "lstm"; hidden size = d_model = the embedding size.
//   tslm  h_t = (x_t U^T + b1) * (h_{t-1} W^T + b2)      (no nonlinearity; b2 starts at 1)
//   lstm  PyTorch's cell (gates i, f, g, o)
// Layers are stacked; dropout (config `dropout`) on the embedding output and on every layer's
// output while training. With carry_state (the trainer's next-token batches: its rows are
// contiguous lanes of the stream) the final states are carried into the next batch (truncated
// BPTT); evaluation starts each window from zero. Choices: docs/METHODS.md "Recurrent models".
#include <memory>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "models/lm.h"

namespace clm {
namespace {

struct RecurrentState : nn::LayerState {
  std::vector<float> h, c;
  int64_t len = 0;
  explicit RecurrentState(int64_t H) : h(size_t(H), 0.0f), c(size_t(H), 0.0f) {}
  size_t bytes() const override { return (h.size() + c.size()) * sizeof(float); }
  void reset() override {
    std::fill(h.begin(), h.end(), 0.0f);
    std::fill(c.begin(), c.end(), 0.0f);
    len = 0;
  }
  bool truncate(int64_t pos) override { return pos >= len; }  // a recurrent state cannot forget
};

class RecurrentLM final : public LanguageModel {
 public:
  RecurrentLM(const ModelConfig& cfg, nn::Init init) : cfg_(cfg), dtype_(init.dtype), lstm_(cfg.arch == "lstm"), rng_(Rng(init.rng).next() ^ 0x64726f70ull) {
    cfg_.validate();
    refuse_transformer_options();
    const int64_t D = cfg_.d_model, G = lstm_ ? 4 * D : D;
    embed_ = nn::EmbeddingRegistry::get().create("embedding", cfg_.embedding, cfg_.embedding_opt, cfg_, init);
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      Layer L;
      L.in = nn::Linear(D, G, true, init, cfg_.init_std);
      L.rec = nn::Linear(D, G, false, init, cfg_.init_std);
      if (lstm_) {  // forget-gate bias 1, others 0
        L.bias = init.constant({G}, 0.0);
        if (init.random)
          ag::dispatch_float(L.bias->value.dtype(), [&]<class T>() {
            for (int64_t j = D; j < 2 * D; ++j) L.bias->value.data<T>()[j] = T(1);
          });
      } else {
        L.bias = init.constant({G}, 1.0);  // b2 = 1: h_t starts as the input projection (h_0 = 0 would stay 0 with b2 = 0)
      }
      layers_.push_back(std::move(L));
    }
    if (!cfg_.tie_embeddings) lm_head_ = init.normal({cfg_.vocab_size, D}, cfg_.init_std);
    head_bias_ = init.constant({cfg_.vocab_size}, 0.0);
    head_ = nn::Linear::wrap(lm_head_ ? lm_head_ : embed_->output_weight());
    head_.b = head_bias_;
  }

  const ModelConfig& config() const override { return cfg_; }
  DType dtype() const override { return dtype_; }
  void bind_vocabulary(const std::vector<std::string>& words) override { embed_->bind_vocabulary(words); }
  nn::TokenEmbedding* embedding() override { return embed_.get(); }
  void carry_state(bool on) override {
    carry_ = on;
    carry_h_.clear();
  }

  nn::Var forward(const Tensor& ids, int64_t B, int64_t T) override {
    const nn::Var h = hidden(ids, B, T);  // first: it builds this step's embedding table, which a tied head reads
    return ag::linear(h, lm_head_ ? lm_head_ : embed_->forward_output_weight(), head_bias_);
  }
  nn::Var hidden(const Tensor& ids, int64_t B, int64_t T) override {
    if (ids.numel() != B * T) throw std::invalid_argument("forward: ids size != B*T");
    const bool train = ag::grad_enabled() && cfg_.dropout > 0;
    const bool carry = carry_ && ag::grad_enabled();  // training on lanes: truncated BPTT across batches
    const int64_t D = cfg_.d_model;
    if (carry && (carry_h_.size() != layers_.size() || carry_h_[0].dim(0) != B || carry_h_[0].device() != device())) reset_carry(B);
    nn::Var x = embed_->forward(ids);
    if (train) x = ag::dropout(x, cfg_.dropout, rng_);
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      nn::Var a = ag::linear(x, L.in.w, L.in.b);
      Tensor h0 = carry ? carry_h_[l] : Tensor::zeros({B, D}, dtype_, device());
      Tensor hl, cl;
      if (lstm_) {
        Tensor c0 = carry ? carry_c_[l] : Tensor::zeros({B, D}, dtype_, device());
        x = ag::lstm_scan(a, L.rec.w, L.bias, h0, c0, B, T, &hl, &cl);
      } else {
        x = ag::tslm_scan(a, L.rec.w, L.bias, h0, B, T, &hl);
      }
      if (carry) carry_h_[l] = hl, carry_c_[l] = lstm_ ? cl : Tensor();
      if (train) x = ag::dropout(x, cfg_.dropout, rng_);
    }
    return x;
  }

  InferState make_state(int64_t capacity) override {
    if (capacity <= 0) throw std::invalid_argument("inference state: capacity must be > 0");
    InferState s;
    for (size_t l = 0; l < layers_.size(); ++l) s.layers.push_back(std::make_unique<RecurrentState>(cfg_.d_model));
    s.logits.resize(size_t(cfg_.vocab_size));
    s.pos.reserve(size_t(capacity));
    return s;
  }
  size_t state_bytes_per_token() const override { return 0; }

  const float* infer(InferState& s, std::span<const int32_t> ids) override {
    const int64_t T = int64_t(ids.size()), D = cfg_.d_model, V = cfg_.vocab_size, G = lstm_ ? 4 * D : D;
    if (T == 0) throw std::invalid_argument("infer: no tokens");
    if (dtype_ != DType::f32) throw std::invalid_argument("inference needs an f32 model");
    if (s.layers.size() != layers_.size()) throw std::invalid_argument("infer: state made for another model");
    for (int32_t id : ids)
      if (id < 0 || id >= V) throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(V));
    if (embed_->refresh() && !lm_head_ && !packed_format().empty()) head_.pack(packed_format());
    s.ws.reset();
    const auto& vk = kernels::vec();
    float *x = s.ws.take(size_t(T * D)), *a = s.ws.take(size_t(T * G)), *z = s.ws.take(size_t(G));
    embed_->infer(ids.data(), T, x);
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      auto& st = static_cast<RecurrentState&>(*s.layers[l]);
      L.in.infer(x, T, a);  // the input projection of every new token at once
      const float* bias = L.bias->value.data<float>();
      for (int64_t t = 0; t < T; ++t) {
        L.rec.infer(st.h.data(), 1, z);
        vk.axpy(1.0f, bias, z, G);
        float* at = a + t * G;
        if (lstm_) {
          for (int64_t j = 0; j < D; ++j) {
            auto sg = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
            const float i = sg(at[j] + z[j]), f = sg(at[D + j] + z[D + j]), g = std::tanh(at[2 * D + j] + z[2 * D + j]),
                        o = sg(at[3 * D + j] + z[3 * D + j]);
            st.c[size_t(j)] = f * st.c[size_t(j)] + i * g;
            st.h[size_t(j)] = o * std::tanh(st.c[size_t(j)]);
          }
        } else {
          for (int64_t j = 0; j < D; ++j) st.h[size_t(j)] = at[j] * z[j];
        }
        std::copy(st.h.begin(), st.h.end(), x + t * D);  // this layer's output: the next layer's input
      }
      st.len += T;
    }
    const int64_t rows = s.all_logits ? T : 1;
    if (s.logits.size() < size_t(rows * V)) s.logits.resize(size_t(rows * V));
    head_.infer(x + (T - rows) * D, rows, s.logits.data());
    s.next_pos += T;
    return s.logits.data() + (rows - 1) * V;
  }

  void visit(const nn::ParamVisitor& f) override {
    embed_->visit("model.embed_tokens", f);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string p = "model.layers." + std::to_string(l);
      f(p + ".in_proj.weight", layers_[l].in.w, nn::ParamKind::weight);
      f(p + ".in_proj.bias", layers_[l].in.b, nn::ParamKind::bias);
      f(p + ".rec_proj.weight", layers_[l].rec.w, nn::ParamKind::weight);
      f(p + ".rec_proj.bias", layers_[l].bias, nn::ParamKind::bias);
    }
    if (lm_head_) f("lm_head.weight", lm_head_, nn::ParamKind::weight);
    f("lm_head.bias", head_bias_, nn::ParamKind::bias);
  }
  void linears(const nn::LinearVisitor& f) override {
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string p = "model.layers." + std::to_string(l);
      f(p + ".in_proj", layers_[l].in);
      f(p + ".rec_proj", layers_[l].rec);
    }
    f("lm_head", head_);
  }

 private:
  struct Layer {
    nn::Linear in, rec;  // input projection (with bias b1 / the LSTM's input bias), recurrent product
    nn::Var bias;        // b2 (TSLM) / the LSTM's recurrent bias, [G]
  };
  void reset_carry(int64_t B) {
    carry_h_.assign(layers_.size(), Tensor());
    carry_c_.assign(layers_.size(), Tensor());
    for (size_t l = 0; l < layers_.size(); ++l) {
      carry_h_[l] = Tensor::zeros({B, cfg_.d_model}, dtype_, device());
      carry_c_[l] = Tensor::zeros({B, cfg_.d_model}, dtype_, device());
    }
  }
  void refuse_transformer_options() const {
    const ModelConfig d;
    auto refuse = [&](const char* flag) {
      throw std::invalid_argument("arch '" + cfg_.arch + "' is recurrent: " + flag + " is a transformer option");
    };
    auto set = [](const nlohmann::json& o) { return !(o.is_null() || o.empty()); };
    if (cfg_.attention != d.attention || set(cfg_.attention_opt)) refuse("--attention");
    if (cfg_.position != d.position || set(cfg_.position_opt)) refuse("--position");
    if (cfg_.mlp != d.mlp || set(cfg_.mlp_opt)) refuse("--mlp");
    if (cfg_.norm != d.norm || set(cfg_.norm_opt)) refuse("--norm");
    if (cfg_.attn_bias || cfg_.mlp_bias) refuse("--attn-bias");
  }

  ModelConfig cfg_;
  DType dtype_;
  bool lstm_, carry_ = false;
  Rng rng_;  // dropout masks
  std::unique_ptr<nn::TokenEmbedding> embed_;
  std::vector<Layer> layers_;
  nn::Var lm_head_, head_bias_;
  nn::Linear head_;
  std::vector<Tensor> carry_h_, carry_c_;  // training: the states the next batch starts from
};

const bool reg_tslm = ModelRegistry::get().add("tslm", [](const ModelConfig& c, const nn::Init& init) {
  return std::make_unique<RecurrentLM>(c, init);
});
const bool reg_lstm = ModelRegistry::get().add("lstm", [](const ModelConfig& c, const nn::Init& init) {
  return std::make_unique<RecurrentLM>(c, init);
});

}  // namespace
}  // namespace clm
