// KVCells: the inference state of softmax attention. Per KV head, an array of cells; each cell
// holds one token's key and value with its absolute position and a tag (0 text, 1 image, ...).
// Attention masks by position, not by cell index, so cells can be removed (eviction) and the
// rest compacted while new tokens continue at their true positions. Heads may hold different
// numbers of cells (per-head budgets).
//
// A cell can also be hidden (HAE's "recycle bin"): it stays in place, its true position kept
// (true_pos), but attention sees it at kHidden, beyond every query, so no query attends to it
// and the decode kernel skips it. Unhiding restores it exactly; compaction drops it for good.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/module.h"

namespace clm::nn {

class KVCells final : public LayerState {
 public:
  KVCells(int64_t n_kv_heads, int64_t head_dim, int64_t capacity);

  int64_t heads() const { return heads_; }
  int64_t head_dim() const { return hd_; }
  int64_t capacity() const { return cap_; }
  int64_t len(int64_t h) const { return len_[size_t(h)]; }
  int64_t max_len() const;
  // Head h's cells: keys / values [capacity, hd], positions and tags [capacity]; the first len(h) are in use.
  float* k(int64_t h) { return k_.data() + h * cap_ * hd_; }
  float* v(int64_t h) { return v_.data() + h * cap_ * hd_; }
  const float* k(int64_t h) const { return k_.data() + h * cap_ * hd_; }
  const float* v(int64_t h) const { return v_.data() + h * cap_ * hd_; }
  const int32_t* pos(int64_t h) const { return pos_.data() + h * cap_; }        // as attention sees them
  const int32_t* true_pos(int64_t h) const { return orig_.data() + h * cap_; }  // hidden cells too
  const uint8_t* tag(int64_t h) const { return tag_.data() + h * cap_; }
  static constexpr int32_t kHidden = 0x7fffffff;

  // Appends T tokens to every head: k, v [T, heads*hd] (a projection's layout), tags[t] per token
  // (or `tag` for all when tags is null). Throws std::length_error when a head has no room
  // (nothing is written then).
  void append(const float* k, const float* v, int64_t T, const int32_t* pos, uint8_t tag, const uint8_t* tags = nullptr);
  // Keeps head h's cells whose keep[i] is non-zero (i < len(h)), in order; returns the new length.
  int64_t compact(int64_t h, const uint8_t* keep);
  // Removes head h's cell i by moving the last cell into its place: O(head_dim), order not kept
  // (attention does not depend on it). For evicting a few cells per decoded token.
  void remove(int64_t h, int64_t i);
  void hide(int64_t h, int64_t i) { pos_[size_t(h * cap_ + i)] = kHidden; }
  void unhide(int64_t h, int64_t i) { pos_[size_t(h * cap_ + i)] = orig_[size_t(h * cap_ + i)]; }
  bool hidden(int64_t h, int64_t i) const { return pos_[size_t(h * cap_ + i)] == kHidden; }

  size_t bytes() const override;       // allocated (keys, values, positions, tags)
  size_t used_bytes() const;           // cells in use
  void reset() override;
  bool truncate(int64_t pos) override;  // removes every cell at position >= pos

 private:
  int64_t heads_, hd_, cap_;
  std::vector<float> k_, v_;
  std::vector<int32_t> pos_, orig_;
  std::vector<uint8_t> tag_;
  std::vector<int64_t> len_;
};

// Softmax attention of T tokens' query heads over the cells: query head h reads KV head
// h / (H / heads()); q, out [T, H * head_dim]; the position encoding's ALiBi slopes, if any, bias
// the scores. Scores are computed 64 queries at a time, never as a [T x cells] matrix. Reports
// every row to ctx.on_attention.
void attend(const KVCells& kv, const float* q, float* out, int64_t H, float scale, const PositionEncoding& pe, const InferCtx& ctx);

}  // namespace clm::nn
