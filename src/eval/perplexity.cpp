#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/ops.h"
#include "data/corpus.h"
#include "kernels/cpu/vec.h"

namespace clm {

double PerplexityResult::ppl() const { return std::exp(mean_nll()); }

double log_sum_exp(const float* l, int64_t V) {
  const double mx = *std::max_element(l, l + V);
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(double(l[v]) - mx);
  return std::log(z) + mx;
}

PerplexityResult perplexity(LanguageModel& model, const std::vector<int32_t>& stream, int64_t T, int64_t stride,
                            int64_t batch, int64_t max_tokens, bool through_infer) {
  if (T <= 0 || stride <= 0 || stride > T || batch <= 0)
    throw std::invalid_argument("perplexity: need 0 < stride <= window and batch > 0");
  int64_t n = (int64_t)stream.size();
  if (n < 2) throw std::invalid_argument("perplexity: stream has fewer than 2 tokens");
  if (model.config().fixed_length() > 0) {  // a fixed-length model scores whole windows only
    if (T != model.config().fixed_length() || stride != T)
      throw std::invalid_argument("this model runs at its fixed length " + std::to_string(model.config().fixed_length()) +
                                  " only: evaluate with that window and no overlap");
    if (n > T + 1) n = (n - 1) / T * T + 1;
  }
  ag::NoGrad ng;
  // Window w covers inputs [s, s+len) with s = w*stride (the last one is clipped to the stream end),
  // and scores targets at positions > scored_end.
  struct Win {
    int64_t start, len, first_scored;  // first_scored: index inside the window
  };
  std::vector<Win> wins;
  int64_t scored_end = 0;  // targets with stream index <= scored_end are done (index 0 is never a target)
  for (int64_t s = 0; scored_end < n - 1; s += stride) {
    int64_t len = std::min(T, n - 1 - s);
    if (len <= 0) break;
    int64_t last_target = s + len;  // stream index of the last target
    wins.push_back({s, len, scored_end - s});
    scored_end = last_target;
    if (max_tokens > 0 && scored_end >= max_tokens) break;
  }
  // Windows per forward: at most `batch`, and few enough that the logits stay under 256 MiB. A
  // large vocabulary (Qwen: 151,936) would otherwise make each batch's logits a fresh multi-GB
  // allocation, page-faulted in every time (measured: 2/3 of the run was system time).
  const int64_t V = model.config().vocab_size;
  batch = std::max<int64_t>(1, std::min<int64_t>(batch, (int64_t(256) << 20) / std::max<int64_t>(1, T * V * 4)));
  PerplexityResult r;
  if (through_infer) {
    InferState st = model.make_state(T);
    st.all_logits = true;
    std::vector<float> scratch(static_cast<size_t>(V));
    for (const Win& w : wins) {
      st.reset();
      model.infer(st, std::span<const int32_t>(stream.data() + w.start, size_t(w.len)));
      const auto& vk = kernels::vec();
      for (int64_t t = std::max<int64_t>(0, w.first_scored); t < w.len; ++t) {
        const float* l = st.logits.data() + t * V;
        const float mx = vk.max(l, V);
        const double se = vk.exp_sum(l, mx, scratch.data(), V);
        r.nll_sum += double(mx) + std::log(se) - double(l[stream[size_t(w.start + t + 1)]]);
        ++r.tokens;
      }
      ++r.windows;
    }
  }
  for (size_t w0 = 0; !through_infer && w0 < wins.size(); w0 += batch) {
    const size_t w1 = std::min(wins.size(), w0 + size_t(batch));
    // Group windows of equal length (all but possibly the last have length T).
    for (size_t a = w0; a < w1;) {
      size_t b = a;
      while (b < w1 && wins[b].len == wins[a].len) ++b;
      const int64_t B = int64_t(b - a), L = wins[a].len;
      Tensor x = Tensor::empty({B * L}, DType::i32), y = Tensor::empty({B * L}, DType::i32);
      for (int64_t i = 0; i < B; ++i) {
        const Win& w = wins[a + i];
        for (int64_t t = 0; t < L; ++t) {
          x.data<int32_t>()[i * L + t] = stream[w.start + t];
          y.data<int32_t>()[i * L + t] = t >= w.first_scored ? stream[w.start + t + 1] : -1;
        }
      }
      nn::Var logits = model.forward(x, B, L);
      nn::Var loss = ag::cross_entropy(logits, y);
      int64_t cnt = 0;
      for (int64_t i = 0; i < B * L; ++i) cnt += y.data<int32_t>()[i] >= 0;
      r.nll_sum += loss->value.item() * double(cnt);
      r.tokens += cnt;
      r.windows += B;
      a = b;
    }
  }
  std::ostringstream p;
  p << (stride == T ? "non-overlapping windows of " : "sliding windows of ") << T << " tokens";
  if (stride != T) p << ", stride " << stride;
  if (through_infer) p << ", through infer";
  p << "; " << r.tokens << " tokens scored in " << r.windows << " windows";
  r.protocol = p.str();
  return r;
}

}  // namespace clm

namespace clm {

PerplexityResult masked_lm_loss(LanguageModel& model, const std::vector<int32_t>& stream, int64_t T, int64_t batch, double p,
                                int64_t max_tokens, uint64_t seed) {
  if (T <= 0 || batch <= 0 || !(p > 0 && p < 1)) throw std::invalid_argument("masked_lm_loss: need window > 0, batch > 0, 0 < p < 1");
  const int64_t n = int64_t(stream.size()) / T;  // whole windows
  if (n == 0) throw std::invalid_argument("masked_lm_loss: the stream is shorter than one window");
  ag::NoGrad ng;
  Rng rng(seed);
  PerplexityResult r;
  for (int64_t w0 = 0; w0 < n; w0 += batch) {
    const int64_t B = std::min(batch, n - w0);
    Tensor x = Tensor::from(std::vector<int32_t>(stream.begin() + w0 * T, stream.begin() + (w0 + B) * T), {B * T}), y;
    mask_tokens(x, y, int32_t(model.config().vocab_size - 1), p, rng);
    nn::Var loss = ag::cross_entropy(model.forward(x, B, T), y);
    int64_t scored = 0;
    for (int64_t i = 0; i < B * T; ++i) scored += y.data<int32_t>()[i] >= 0;
    r.nll_sum += loss->value.item() * double(scored);
    r.tokens += scored;
    r.windows += B;
    if (max_tokens > 0 && (w0 + B) * T >= max_tokens) break;
  }
  r.protocol = "masked LM: " + std::to_string(r.windows) + " windows of " + std::to_string(T) + " tokens, " +
               std::to_string(r.tokens) + " masked (p = " + std::to_string(p).substr(0, 4) + ")";
  return r;
}

}  // namespace clm
