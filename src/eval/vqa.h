// Accuracy of a vision-language model on the shapes task (data/shapes.h), optionally under a KV
// eviction policy: each item prefills the image and the question, the policy compresses the cache,
// then the "?" and the answer are decoded greedily from what is left. The answer must match word
// for word (with its <eos>). Reports the fraction of KV cells kept when answering.
#pragma once
#include <map>
#include <string>

#include "data/shapes.h"
#include "infer/kv_policy.h"
#include "models/lm.h"

namespace clm {

struct VqaResult {
  int64_t items = 0, correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_kind;  // kind -> (correct, items)
  double kv_frac_sum = 0;    // cells in use / cells of a full cache, when the answer starts
  double kv_bytes_sum = 0;   // bytes of the cells in use then
  double kv_end_frac_sum = 0;  // the same after the last answer token
  int64_t prompt_tokens = 0, decoded = 0;
  double prefill_s = 0, decode_s = 0;
  KVStats kv;  // summed over items
  double accuracy() const { return items ? double(correct) / double(items) : 0; }
  double kv_frac() const { return items ? kv_frac_sum / double(items) : 0; }
  double kv_end_frac() const { return items ? kv_end_frac_sum / double(items) : 0; }
};

// items from the test split, drawn from `seed`; kind "" mixes the five short kinds, "describe"
// asks for the whole scene (long generation). policy "" = no policy (the full cache).
VqaResult vqa_eval(LanguageModel& model, const ShapesTask& task, int64_t items, uint64_t seed, const std::string& kind,
                   const std::string& policy = "", const nlohmann::json& opts = nullptr, const KVBudget& budget = {});

// Cells in use over cells a full cache of `tokens` would hold, over every KV layer and head.
double kv_fraction(const InferState& s, int64_t tokens);
size_t kv_used_bytes(const InferState& s);

}  // namespace clm
