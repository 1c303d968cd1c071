// Synthetic long-range retrieval: can a model copy a word pair planted far back in its context?
// Each trial takes a window of `len` tokens of real text, plants a key word X (one that does not
// occur in the window) followed by a value word Y at depth d (a fraction of the window), and ends
// the window with X: the model should continue with Y. Accuracy = argmax equals Y; also the mean
// log-probability of Y. Induction-style copying is what small LMs learn first, so this measures
// whether a position encoding lets attention reach the pair at lengths beyond training.
#pragma once
#include <cstdint>
#include <vector>

#include "models/lm.h"

namespace clm {

struct RetrievalPoint {
  double depth;  // where the pair sits, as a fraction of the window (0 = its start)
  int64_t trials = 0, hits = 0;
  double logp_sum = 0;
  double accuracy() const { return trials ? double(hits) / double(trials) : 0; }
};

// stream: real text (e.g. the test split), at least len + 1 tokens; trials per depth, in batches.
std::vector<RetrievalPoint> retrieval(LanguageModel& model, const std::vector<int32_t>& stream, int64_t len, int64_t trials,
                                      const std::vector<double>& depths, int64_t batch = 4, uint64_t seed = 1);

}  // namespace clm
