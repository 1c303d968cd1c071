// Hugging Face model folders: config.json + model.safetensors, or a sharded
// model.safetensors.index.json. Families: llama, mistral, qwen2 (q/k/v bias), phi3 (fused qkv and
// gate_up projections, split here), gemma (sqrt(d) embedding scale, GELU-tanh gate, RMSNorm with
// 1 + w). Weights in f32, bf16 or f16 are converted to the model's dtype when assigned.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "nn/config.h"
#include "tensor/tensor.h"

namespace clm {

struct HfCheckpoint {
  ModelConfig config;
  std::string model_type;
  std::vector<std::pair<std::string, Tensor>> tensors;  // CompactLM (= HF Llama) names
};

bool is_hf_folder(const std::string& dir);  // config.json with a "model_type"
ModelConfig hf_config_to_model_config(const std::string& config_json, const std::string& path_for_errors,
                                      std::string* model_type = nullptr);
HfCheckpoint read_hf_checkpoint(const std::string& dir);

// The first feature of c that transformers' Llama cannot express ("" if none): Llama is RMSNorm,
// SwiGLU, rotary, causal softmax attention, a plain embedding table; biases and head_dim are its options.
std::string hf_llama_unsupported(const ModelConfig& c);
// Writes tensors named as TransformerLM names them (the HF Llama names) as a Hugging Face "llama"
// folder: config.json (transformers 4 and 5 keys) and model.safetensors in f32, q/k rows in the
// rotate-half order (permuted back from a llama2.c / GGUF model's interleaved pairs). Each file atomic.
void write_hf_folder(const std::string& dir, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace clm
