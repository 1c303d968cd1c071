// Compressing a trained model's embedding (SEE's two-stage procedure): copy the body, fit the new
// embedding table to the old one (stage 1), then train with distillation from the original
// (stage 2). Choices: docs/METHODS.md "Compact embeddings".
#pragma once
#include <string>
#include <vector>

#include "models/lm.h"

namespace clm {

// Copies every parameter of `from` whose name and shape match one of `to`'s; the names of `to`'s
// parameters that found no match are returned. Buffers (ids a variant derived: SEE units, hash
// buckets) are copied only with copy_buffers (the same embedding variant and options): otherwise
// `to`'s own, set by bind_vocabulary, stay.
std::vector<std::string> copy_matching_params(LanguageModel& from, LanguageModel& to, bool copy_buffers);

// Stage 1: fits `to`'s embedding table ([vocab, d_model], as its tied head reads it) to `target`
// by mean squared error, AdamW at `lr` for `steps` steps on the embedding's own parameters; with
// `row_weight` (vocab values, mean 1) each row's squared error counts that much (a frequent word's
// row matters more to the loss than a rare one's). Returns the final unweighted MSE per element;
// progress on stderr every `log_every` steps (0: silent).
// With a HiddenFit (the paper's second stage-1 term), each step also adds `weight` times the mean
// squared difference between `to`'s final hidden states and the teacher's on `batch` random windows
// of `seq` tokens from `tokens`, divided by the teacher's mean square (so the weight is scale-free).
// The hidden states run through `to`'s body, which stays frozen: only the embedding moves.
struct HiddenFit {
  LanguageModel* teacher = nullptr;
  const std::vector<int32_t>* tokens = nullptr;
  double weight = 0;
  int64_t batch = 2, seq = 256;
  uint64_t seed = 1;
};
double fit_embedding(LanguageModel& to, const Tensor& target, int64_t steps, double lr, int64_t log_every = 50,
                     const std::vector<float>& row_weight = {}, const HiddenFit& hidden = {});
// Row weights for fit_embedding from the training tokens: (count_v + 1)^power, scaled to mean 1
// (power 0: uniform, 0.5: square root of the frequency, 1: the frequency).
std::vector<float> frequency_weights(const std::vector<int32_t>& tokens, int64_t vocab, double power);

// Stage 2 loss for one batch: (1 - alpha) * cross-entropy to the data + alpha * cross-entropy to the
// teacher's next-token distribution (softmax of its logits, temperature 1).
nn::Var distill_loss(LanguageModel& student, LanguageModel& teacher, const Tensor& x, const Tensor& y, int64_t B,
                     int64_t T, double alpha);

}  // namespace clm
