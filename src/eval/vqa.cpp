#include "eval/vqa.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "autograd/autograd.h"
#include "nn/kv_cache.h"

namespace clm {

double kv_fraction(const InferState& s, int64_t tokens) {
  int64_t cells = 0, full = 0;
  for (auto& l : s.layers)
    if (auto* kv = dynamic_cast<const nn::KVCells*>(l.get()))
      for (int64_t h = 0; h < kv->heads(); ++h) cells += kv->len(h), full += tokens;
  return full ? double(cells) / double(full) : 1.0;
}

size_t kv_used_bytes(const InferState& s) {
  size_t b = 0;
  for (auto& l : s.layers)
    if (auto* kv = dynamic_cast<const nn::KVCells*>(l.get())) b += kv->used_bytes();
  return b;
}

VqaResult vqa_eval(LanguageModel& model, const ShapesTask& task, int64_t items, uint64_t seed, const std::string& kind,
                   const std::string& policy, const nlohmann::json& opts, const KVBudget& budget) {
  using clock = std::chrono::steady_clock;
  ag::NoGrad ng;
  VqaResult r;
  Rng rng(seed);
  const int64_t S = task.config().image, V = model.config().vocab_size;
  const int32_t qmark = task.id("?");
  std::unique_ptr<KVPolicy> pol = policy.empty() ? nullptr : make_kv_policy(policy, opts, budget);
  const int64_t image_tokens = model.image_tokens();
  if (image_tokens == 0) throw std::invalid_argument("vqa: the model has no vision slot (train one with clm train --task shapes)");
  for (int64_t i = 0; i < items; ++i) {
    const ShapesExample e = task.sample(rng, true, kind);
    Tensor img = Tensor::from(e.pixels, {1, S, S, 3});
    std::vector<int32_t> prompt = task.prompt_ids(e, image_tokens);
    if (prompt.back() != qmark) throw std::logic_error("vqa: question without '?'");
    prompt.pop_back();  // "?" is decoded after the policy compressed the prompt
    const std::vector<int32_t> want = task.answer_ids(e);
    InferState s = model.make_state(int64_t(prompt.size() + want.size()) + 4);
    if (pol) pol->attach(s);
    auto t0 = clock::now();
    model.set_images(img);
    model.infer(s, prompt);
    auto t1 = clock::now();
    r.kv_frac_sum += kv_fraction(s, s.next_pos);
    r.kv_bytes_sum += double(kv_used_bytes(s));
    std::vector<int32_t> got;
    int32_t next = qmark;
    for (size_t k = 0; k < want.size() + 2; ++k) {
      const float* l = model.infer(s, std::span<const int32_t>(&next, 1));
      next = int32_t(std::max_element(l, l + V) - l);
      got.push_back(next);
      if (next == 0) break;
    }
    auto t2 = clock::now();
    r.kv_end_frac_sum += kv_fraction(s, s.next_pos);
    r.prefill_s += std::chrono::duration<double>(t1 - t0).count();
    r.decode_s += std::chrono::duration<double>(t2 - t1).count();
    r.prompt_tokens += int64_t(prompt.size());
    r.decoded += int64_t(got.size());
    const bool ok = got == want;
    if (std::getenv("CLM_VQA_DEBUG") && !ok) {
      std::string q, a, w;
      for (auto& x : e.question) q += x + " ";
      for (auto t : got) a += task.vocabulary()[size_t(t)] + " ";
      for (auto t : want) w += task.vocabulary()[size_t(t)] + " ";
      std::fprintf(stderr, "[%s] %s-> got '%s' want '%s'\n", e.kind.c_str(), q.c_str(), a.c_str(), w.c_str());
    }
    r.items += 1, r.correct += ok;
    auto& bk = r.by_kind[e.kind];
    bk.first += ok, bk.second += 1;
    if (pol) r.kv += pol->stats;
  }
  return r;
}

}  // namespace clm
