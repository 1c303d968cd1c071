// Zero-shot task evaluation with lm-evaluation-harness's protocols: each example becomes one
// log-likelihood request per choice (context, continuation), requests are scored in batches
// through LanguageModel::infer_batch, and the choice with the highest log-likelihood (acc) or the
// highest log-likelihood per character (acc_norm) is compared with the gold answer.
// The tasks' data are never part of the project: load_task reads them from a folder laid out as
// ../shared/data/tasks (SOURCES.md there gives every file's origin and protocol).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/lm.h"
#include "tokenizers/tokenizer.h"

namespace clm {

struct TaskRequest {
  std::string context, continuation;  // scored: log p(continuation | context)
};

struct TaskExample {
  std::vector<TaskRequest> choices;  // one request per choice (LAMBADA: one, its target)
  std::vector<int64_t> chars;        // acc_norm's divisor per choice: the choice's length in characters
  int gold = 0;
};

struct Task {
  std::string name;
  std::vector<TaskExample> examples;
  bool greedy = false;    // LAMBADA: acc = the target is the greedy continuation; also a perplexity
  bool has_norm = false;  // acc_norm reported (lm-eval's length-normalised accuracy)
};

// The names load_task knows, in the order the literature reports them.
const std::vector<std::string>& task_names();
// Reads task `name` from `dir` (the folder holding one subfolder per task). limit > 0 keeps the
// first `limit` examples. A missing or malformed file is a one-line error naming it.
Task load_task(const std::string& name, const std::string& dir, int64_t limit = 0);
// lm-eval's HellaSwag text cleaning: strip, " [title]" -> ". ", drop "[...]" tags, "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);

struct ScoreOptions {
  int64_t batch = 8;      // requests per infer_batch call
  int64_t max_len = 0;    // tokens the model sees (0: its max_seq_len); longer requests keep the end
  bool bos = false;       // prepend BOS to every request (lm-eval's HF default is no BOS)
};

struct Loglik {
  double logprob = 0;     // sum over the continuation's tokens
  bool greedy = false;    // every continuation token is the argmax
  int64_t tokens = 0;     // continuation tokens
};

// lm-eval's request encoding: trailing spaces of the context move to the continuation; the
// continuation's tokens are encode(context + continuation) after encode(context)'s length; an
// empty context becomes the BOS (or EOS) token.
void encode_request(const Tokenizer& tok, const TaskRequest& r, bool bos, std::vector<int32_t>& context,
                    std::vector<int32_t>& continuation);

// Scores every request; requests that share a prefix with the previous one in the same batch lane
// reuse its cached keys and values. progress(done, total) is called after each batch.
std::vector<Loglik> score_requests(LanguageModel& model, const Tokenizer& tok, const std::vector<TaskRequest>& reqs,
                                   const ScoreOptions& o, const std::function<void(int64_t, int64_t)>& progress = nullptr);

struct TaskResult {
  std::string task;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0;
  double acc_norm = -1, acc_norm_stderr = 0;  // -1: not defined for the task
  double ppl = -1;                            // LAMBADA: exp(-mean target log-likelihood)
  std::vector<double> logprobs;               // every request's log-likelihood, in order
};

TaskResult evaluate_task(LanguageModel& model, const Tokenizer& tok, const Task& task, const ScoreOptions& o,
                         const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace clm
