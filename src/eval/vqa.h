// Accuracy of a vision-language model on the shapes task (data/shapes.h), optionally under a KV
// eviction policy: each item prefills the image and the question, the policy compresses the cache,
// then the "?" and the answer are decoded greedily from what is left. The answer must match word
// for word (with its <eos>). Reports the fraction of KV cells kept when answering.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

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
  // image cells kept when the answer starts, as a fraction of the image tokens that show part of an
  // object and of those that show only background (averaged over KV layers, heads and items)
  double obj_kept_sum = 0, bg_kept_sum = 0;
  KVStats kv;  // summed over items
  double accuracy() const { return items ? double(correct) / double(items) : 0; }
  double kv_frac() const { return items ? kv_frac_sum / double(items) : 0; }
  double kv_end_frac() const { return items ? kv_end_frac_sum / double(items) : 0; }
  double obj_kept() const { return items ? obj_kept_sum / double(items) : 0; }
  double bg_kept() const { return items ? bg_kept_sum / double(items) : 0; }
};

// items from the test split, drawn from `seed`; kind "" mixes the five short kinds, "describe"
// asks for the whole scene (long generation). policy "" = no policy (the full cache);
// kObjectsCeiling = not a policy but the test bed's ceiling: after the prompt it removes
// ⌊(1 − budget)·image tokens⌋ image cells that show only background (read from the pixels; never
// position 0; in a fixed pseudo-random order), every object patch and the text kept.
inline constexpr const char* kObjectsCeiling = "objects";
VqaResult vqa_eval(LanguageModel& model, const ShapesTask& task, int64_t items, uint64_t seed, const std::string& kind,
                   const std::string& policy = "", const nlohmann::json& opts = nullptr, const KVBudget& budget = {});

// Cells in use over cells a full cache of `tokens` would hold, over every KV layer and head.
double kv_fraction(const InferState& s, int64_t tokens);
size_t kv_used_bytes(const InferState& s);
// Which image tokens show part of an object: a patch with a pixel off the background's 0.1 ± noise
// (data/shapes.cpp). pixels [S, S, 3], patches in row-major order, image_tokens a square.
std::vector<uint8_t> object_patches(const std::vector<float>& pixels, int64_t S, int64_t image_tokens, double noise);
// Visible cells at positions [0, n) over all KV layers and heads, split by mask: (kept of mask 1
// / mask 1 count, kept of mask 0 / mask 0 count), each averaged over the (layer, head) pairs.
std::pair<double, double> kept_by_mask(const InferState& s, const std::vector<uint8_t>& mask);

}  // namespace clm
