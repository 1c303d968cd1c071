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

#include "models/transformer.h"
#include "tokenizers/tokenizer.h"
#include "train/optim.h"

namespace clm {

// Model weights + config + tokenizer (what eval / generate need). Atomic per file.
void save_model_files(const std::string& dir, TransformerLM& model, const Tokenizer* tok);

struct LoadedModel {
  std::unique_ptr<TransformerLM> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null if the folder has none
  std::string dir;
};
// `path` is a step folder or a run folder (then its `latest` is used). Validates every tensor.
LoadedModel load_model(const std::string& path, DType dtype = DType::f32);
std::string resolve_checkpoint(const std::string& path);  // run folder -> step folder

// Full training checkpoint.
void save_checkpoint(const std::string& run_dir, int64_t step, TransformerLM& model, const Tokenizer& tok,
                     const AdamW& opt, const nlohmann::json& trainer_state, int keep_last = 2);
nlohmann::json load_trainer_state(const std::string& step_dir);
void load_optimizer(const std::string& step_dir, AdamW& opt, int64_t steps);

}  // namespace clm
