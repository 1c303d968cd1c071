#include "infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "autograd/autograd.h"
#include "infer/session.h"

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
  std::vector<double> p(n);
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

std::vector<int32_t> generate(TransformerLM& model, const std::vector<int32_t>& prompt, const GenerateConfig& g,
                              Sampler& sampler, const std::function<void(int32_t)>& on_token, GenerateStats* stats) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  if (model.dtype() != DType::f32) throw std::invalid_argument("generate: model must be f32");
  ag::NoGrad ng;
  const int64_t V = model.config().vocab_size, P = int64_t(prompt.size()), cap = P + g.max_new_tokens;
  std::vector<int32_t> out;
  auto t0 = clock::now(), t1 = t0;
  auto run = [&](auto&& prefill, auto&& step) {
    const float* last = prefill();
    t1 = clock::now();
    for (int64_t i = 0; i < g.max_new_tokens; ++i) {
      int32_t tok = sampler.sample(last, V);
      if (tok == g.eos_id || std::find(g.stop_ids.begin(), g.stop_ids.end(), tok) != g.stop_ids.end()) break;
      out.push_back(tok);
      if (on_token) on_token(tok);
      if (i + 1 == g.max_new_tokens) break;
      last = step(tok);
    }
  };
  std::string path = "generic";
  if (g.fast && DecodeSession::supported(model.config())) {
    DecodeSession s(model, g.weights, cap);
    path = g.weights == DType::bf16 ? "fast-bf16" : "fast-f32";
    run([&] { return s.prefill(prompt); }, [&](int32_t t) { return s.step(t); });
  } else {
    KVCache cache = model.make_cache(1, cap);
    nn::Var logits;
    run(
        [&] {
          logits = model.forward(Tensor::from(prompt, {P}), 1, P, &cache);
          return logits->value.data<float>() + (P - 1) * V;
        },
        [&](int32_t t) {
          logits = model.forward(Tensor::from(std::vector<int32_t>{t}, {1}), 1, 1, &cache);
          return static_cast<const float*>(logits->value.data<float>());
        });
  }
  auto t2 = clock::now();
  if (stats) {
    stats->prompt_tokens = int64_t(prompt.size());
    stats->new_tokens = int64_t(out.size());
    stats->prefill_s = std::chrono::duration<double>(t1 - t0).count();
    stats->decode_s = std::chrono::duration<double>(t2 - t1).count();
    stats->path = path;
  }
  return out;
}

}  // namespace clm
