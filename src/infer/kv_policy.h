// KV-cache eviction: which cells of a softmax-attention cache survive when it may hold fewer
// tokens than the sequence has. A policy wraps every LanguageModel::infer call (before / after);
// it may watch attention rows (InferState::on_attention), drop tokens from the hidden states
// between layers (InferState::token_filter), and then evicts cells to its budget:
//
//   full        keeps everything (the reference)
//   streaming   attention sinks + the most recent tokens (StreamingLLM)
//   h2o         accumulated attention ("heavy hitters") + a recent window (H2O)
//   tova        the last query's attention decides (TOVA)
//   snapkv      prompt compression: the last `window` queries' attention, pooled, top-k per head
//   pyramidkv   snapkv with per-layer budgets shaped as a pyramid (more cells low, fewer high)
//   fastv       marked (image) tokens ranked by the last query at layer K, the lowest leave the
//               hidden states of every later layer (FastV)
//   hae         HAE: dual-attention pruning of marked tokens at layer K (global and individual
//               scores both low), the keep-set broadcast to every layer; while decoding,
//               modality-weighted accumulated attention with a recycle bin of hidden cells that
//               can be restored, compacted in one batch when full
//
// Positions are never renumbered: evicted cells leave no hole (attention masks by position) and new
// tokens continue at the sequence's true length. Choices the papers leave open: docs/METHODS.md.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/lm.h"
#include "nn/kv_cache.h"

namespace clm {

// How many cells each (layer, KV head) may keep: a fraction of the tokens seen so far, or a fixed
// number. Policies that compress a prompt apply it after calls of several tokens.
struct KVBudget {
  double ratio = 1.0;  // (0, 1]
  int64_t tokens = 0;  // > 0: a fixed number of cells instead of the ratio
  int64_t cells(int64_t seen) const;
  void check() const;  // std::invalid_argument naming the bad value
};

struct KVStats {
  int64_t evicted = 0;   // cells removed for good
  int64_t hidden = 0;    // cells moved to a recycle bin (HAE)
  int64_t restored = 0;  // cells brought back from the bin
  int64_t pruned = 0;    // tokens dropped from the hidden states between layers (FastV, HAE)
  double seconds = 0;    // the policy's own bookkeeping after each call (selection, compaction)
  KVStats& operator+=(const KVStats& o) {
    evicted += o.evicted, hidden += o.hidden, restored += o.restored, pruned += o.pruned, seconds += o.seconds;
    return *this;
  }
};

class KVPolicy {
 public:
  KVPolicy(std::string name, const KVBudget& b);
  virtual ~KVPolicy() = default;
  const std::string& name() const { return name_; }
  const KVBudget& budget() const { return budget_; }

  // Binds to a fresh (or reset) state: installs the observer and token filter the policy needs
  // and the state's call hooks, so that every LanguageModel::infer on it runs before / after.
  // Throws std::invalid_argument when no layer of the state is a KV cache.
  void attach(InferState& s);
  // Around each call of T tokens (the hooks call them; tests on hand-made caches call them directly).
  void before(InferState& s, int64_t T);
  void after(InferState& s);

  KVStats stats;

 protected:
  struct Head {               // per (layer, KV head), aligned with the cells
    std::vector<float> score;  // the policy's running score of each cell
  };
  virtual bool wants_rows() const { return false; }
  virtual bool wants_filter() const { return false; }
  virtual void observe(const nn::AttnEvent&) {}
  virtual bool filter(int64_t /*layer*/, int64_t /*T*/, const int32_t* /*pos*/, uint8_t* /*keep*/) { return false; }
  virtual void on_before() {}
  virtual void bind() {}  // after attach found the state's KV layers
  virtual int64_t watched_layer() const { return -1; }  // a layer the policy needs (checked at attach)
  virtual void evict(InferState& s) = 0;

  // Head (l, h)'s scores, grown to the cells it has (new cells score 0).
  Head& head(int64_t l, int64_t h, int64_t n);
  // Keeps the `budget` best-scoring cells of head (l, h), never evicting the first `sinks` positions
  // or the `recent` newest (both capped to the budget); ties evict the older cell. Returns cells evicted.
  // keep_order = false lets a few removals fill holes from the end (O(head_dim) each).
  int64_t keep_best(int64_t l, int64_t h, int64_t budget, int64_t sinks, int64_t recent, const float* score, bool keep_order = false);
  // Removes the cells of head (l, h) whose keep is 0, with their scores.
  void drop(int64_t l, int64_t h, const uint8_t* keep, bool keep_order = true);
  void zero_scores();  // every head's scores to 0 (policies that score each call afresh)

  std::string name_;
  KVBudget budget_;
  std::vector<nn::KVCells*> layers_;         // null where a layer's state is not a KV cache
  std::vector<std::vector<Head>> heads_;     // [layer][KV head]
  int64_t n_heads_ = 1;                      // query heads (for head averages)
  int32_t first_pos_ = 0, last_pos_ = 0;     // positions of the current call
  int64_t T_ = 0, seen_ = 0;
  std::vector<uint8_t> marked_;              // [T]: the call's tokens with a non-zero tag
  std::vector<uint8_t> keep_;                // scratch
  std::vector<int64_t> idx_;                 // scratch
};

// name: one of the policies above; opts: its options (JSON object or null), checked.
std::unique_ptr<KVPolicy> make_kv_policy(const std::string& name, const nlohmann::json& opts, const KVBudget& b);
std::vector<std::string> kv_policy_names();
std::string describe_kv_policies();  // names and options, for --help

}  // namespace clm
