// GGUF (v3) export of Llama-family models for llama.cpp / ollama ("llama" architecture, or "qwen2"
// for models with q/k/v biases), and a strict reader used to check what was written. Tensors are
// written in llama.cpp's names and layout: ggml's dims are innermost first; for "llama", Q/K rows
// are permuted from rotate-half to interleaved pairs when the model uses Hugging Face's rotary
// layout. The tokenizer is written as llama.cpp's "llama" (SentencePiece-style) or "gpt2"
// (byte-level BPE) vocabulary.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/config.h"
#include "tensor/tensor.h"
#include "tokenizers/tokenizer.h"

namespace clm {

// dtype: f32, f16 or bf16 for 2-D weights (norms stay f32, as llama.cpp expects).
void write_gguf(const std::string& path, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                const Tokenizer& tok, DType dtype, const std::string& name = "compactlm");

struct GgufFile {
  nlohmann::json kv;  // scalars, strings and arrays as JSON
  struct TensorInfo {
    std::vector<uint64_t> ne;  // ggml order (innermost first)
    uint32_t type;
    Tensor data;               // as stored (f32 / f16 / bf16), shape = reversed ne
  };
  std::map<std::string, TensorInfo> tensors;
};
GgufFile read_gguf(const std::string& path);  // throws "'path': problem"

}  // namespace clm
