// The training loop: micro-batches with gradient accumulation, AdamW with warmup + cosine, global-norm
// clipping, periodic evaluation, checkpoints, JSONL metrics and a live progress line.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "train/checkpoint.h"
#include <nlohmann/json.hpp>

namespace clm {

struct TrainConfig {
  int64_t batch_size = 16, seq_len = 128, grad_accum = 1, steps = 1000, warmup = 100;
  double lr = 1e-3, min_lr_ratio = 0.1, clip = 1.0;
  std::string optimizer = "adamw";  // adamw | sgd
  AdamWConfig adam;
  // cosine: warmup, then cosine to lr · min_lr_ratio. step: warmup, then lr · lr_decay^k, k = 0
  // before decay_start epochs and 1 + floor((epoch − decay_start) / decay_every) after (optim.h lr_step_at).
  std::string schedule = "cosine";
  double lr_decay = 0.5, decay_start = 4, decay_every = 1;
  int64_t eval_every = 200;  // 0 = only at the end
  int64_t ckpt_every = 0;    // 0 = at each evaluation and at the end
  int64_t keep_checkpoints = 2;  // step folders kept (the newest); 0 = every one
  int64_t log_every = 10;
  double time_budget_s = 0;  // > 0: stop (and checkpoint) once this much wall time has passed
  uint64_t seed = 1337;
  int threads = 0;
  // next: next-token prediction. mlm: masked LM (BERT-style, for bidirectional attention): each
  // token is replaced by the mask id (the last row of the model's vocabulary) with probability
  // mask_prob, and the loss is taken on those tokens only.
  std::string objective = "next";
  double mask_prob = 0.15;
  void validate() const;  // throws std::invalid_argument naming the flag
};
void to_json(nlohmann::json& j, const TrainConfig& c);
void from_json(const nlohmann::json& j, TrainConfig& c);

struct TrainResult {
  int64_t steps = 0;
  double last_loss = 0, val_loss = 0;
  double tokens_per_s = 0;
  std::vector<double> losses;  // per optimizer step, for tests
};

struct TrainHooks {
  std::function<double(LanguageModel&)> eval;  // mean validation loss per token
  // The training loss of one micro-batch (x, y: i32 [B*T]); default: cross-entropy of the logits.
  std::function<nn::Var(LanguageModel&, const Tensor& x, const Tensor& y, int64_t B, int64_t T)> loss;
  // Micro-batches from elsewhere than the token stream (a rendered task): x, y i32 [B*T] for
  // (step, micro); deterministic in them, so that a resumed run sees the same batches. It may
  // hand the model more inputs (images) for the forward that follows.
  std::function<void(LanguageModel&, int64_t step, int64_t micro, Tensor& x, Tensor& y)> batch;
  // Data parallelism (train/data_parallel.h): this worker takes lanes [rank B, (rank + 1) B) of a
  // world·B-lane loader, and `reduce` averages the gradients and the loss over the workers after
  // the micro-batches, before clipping. Tokens per step count every worker's.
  int rank = 0, world = 1;
  std::function<void(const std::vector<ParamRef>& params, double& loss)> reduce;
  bool progress = false;                       // live progress line on stderr
  bool quiet = false;
  nlohmann::json run_info;  // stored in every checkpoint's trainer_state.json as "run" (e.g. the corpus)
};

// Trains `model` from step 0, or from `resume_step_dir` (a checkpoint written by this function).
// Writes checkpoints and metrics.jsonl under `run_dir` (empty: no files). Throws on a non-finite loss
// without touching the last good checkpoint.
TrainResult train(LanguageModel& model, const Tokenizer& tok, const std::vector<int32_t>& train_stream,
                  const TrainConfig& cfg, const std::string& run_dir, const std::string& resume_step_dir,
                  const TrainHooks& hooks);

}  // namespace clm
