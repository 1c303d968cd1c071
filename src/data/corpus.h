// Corpora and batching.
// A corpus is three text splits (train / valid / test). Batching lays the tokenised split out as
// B contiguous lanes (the PTB "batchify" layout) and walks them T tokens at a time, so consecutive
// batches continue each lane's text.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "util/rng.h"

namespace clm {

struct TextSplits {
  std::string name;  // where it came from, for logs
  std::string train, valid, test;
};

// A folder holding exactly one file whose name contains each of "train", "valid", "test"
// (PTB's ptb.train.txt..., WikiText's train.txt / wiki.train.tokens ...).
TextSplits load_text_dir(const std::string& dir);
TextSplits load_text_files(const std::string& train, const std::string& valid, const std::string& test);

// The embedded default: the English text of Debian's `fortunes` package (one fortune per
// "%"-terminated record, files in name order). Record i goes to valid if i % 20 == 0, to test if
// i % 20 == 1, else to train; records keep their "%" separator line.
TextSplits fortunes_corpus(const std::string& dir = "/usr/share/games/fortunes");

struct LoaderState {
  int64_t pos = 0;    // offset inside each lane
  int64_t epoch = 0;
};

// Masked-LM inputs and targets from a batch x [N]: each token becomes `mask_id` with probability p
// (its target is the token), others keep their id and get target -1 (not scored). At least one
// token is masked.
void mask_tokens(Tensor& x, Tensor& y, int32_t mask_id, double p, Rng& rng);

class StreamLoader {
 public:
  // Throws if the stream cannot fill one batch of B x (T+1).
  StreamLoader(const std::vector<int32_t>& stream, int64_t B, int64_t T, const std::string& what = "train split");
  // x, y: i32 [B*T]; y is x shifted by one token.
  void next(Tensor& x, Tensor& y);
  LoaderState state() const { return st_; }
  void set_state(const LoaderState& s) { st_ = s; }
  int64_t batches_per_epoch() const { return (lane_ - 1) / T_; }

 private:
  const std::vector<int32_t>& s_;
  int64_t B_, T_, lane_;
  LoaderState st_;
};

}  // namespace clm
