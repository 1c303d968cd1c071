#include "infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "autograd/autograd.h"

namespace clm {

int32_t Sampler::sample(const float* logits, int64_t V) {
  if (cfg_.temperature <= 0) return int32_t(std::max_element(logits, logits + V) - logits);
  cand_.resize(V);
  for (int64_t i = 0; i < V; ++i) cand_[i] = {logits[i], int32_t(i)};
  auto by_logit = [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  int64_t n = V;
  if (cfg_.top_k > 0 && cfg_.top_k < V) {
    std::partial_sort(cand_.begin(), cand_.begin() + cfg_.top_k, cand_.end(), by_logit);
    n = cfg_.top_k;
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // softmax over the candidates at the temperature
  const double mx = cand_[0].first;
  p_.resize(size_t(n));
  double* p = p_.data();
  double z = 0;
  for (int64_t i = 0; i < n; ++i) z += (p[i] = std::exp((cand_[i].first - mx) / cfg_.temperature));
  if (cfg_.top_p < 1.0) {  // smallest prefix with mass >= top_p
    double acc = 0;
    int64_t keep = n;
    for (int64_t i = 0; i < n; ++i) {
      acc += p[i] / z;
      if (acc >= cfg_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    z = 0;
    for (int64_t i = 0; i < n; ++i) z += p[i];
  }
  double r = rng_.uniform() * z;
  for (int64_t i = 0; i < n; ++i) {
    r -= p[i];
    if (r < 0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

Generator::Generator(LanguageModel& model, const GenerateConfig& g, int64_t capacity)
    : model_(model), g_(g), capacity_(capacity) {
  if (model.dtype() != DType::f32) throw std::invalid_argument("generate: model must be f32");
  if (capacity <= 0) throw std::invalid_argument("generate: capacity must be positive");
  if (model.packed_format() != g.weights) model.pack(g.weights);
  state_ = model.make_state(capacity);
  path_ = g.weights.empty() ? "dense" : g.weights;
  if (model.device() == Device::cuda) path_ = "cuda " + path_;
  if (!g.kv_policy.empty()) {
    policy_ = make_kv_policy(g.kv_policy, g.kv_opt, g.kv_budget);
    policy_->attach(state_);
  }
}

// Bytes of the state's cells in use (KV caches), or of the whole state when it has no cells.
static size_t used_state_bytes(const InferState& s) {
  size_t b = 0;
  for (auto& l : s.layers)
    if (auto* kv = dynamic_cast<const nn::KVCells*>(l.get())) b += kv->used_bytes();
    else b += l->bytes();
  return b;
}

const float* Generator::feed(std::span<const int32_t> ids) {
  const float* logits = nullptr;
  try {
    logits = model_.infer(state_, ids);  // an attached policy evicts through the state's call hooks
  } catch (...) {  // a half-fed state is not worth keeping: start over, and say so
    cached_.clear();
    state_.reset();
    if (policy_) policy_->attach(state_);
    throw;
  }
  cached_.insert(cached_.end(), ids.begin(), ids.end());  // only what the cache really holds
  return logits;
}

std::vector<int32_t> Generator::generate(const std::vector<int32_t>& prompt, Sampler& sampler,
                                         const std::function<void(int32_t)>& on_token, GenerateStats* stats) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  if (int64_t(prompt.size()) > capacity_)
    throw std::length_error("generate: prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                            std::to_string(capacity_));
  ag::NoGrad ng;
  // reuse the cached prefix; at least the last prompt token is fed again to get its logits
  size_t keep = 0;
  while (keep < cached_.size() && keep + 1 < prompt.size() && cached_[keep] == prompt[keep]) ++keep;
  if (policy_ && keep < cached_.size()) {  // the policy's scores follow the cells: start over
    keep = 0;
    state_.reset();
    policy_->attach(state_);
  }
  if (!state_.truncate(int64_t(keep))) keep = 0;  // a state that cannot forget starts over
  cached_.resize(keep);
  const int64_t V = g_.vocab_limit > 0 ? std::min(g_.vocab_limit, model_.config().vocab_size) : model_.config().vocab_size;
  const int64_t room = capacity_ - int64_t(prompt.size());  // new tokens that fit
  std::vector<int32_t> out;
  auto t0 = clock::now();
  cached_.reserve(size_t(capacity_));
  out.reserve(size_t(std::max<int64_t>(0, std::min(g_.max_new_tokens, room + 1))));
  const float* last = feed(std::span<const int32_t>(prompt).subspan(keep));
  auto t1 = clock::now();
  for (int64_t i = 0; i < g_.max_new_tokens && i <= room; ++i) {
    int32_t tok = sampler.sample(last, V);
    if (tok == g_.eos_id || std::find(g_.stop_ids.begin(), g_.stop_ids.end(), tok) != g_.stop_ids.end()) break;
    out.push_back(tok);
    if (on_token) on_token(tok);
    if (i + 1 == g_.max_new_tokens || i == room) break;
    threads_.begin();
    last = feed(std::span<const int32_t>(&tok, 1));
    threads_.end();
  }
  auto t2 = clock::now();
  if (stats) {
    stats->prompt_tokens = int64_t(prompt.size());
    stats->reused_tokens = int64_t(keep);
    stats->new_tokens = int64_t(out.size());
    stats->prefill_s = std::chrono::duration<double>(t1 - t0).count();
    stats->decode_s = std::chrono::duration<double>(t2 - t1).count();
    stats->path = path_;
    stats->state_bytes = used_state_bytes(state_);
    if (policy_) stats->kv = policy_->stats;
  }
  return out;
}

std::vector<int32_t> generate(LanguageModel& model, const std::vector<int32_t>& prompt, const GenerateConfig& g,
                              Sampler& sampler, const std::function<void(int32_t)>& on_token, GenerateStats* stats) {
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  Generator gen(model, g, int64_t(prompt.size()) + g.max_new_tokens);
  return gen.generate(prompt, sampler, on_token, stats);
}

std::vector<int32_t> fit_context(std::vector<int32_t> ids, int64_t max_new, int64_t ctx, bool truncate, int32_t keep_first,
                                 std::string* note) {
  const int64_t n = int64_t(ids.size());
  if (n + max_new <= ctx) return ids;
  const std::string counts = "the prompt is " + std::to_string(n) + " tokens and --max-new-tokens " + std::to_string(max_new) +
                             ": more than the context of " + std::to_string(ctx) + " positions";
  const int64_t head = !ids.empty() && ids[0] == keep_first ? 1 : 0;
  if (max_new + head >= ctx) throw std::invalid_argument(counts + " (--max-new-tokens alone leaves no room for a prompt)");
  if (!truncate)
    throw std::invalid_argument(counts + " (--ctx to raise it for a model that extrapolates, --overflow truncate to keep the prompt's last " +
                                std::to_string(ctx - max_new - head) + " tokens)");
  const int64_t keep = ctx - max_new - head;
  std::vector<int32_t> out(ids.begin(), ids.begin() + head);
  out.insert(out.end(), ids.end() - keep, ids.end());
  if (note) *note = "prompt truncated to its last " + std::to_string(keep) + " of " + std::to_string(n - head) + " tokens (context " + std::to_string(ctx) + ")";
  return out;
}

}  // namespace clm
