// TransformerLM: a config-driven decoder-only transformer (pre-norm, residual), assembled from the
// slots in nn/. Parameter names follow Hugging Face's Llama layout. Registered as arch "transformer".
#pragma once
#include <memory>
#include <vector>

#include "models/lm.h"

namespace clm {

class TransformerLM final : public LanguageModel {
 public:
  // Builds and initialises from `seed`; `dtype` f32 (training, inference) or f64 (checks).
  TransformerLM(const ModelConfig& cfg, uint64_t seed = 0, DType dtype = DType::f32);
  TransformerLM(const ModelConfig& cfg, nn::Init init);

  nn::Var forward(const Tensor& ids, int64_t B, int64_t T) override;
  nn::Var hidden(const Tensor& ids, int64_t B, int64_t T) override;
  InferState make_state(int64_t capacity) override;
  const float* infer(InferState& state, std::span<const int32_t> ids) override;
  void infer_batch(std::span<InferState* const> states, std::span<const std::span<const int32_t>> ids) override;
  size_t state_bytes_per_token() const override;

  void visit(const nn::ParamVisitor& f) override;
  void bind_vocabulary(const std::vector<std::string>& words) override { embed_->bind_vocabulary(words); }
  nn::TokenEmbedding* embedding() override { return embed_.get(); }
  // softmax attention's q/k/v read the input norm's output, a gated MLP's gate/up (or a plain MLP's
  // up) the post-attention norm's, and nothing else does
  bool input_is_norm_output(const std::vector<std::string>& group) const override { return norm_feeding(group) != nullptr; }
  bool divide_norm_output(const std::vector<std::string>& group, const std::vector<float>& div) override;
  nn::PositionEncoding& position() { return *pos_; }  // e.g. probed for tables by the GPU decoder
  void set_images(const Tensor& images) override;
  int64_t image_tokens() const override { return vision_ ? vision_->tokens() : 0; }
  void linears(const nn::LinearVisitor& f) override;
  const ModelConfig& config() const override { return cfg_; }
  DType dtype() const override { return dtype_; }

 private:
  struct Block {
    std::unique_ptr<nn::Norm> attn_norm, mlp_norm;
    std::unique_ptr<nn::Attention> attn;
    std::unique_ptr<nn::Mlp> mlp;
  };
  ModelConfig cfg_;
  DType dtype_;
  Rng dropout_rng_;
  std::unique_ptr<nn::TokenEmbedding> embed_;
  std::unique_ptr<nn::VisionEncoder> vision_;  // null without images
  Tensor images_;                              // for the next call, consumed by it
  std::vector<int64_t> image_rows(const int32_t* ids, int64_t n);  // placeholder rows, checked against images_
  nn::Norm* norm_feeding(const std::vector<std::string>& group) const;  // the norm whose output only `group` reads, or null
  std::unique_ptr<nn::PositionEncoding> pos_;
  std::vector<Block> blocks_;
  std::unique_ptr<nn::Norm> final_norm_;
  nn::Var lm_head_;  // null when tied
  nn::Workspace batch_ws_;  // infer_batch's scratch (each state's own workspace serves infer)
  nn::Linear head_;  // the output projection for inference: lm_head_ or the tied embedding
};

}  // namespace clm
