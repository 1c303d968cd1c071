// Shared wiring of the clm subcommands: one file per subcommand registers its flags and the
// function that runs it; what is not argument wiring lives in the library.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "infer/generate.h"
#include "models/io.h"
#include "train/trainer.h"
#include "nn/config.h"
#include "quant/calibrate.h"
#include "quant/methods.h"
#include "tokenizers/tokenizer.h"
#include "util/memory.h"

namespace clm::cli {

// A subcommand: its CLI11 app and what runs when it was given (returns the exit code).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

void add_train(CLI::App& app, Commands& cmds);
void add_eval(CLI::App& app, Commands& cmds);
void add_generate(CLI::App& app, Commands& cmds);  // generate and chat
void add_serve(CLI::App& app, Commands& cmds);
void add_info(CLI::App& app, Commands& cmds);
void add_tokenize(CLI::App& app, Commands& cmds);
void add_convert(CLI::App& app, Commands& cmds);
void add_plot(CLI::App& app, Commands& cmds);
void add_calibrate(CLI::App& app, Commands& cmds);
void add_quantize(CLI::App& app, Commands& cmds);
void add_units(CLI::App& app, Commands& cmds);
void add_kvbench(CLI::App& app, Commands& cmds);
// clm train --task shapes: a vision-language model on the rendered shapes task (cli/task.cpp).
int run_train_task(CLI::App* c, const std::string& task, ModelConfig mcfg, TrainConfig tcfg, std::string out, const std::string& resume,
                   double describe_frac);

// --data / --train/--valid/--test. Recorded in a run's checkpoints so that --resume reads the same corpus.
struct DataArgs {
  std::string dir, train, valid, test;
  TextSplits load() const;
  void add(CLI::App* c);
  bool given() const { return !dir.empty() || !train.empty() || !valid.empty() || !test.empty(); }
  nlohmann::json to_json() const;
  static DataArgs from_json(const nlohmann::json& j);
};

// --quant METHOD, --quant-opt k=v, --calib FILE: quantize a loaded model in memory (clm eval,
// generate, chat).
// Calibration progress: a rewritten line on a terminal, a line per tenth in a log.
void calibration_progress(int64_t window, int64_t windows);
// Runs `windows` windows of `window` tokens of the calibration text (--data's split or --file)
// through the model with observers on every Linear (clm calibrate, clm quantize); *what names the text.
quant::Calibration calibrate_on(LanguageModel& model, const std::shared_ptr<Tokenizer>& tok, const DataArgs& data,
                                const std::string& split, const std::string& file, int64_t windows, int64_t window, std::string* what);

struct QuantArgs {
  std::string method, calib;
  std::vector<std::string> opts;
  void add(CLI::App* c);
  bool given() const { return !method.empty(); }
  // Quantizes the model's Linears (nothing when no method was given); prints a summary to stderr.
  // cal: statistics already at hand (else --calib's file, if given).
  quant::QuantResult apply(LanguageModel& model, const quant::Calibration* cal = nullptr) const;
};

// --position-opt k=v at evaluation / decoding time: overrides options of the model's position
// encoding (scaling=yarn, scale=4 on a rope model; scale=4 on a 3d-rpe model).
struct PositionOverride {
  nlohmann::json opts;
  void add(CLI::App* c);
};

// --kv-policy NAME --kv-budget X | --kv-budget-tokens N --kv-opt k=v: KV-cache eviction while
// decoding (infer/kv_policy.h).
struct KVArgs {
  std::string policy;
  double ratio = 1.0;
  int64_t tokens = 0;
  std::vector<std::string> opts;
  void add(CLI::App* c);
  // Checks the flags (a budget outside (0, 1], an unknown policy or option: std::invalid_argument
  // naming the flag) and sets them on g.
  void apply(GenerateConfig& g) const;
};

// Model flags: one per ModelConfig key (dashes for underscores); the slots' variants and options
// come from the registries.
void add_model_flags(CLI::App* c, ModelConfig& m);

// --weights: a registered weight format, or generic (dense). Samples only the tokenizer's ids.
void check_weights(const std::string& weights);
GenerateConfig decode_config(const Tokenizer& tok, int64_t max_new, int32_t eos, const std::string& weights);
// A model for decoding (generate, chat, serve): the flags checked, the weights packed in `weights`
// (or dense for "generic"), then quantized; refuses masked LMs and a missing tokenizer.
// device "cuda": the model runs through the GPU decoder (infer/gpu_decoder.h) with weights bf16 or
// f32 (the dense matrices; W8A8 INT8 Linears from --quant or a quantized folder run as INT8);
// --kv-policy is refused there, before anything is loaded.
LoadedModel load_for_decoding(const std::string& model, const std::string& tok, const std::string& weights, int threads,
                              const QuantArgs& quant, const PositionOverride& position, const KVArgs& kv,
                              const std::string& device = "cpu");
void check_sampling(const SamplerConfig& s, int64_t max_new);

// The context a generation may use: --ctx (default: the model's max_seq_len) and what to do with
// a prompt that does not fit (--overflow refuse | truncate).
struct ContextArgs {
  int64_t ctx = 0;
  std::string overflow = "refuse";
  void add(CLI::App* app);
  int64_t resolve(const LanguageModel& m) const;  // checks the flags against the model
};
// A --ctx (0: the model's max_seq_len, at most `cap` when cap > 0) checked against the model's
// learned positions and against the memory `sequences` states of that length take.
int64_t resolve_ctx(int64_t ctx, const LanguageModel& m, int64_t cap = 0, int64_t sequences = 1);

// Encodes the prompt, fits it to the context (ctx > 0), streams the continuation to stdout and
// the speed to stderr.
void stream_generate(LanguageModel& model, const Tokenizer& tok, const std::string& prompt, int64_t max_new,
                     bool stop_at_eos, const SamplerConfig& scfg, const std::string& weights = "f32", const KVArgs* kv = nullptr,
                     int64_t ctx = 0, bool truncate = false);

// The token stream of a text file (--file, BOS first when the tokenizer has one) or of a corpus
// split (--data and --split); `what` names it.
std::vector<int32_t> token_stream(const std::shared_ptr<Tokenizer>& tok, const DataArgs& data, const std::string& split, const std::string& file,
                                  std::string& what);

}  // namespace clm::cli
