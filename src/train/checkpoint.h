// Checkpoints. A run folder holds
//   step-000100/  model.safetensors  config.json  tokenizer.json  optimizer.safetensors  trainer_state.json
//   latest        (names the newest complete step folder)
//   metrics.jsonl
// A step folder is written under a temporary name, every file fsynced, then renamed into place; only
// then is `latest` switched (atomic rename). A crash at any point leaves the previous checkpoint intact.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "models/io.h"
#include "tokenizers/tokenizer.h"
#include "train/optim.h"

namespace clm {

// Full training checkpoint, as run_dir/step-NNNNNNNN; the keep_last newest step folders are kept (0: all).
void save_checkpoint(const std::string& run_dir, int64_t step, LanguageModel& model, const Tokenizer& tok,
                     const Optimizer& opt, const nlohmann::json& trainer_state, int keep_last = 2);
nlohmann::json load_trainer_state(const std::string& step_dir);
void load_optimizer(const std::string& step_dir, Optimizer& opt, int64_t steps);

}  // namespace clm
