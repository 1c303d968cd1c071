// llama2.c checkpoints (.bin): a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size -- negative for an untied classifier --, seq_len), then float32 weights in llama2.c's
// order, layer-stacked. The importer checks the file size against the header before reading, and
// names the tensors as TransformerLM does (Hugging Face layout). llama2.c rotates interleaved pairs.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "nn/config.h"
#include "tensor/tensor.h"

namespace clm {

struct Llama2cCheckpoint {
  ModelConfig config;
  std::vector<std::pair<std::string, Tensor>> tensors;
};

Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path);
// Permutes the rows of a q/k projection [heads*hd, cols] from Hugging Face's rotate-half layout
// (pairs i, i+hd/2) to interleaved pairs (2i, 2i+1): the layout llama2.c and GGUF expect.
Tensor rotate_half_rows_to_interleaved(const Tensor& w, int64_t heads, int64_t hd);
// Its inverse: interleaved pairs back to rotate-half (a llama2.c / GGUF model written for transformers).
Tensor interleaved_rows_to_rotate_half(const Tensor& w, int64_t heads, int64_t hd);

// True for the models both llama2.c and GGUF's "llama" architecture express: rmsnorm, swiglu, rope,
// no biases, head_dim = d_model / n_heads, no embedding scale.
bool is_plain_llama(const ModelConfig& c);
// The named tensor as contiguous f32; throws "'path': missing tensor 'name'" if absent.
Tensor named_f32_tensor(const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& name,
                        const std::string& path);
// The same, with q/k rows in interleaved-pair order (the layout llama2.c
// and GGUF use); throws "'path': missing tensor" if absent.
Tensor interleaved_llama_tensor(const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                                const std::string& name, const std::string& path);

// Writes tensors named as above (f32) in llama2.c's layout; the config must be llama2.c-expressible
// (rmsnorm, swiglu, rope, no biases); rotate-half q/k rows are permuted. Atomic.
void write_llama2c_checkpoint(const std::string& path, const ModelConfig& c,
                              const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace clm
