// Sampling and incremental generation with a KV cache.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/threads.h"
#include "infer/kv_policy.h"
#include "models/lm.h"
#include "util/rng.h"

namespace clm {

struct SamplerConfig {
  double temperature = 0.8;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerConfig c) : cfg_(c), rng_(c.seed) {}
  int32_t sample(const float* logits, int64_t V);

 private:
  SamplerConfig cfg_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<double> p_;  // reused: no allocation per sampled token
};

struct GenerateConfig {
  int64_t max_new_tokens = 128;
  int32_t eos_id = -1;  // stop when sampled (not emitted); -1 = never
  std::vector<int32_t> stop_ids = {};  // more ids that stop generation (chat turn ends)
  // Weight format the Linears are packed into for inference (kernels/format.h: f32, bf16, ...);
  // "" keeps the dense master weights (BLAS for every product). The model is packed once, by the
  // Generator, unless it already is in this format.
  std::string weights = "f32";
  int64_t vocab_limit = 0;  // sample only ids below this (the tokenizer's size, when the model has padding rows); 0 = all
  // KV-cache eviction (infer/kv_policy.h): "" or "full" keeps every cell
  std::string kv_policy = "";
  nlohmann::json kv_opt = nullptr;
  KVBudget kv_budget = {};
};

struct GenerateStats {
  int64_t prompt_tokens = 0, new_tokens = 0;
  int64_t reused_tokens = 0;  // prompt tokens whose keys/values were already cached (Generator)
  double prefill_s = 0, decode_s = 0;
  std::string path;  // the weight format used ("f32", "bf16", ...; "dense" for unpacked weights)
  size_t state_bytes = 0;  // KV cells in use (or the constant state) at the end
  KVStats kv;             // with a KV policy
};

// A model with an inference state that outlives one generation: each call prefills only the part
// of the prompt after the longest prefix already cached (a chat's earlier turns), then decodes.
// Prefill and decoding both run LanguageModel::infer (one code path, batched or one token).
class Generator {
 public:
  Generator(LanguageModel& model, const GenerateConfig& g, int64_t capacity);
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, Sampler& sampler,
                                const std::function<void(int32_t)>& on_token = nullptr, GenerateStats* stats = nullptr);
  int64_t capacity() const { return capacity_; }
  const std::vector<int32_t>& cached() const { return cached_; }  // the tokens whose keys/values are cached
  const std::string& path() const { return path_; }
  InferState& state() { return state_; }  // e.g. to set an attention observer
  KVPolicy* policy() { return policy_.get(); }

 private:
  const float* feed(std::span<const int32_t> ids);  // appends ids to the cache; logits after the last
  LanguageModel& model_;
  GenerateConfig g_;
  int64_t capacity_;
  InferState state_;
  std::vector<int32_t> cached_;
  std::string path_;
  std::unique_ptr<KVPolicy> policy_;
  kernels::ThreadGovernor threads_;  // decoded tokens are its units (kernels/threads.h)
};

// A prompt that, with max_new tokens to come, does not fit `ctx` positions: refused (throws
// std::invalid_argument naming the counts and the two ways out), or with truncate, cut to its last
// tokens (a leading BOS, `keep_first`, stays) and *note set to what was dropped. ctx <= max_new is
// refused either way. Checked before any prefill, so an oversized prompt costs nothing.
std::vector<int32_t> fit_context(std::vector<int32_t> ids, int64_t max_new, int64_t ctx, bool truncate, int32_t keep_first,
                                 std::string* note);

// One-shot: prefills the prompt through a fresh cache, then decodes one token at a time. on_token is called for
// each new token as soon as it is sampled (streaming). Returns the new tokens.
std::vector<int32_t> generate(LanguageModel& model, const std::vector<int32_t>& prompt, const GenerateConfig& g,
                              Sampler& sampler, const std::function<void(int32_t)>& on_token = nullptr,
                              GenerateStats* stats = nullptr);

}  // namespace clm
