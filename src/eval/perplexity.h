// Perplexity of a token stream under a model, with an explicit protocol:
//   windows of T tokens starting every `stride` tokens; each window predicts its next T tokens, and
//   only targets not scored by an earlier window count. stride == T: non-overlapping windows (each
//   window starts without context); stride < T: sliding windows (every scored token sees at least
//   T - stride tokens of context, except in the first window). Every token after the first is scored
//   exactly once.
#pragma once
#include <string>
#include <vector>

#include "models/lm.h"

namespace clm {

struct PerplexityResult {
  double nll_sum = 0;
  int64_t tokens = 0;   // scored targets
  int64_t windows = 0;
  double mean_nll() const { return tokens ? nll_sum / double(tokens) : 0; }
  double ppl() const;
  std::string protocol;  // human-readable description
};

// log Σ_v exp(l[v]) over V logits: shifted by their maximum, the differences and the sum in double.
// The log-normaliser every scorer of one row of logits uses (log p(y) = l[y] - log_sum_exp).
double log_sum_exp(const float* l, int64_t V);

// max_tokens > 0 stops after about that many scored tokens (quick validation during training).
// through_infer: score each window with model.infer (one window at a time, every Linear through its
// packed weight format: quantized models) instead of the batched forward.
PerplexityResult perplexity(LanguageModel& model, const std::vector<int32_t>& stream, int64_t T, int64_t stride,
                            int64_t batch, int64_t max_tokens = 0, bool through_infer = false);

// Masked-LM loss (mean negative log-likelihood of the masked tokens): non-overlapping windows of T
// tokens, each token replaced by the mask id (vocab_size - 1) with probability p, from a fixed
// seed, so models compare on the same masks. max_tokens > 0 stops after about that many tokens.
PerplexityResult masked_lm_loss(LanguageModel& model, const std::vector<int32_t>& stream, int64_t T, int64_t batch, double p,
                                int64_t max_tokens = 0, uint64_t seed = 1);

}  // namespace clm
