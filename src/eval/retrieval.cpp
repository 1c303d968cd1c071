#include "eval/retrieval.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_set>

#include "autograd/autograd.h"
#include "eval/perplexity.h"
#include "util/rng.h"

namespace clm {

std::vector<RetrievalPoint> retrieval(LanguageModel& model, const std::vector<int32_t>& stream, int64_t len, int64_t trials,
                                      const std::vector<double>& depths, int64_t batch, uint64_t seed) {
  if (len < 8) throw std::invalid_argument("retrieval: window of at least 8 tokens");
  if (int64_t(stream.size()) < len + 1) throw std::invalid_argument("retrieval: the text is shorter than one window");
  if (trials <= 0 || batch <= 0) throw std::invalid_argument("retrieval: trials and batch must be > 0");
  const int64_t V = model.config().vocab_size;
  std::vector<int32_t> words(stream.begin(), stream.end());  // candidate keys and values: the text's own tokens
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  Rng rng(seed);
  auto pick = [&] { return words[size_t(rng.next() % words.size())]; };
  std::vector<RetrievalPoint> out;
  ag::NoGrad ng;
  for (double d : depths) {
    if (!(d >= 0 && d <= 1)) throw std::invalid_argument("retrieval: depths are fractions in [0, 1]");
    RetrievalPoint pt{d};
    for (int64_t t0 = 0; t0 < trials; t0 += batch) {
      const int64_t B = std::min(batch, trials - t0);
      std::vector<int32_t> ids(static_cast<size_t>(B * len));
      std::vector<int32_t> want(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) {
        const int64_t start = int64_t(rng.next() % uint64_t(int64_t(stream.size()) - len));
        int32_t* w = ids.data() + b * len;
        std::copy(stream.begin() + start, stream.begin() + start + len, w);
        std::unordered_set<int32_t> seen(w, w + len);
        int32_t key = pick();
        for (int tries = 0; seen.count(key) && tries < 1000; ++tries) key = pick();
        const int32_t value = pick();
        const int64_t at = std::min<int64_t>(int64_t(std::llround(d * double(len - 3))), len - 3);
        w[at] = key, w[at + 1] = value, w[len - 1] = key;
        want[size_t(b)] = value;
      }
      nn::Var logits = model.forward(Tensor::from(ids, {B * len}), B, len);
      const Tensor host = logits->value.cpu();  // a model on the GPU: its logits come back
      for (int64_t b = 0; b < B; ++b) {
        const float* l = host.data<float>() + ((b + 1) * len - 1) * V;
        const int32_t y = want[size_t(b)];
        pt.hits += std::max_element(l, l + V) - l == y;
        pt.logp_sum += double(l[y]) - log_sum_exp(l, V);
        ++pt.trials;
      }
    }
    out.push_back(pt);
  }
  return out;
}

}  // namespace clm
