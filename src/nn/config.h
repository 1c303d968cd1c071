// ModelConfig: everything that defines a model's shape and which variant fills each slot.
// One name per concept: these keys are the config.json keys, the CLI flags and the docs' names.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace clm {

struct ModelConfig {
  std::string arch = "transformer";
  int64_t vocab_size = 0;
  int64_t d_model = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  // GQA when < n_heads
  int64_t d_ff = 344;
  int64_t head_dim = 0;       // 0: d_model / n_heads (Gemma-7B sets it explicitly)
  int64_t max_seq_len = 256;  // table size for learned positions; default context for tools
  // Slots, each filled by a variant registered by name.
  std::string attention = "causal";
  std::string position = "rope";     // rope | learned | none
  std::string mlp = "swiglu";        // swiglu | geglu_tanh | gelu | gelu_tanh
  std::string norm = "rmsnorm";      // rmsnorm | rmsnorm_1p (weights stored as w-1, Gemma) | layernorm
  std::string embedding = "standard";
  std::string vision = "none";       // none | patch (images spliced into the sequence: nn/vision.cpp)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool rope_interleaved = false;  // false: Hugging Face rotate-half pairs; true: llama2.c/GGUF pairs
  bool tie_embeddings = false;
  bool attn_bias = false;
  bool mlp_bias = false;
  double init_std = 0.02;
  double embed_scale = 1.0;  // token embeddings are multiplied by this (Gemma: sqrt(d_model))
  double dropout = 0.0;      // training only: on the embedding output and each sublayer / layer output
  // Each slot variant's own options (nn/options.h), a JSON object; empty: the variant's defaults.
  nlohmann::json attention_opt, position_opt, mlp_opt, norm_opt, embedding_opt, vision_opt;

  // Attention told to see the whole sequence (attention_opt causal=false): a masked LM, which
  // neither generates nor has a next-token perplexity.
  bool bidirectional() const { return attention_opt.is_object() && attention_opt.value("causal", true) == false; }
  // Any token sees later tokens (bidirectional, or multi-linear attention's split-concat
  // reproduction mode): its next-token "perplexity" is not that of a language model.
  bool sees_future() const {
    return bidirectional() || (attention_opt.is_object() && attention_opt.value("mode", "") == "split_concat");
  }
  // A model that runs at one sequence length only (split-concat): that length, else 0.
  int64_t fixed_length() const {
    return attention_opt.is_object() && attention_opt.value("mode", "") == "split_concat" ? max_seq_len : 0;
  }
  int64_t hd() const { return head_dim > 0 ? head_dim : (n_heads ? d_model / n_heads : 0); }
  // A lower bound on the parameter count of any variant of this shape, -1 on overflow: the V x d
  // table (or output head), a d x d map per layer and, in a transformer, two d x d_ff maps and one
  // d x (n_heads * head_dim) projection per layer. Checked against memory before anything is allocated.
  int64_t min_params() const;
  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
};

void to_json(nlohmann::json& j, const ModelConfig& c);
void from_json(const nlohmann::json& j, ModelConfig& c);  // unknown keys are an error

}  // namespace clm
