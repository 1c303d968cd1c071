// Reading and writing models: CompactLM folders (model.safetensors + config.json [+ tokenizer.json])
// and, through the importers in formats/, checkpoints trained elsewhere.
#pragma once
#include <memory>
#include <set>
#include <string>

#include "models/lm.h"
#include "tokenizers/tokenizer.h"

namespace clm {

// Model weights + config + tokenizer. Atomic per file.
void save_model_files(const std::string& dir, LanguageModel& model, const Tokenizer* tok);

struct LoadedModel {
  std::unique_ptr<LanguageModel> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null if none was found
  std::string dir;                       // what was loaded (folder or file)
  std::string format;                    // "compactlm" | "llama2c" | "hf-<model_type>"
  nlohmann::json quant;                  // a quantized checkpoint's quant.json (null otherwise)
};

// `path` is a CompactLM step folder, a run folder (its `latest` is used), a Hugging Face model
// folder (formats/hf.h) or a llama2.c .bin checkpoint. `tokenizer_path` (optional) overrides the tokenizer: tokenizer.json or a llama2.c
// tokenizer .bin. Every tensor is validated against the config. Weights are allocated, never
// initialised, before they are read.
// position_opt (optional) overrides options of the model's position encoding (evaluating a rope model
// with scaling=yarn, a 3d-rpe model with scale=4).
LoadedModel load_model(const std::string& path, DType dtype = DType::f32, const std::string& tokenizer_path = "",
                       const nlohmann::json& position_opt = nullptr);

// Loading for inference: every Linear's weight (and a tied embedding) stays in the checkpoint's
// dtype as a view of the memory-mapped file (no copy, no conversion); other parameters (norms,
// biases, an untied embedding) become f32. The Linears are then packed into `format` (none when
// empty: `clm info` reads only what it prints) and the mapped pages they were packed from are
// handed back to the OS. Such a model runs infer(), not forward(): train and evaluate through load_model.
LoadedModel load_model_for_inference(const std::string& path, const std::string& format, const std::string& tokenizer_path = "",
                                     const nlohmann::json& position_opt = nullptr);
std::string resolve_checkpoint(const std::string& path);  // run folder -> step folder
// A tokenizer file or folder: llama2.c .bin, SentencePiece .model, tokenizer.json (CompactLM's or
// Hugging Face's), or a folder holding tokenizer.json, tokenizer.model or GPT-2's encoder.json + vocab.bpe.
std::unique_ptr<Tokenizer> load_any_tokenizer(const std::string& path);

// Copies named tensors into the model's parameters; every parameter must be present with its
// shape, and no tensor may be left over. `file` names the source in errors.
// keep_views: Linear weights take the file's tensors themselves (any float dtype) instead of a copy.
// stored_packed: parameters that are not in `tensors` because they are stored packed elsewhere
// (a quantized checkpoint's Linears): they are emptied instead.
void assign_weights(LanguageModel& m, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& file,
                    bool keep_views = false, const std::set<std::string>& stored_packed = {});

// A quantized checkpoint (quant/checkpoint.h writes it): a CompactLM folder with quant.json (the
// method, and per quantized Linear its stored format's meta) and quant.safetensors (their codes and
// scales). The loader restores those Linears packed (WeightFormat::store / StoredFormats) with
// their dense weights empty: such a model runs infer(), not forward() or training.
constexpr const char* kQuantJson = "quant.json";
// For commands that need dense weights (train --resume / --init-from, convert): a one-line refusal.
void refuse_quantized(const LoadedModel& lm, const std::string& command);
constexpr const char* kQuantTensors = "quant.safetensors";

}  // namespace clm
