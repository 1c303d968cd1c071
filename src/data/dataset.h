// A tokenised corpus: the tokenizer (fitted on train, or given) and the three token streams.
#pragma once
#include <memory>

#include "data/corpus.h"
#include "tokenizers/tokenizer.h"

namespace clm {

struct Dataset {
  std::string name;
  std::shared_ptr<Tokenizer> tok;
  std::vector<int32_t> train, valid, test;
  const std::vector<int32_t>& split(const std::string& name) const;  // "train" | "valid" | "test"
};

// tokenizer_kind: "word" (fitted on train, max_vocab 0 = all words) or "byte". If `existing` is
// given it is used instead (resuming, evaluating a trained model).
Dataset make_dataset(const TextSplits& text, const std::string& tokenizer_kind, int64_t max_vocab = 0,
                     std::shared_ptr<Tokenizer> existing = nullptr);

}  // namespace clm
