// DecodeSession: the fast path for batch-1 decoding of Llama-family models.
// Prefill runs the model's batched forward (GEMMs) into a preallocated KV cache; each decode step
// then reads every weight once through multithreaded matrix-vector kernels with no allocation per
// token. The session packs its own copy of the weights into panels (kernels/cpu/panel.h) in f32,
// or in bf16 (halving the bytes per token); the model's weights stay for prefill. Models whose
// slots are outside the fast path (non-rotary positions, other attention / MLP variants) are
// reported by supported() and served by the generic path in generate.h.
#pragma once
#include <string>
#include <vector>

#include "kernels/cpu/panel.h"
#include "models/transformer.h"

namespace clm {

class DecodeSession {
 public:
  // weight_dtype: f32 or bf16. capacity: maximum positions (prompt + generated).
  DecodeSession(TransformerLM& model, DType weight_dtype, int64_t capacity);
  static bool supported(const ModelConfig& c, std::string* why = nullptr);

  // Appends tokens; returns the logits [vocab] after the last one (valid until the next call).
  const float* prefill(const std::vector<int32_t>& ids);
  const float* step(int32_t token);
  int64_t len() const { return cache_.len(); }
  int64_t capacity() const { return cache_.capacity(); }
  size_t weight_bytes() const { return weight_bytes_; }  // bytes read per decoded token (weights)
  void reset() { cache_.reset(); }
  void truncate(int64_t n) { cache_.truncate(n); }  // forget positions n.. (reuse a shared prefix)

 private:
  using Mat = kernels::PanelMatrix;
  struct Layer {
    const float *attn_norm, *mlp_norm;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
    Mat q, k, v, o, gate, up, down;
  };
  Mat pack(const Tensor& w);
  void rmsnorm(float* out, const float* x, const float* w) const;

  TransformerLM& model_;
  ModelConfig c_;
  DType wdt_;
  KVCache cache_;
  std::vector<Layer> layers_;
  const float *embed_, *final_norm_;
  Mat head_;
  Tensor rope_cos_, rope_sin_;  // [capacity, hd/2]
  std::vector<float> x_, xb_, q_, k_, v_, o_, att_, g_, u_, logits_;  // preallocated activations
  size_t weight_bytes_ = 0;
  double norm_offset_ = 0;
};

}  // namespace clm
