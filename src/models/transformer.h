// TransformerLM: a config-driven decoder-only transformer (pre-norm, residual), assembled from the
// slots in nn/. Parameter names follow Hugging Face's Llama layout.
#pragma once
#include <memory>
#include <vector>

#include "nn/module.h"

namespace clm {

// KV cache for incremental decoding: one LayerKV per layer.
struct KVCache {
  std::vector<nn::LayerKV> layers;
  int64_t len() const { return layers.empty() ? 0 : layers[0].len; }
  int64_t capacity() const { return layers.empty() ? 0 : layers[0].k.dim(1); }
  size_t bytes() const;
  void reset();
  void truncate(int64_t n);  // keep the first n positions (n <= len)
};

class TransformerLM {
 public:
  // Builds and initialises from `seed`; `dtype` f32 (training, inference) or f64 (checks).
  TransformerLM(const ModelConfig& cfg, uint64_t seed = 0, DType dtype = DType::f32);

  // ids i32 [B*T] (row-major [B, T]) -> logits [B*T, vocab].
  // With a cache: appends to it (positions continue from cache->len()); grad must be off.
  nn::Var forward(const Tensor& ids, int64_t B, int64_t T, KVCache* cache = nullptr);
  // Generation's prefill: logits [B, vocab] of each sequence's last position only (the head's
  // GEMM over the other positions is skipped). Grad must be off.
  nn::Var forward_last(const Tensor& ids, int64_t B, int64_t T, KVCache* cache);

  KVCache make_cache(int64_t B, int64_t capacity) const;

  void visit(const nn::ParamVisitor& f);
  // Every parameter's value by its Hugging Face name, in visit order (shares storage): what the
  // exporters (safetensors, llama2.c, GGUF) take.
  std::vector<std::pair<std::string, Tensor>> named_weights();
  int64_t num_params();
  const ModelConfig& config() const { return cfg_; }
  DType dtype() const { return dtype_; }

 private:
  nn::Var run(const Tensor& ids, int64_t B, int64_t T, KVCache* cache, bool last_only);
  struct Block {
    std::unique_ptr<nn::Norm> attn_norm, mlp_norm;
    std::unique_ptr<nn::Attention> attn;
    std::unique_ptr<nn::Mlp> mlp;
  };
  ModelConfig cfg_;
  DType dtype_;
  std::unique_ptr<nn::TokenEmbedding> embed_;
  std::unique_ptr<nn::PositionEncoding> pos_;
  std::vector<Block> blocks_;
  std::unique_ptr<nn::Norm> final_norm_;
  nn::Var lm_head_;  // null when tied
};

}  // namespace clm
