#include "eval/vqa.h"

#include <algorithm>
#include <chrono>
#include <cmath>
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

std::vector<uint8_t> object_patches(const std::vector<float>& pixels, int64_t S, int64_t image_tokens, double noise) {
  const auto grid = int64_t(std::lround(std::sqrt(double(image_tokens))));
  if (grid * grid != image_tokens || grid == 0 || S % grid) throw std::invalid_argument("vqa: image tokens do not tile the image");
  const int64_t p = S / grid;
  std::vector<uint8_t> m(size_t(image_tokens), 0);
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x)
      for (int64_t c = 0; c < 3; ++c)
        if (std::fabs(pixels[size_t((y * S + x) * 3 + c)] - 0.1f) > noise + 1e-3) m[size_t((y / p) * grid + x / p)] = 1;
  return m;
}

std::pair<double, double> kept_by_mask(const InferState& s, const std::vector<uint8_t>& mask) {
  const auto n = int64_t(mask.size());
  const int64_t ones = std::count(mask.begin(), mask.end(), uint8_t(1)), zeros = n - ones;
  double a = 0, b = 0;
  int64_t heads = 0;
  for (auto& l : s.layers)
    if (auto* kv = dynamic_cast<const nn::KVCells*>(l.get()))
      for (int64_t h = 0; h < kv->heads(); ++h, ++heads) {
        int64_t k1 = 0, k0 = 0;
        for (int64_t i = 0; i < kv->len(h); ++i) {
          const int32_t p = kv->true_pos(h)[i];
          if (p < n && !kv->hidden(h, i)) (mask[size_t(p)] ? k1 : k0) += 1;
        }
        a += ones ? double(k1) / double(ones) : 1.0, b += zeros ? double(k0) / double(zeros) : 1.0;
      }
  return heads ? std::pair{a / double(heads), b / double(heads)} : std::pair{1.0, 1.0};
}

// The ceiling's eviction: n background image cells (positions 1.. of mask 0, shuffled by seed) leave
// every KV layer and head.
static void evict_background(InferState& s, const std::vector<uint8_t>& objects, int64_t n, uint64_t seed) {
  std::vector<int32_t> bg;
  for (size_t p = 1; p < objects.size(); ++p)
    if (!objects[p]) bg.push_back(int32_t(p));
  Rng rng(seed);
  for (size_t i = bg.size(); i > 1; --i) std::swap(bg[i - 1], bg[size_t(rng.next() % i)]);
  bg.resize(size_t(std::min<int64_t>(n, int64_t(bg.size()))));
  std::vector<uint8_t> drop(objects.size(), 0), keep;
  for (int32_t p : bg) drop[size_t(p)] = 1;
  for (auto& l : s.layers)
    if (auto* kv = dynamic_cast<nn::KVCells*>(l.get()))
      for (int64_t h = 0; h < kv->heads(); ++h) {
        keep.assign(size_t(kv->len(h)), 1);
        for (int64_t i = 0; i < kv->len(h); ++i)
          if (const int32_t p = kv->true_pos(h)[i]; p < int32_t(drop.size()) && drop[size_t(p)]) keep[size_t(i)] = 0;
        kv->compact(h, keep.data());
      }
}

VqaResult vqa_eval(LanguageModel& model, const ShapesTask& task, int64_t items, uint64_t seed, const std::string& kind,
                   const std::string& policy, const nlohmann::json& opts, const KVBudget& budget) {
  using clock = std::chrono::steady_clock;
  ag::NoGrad ng;
  VqaResult r;
  Rng rng(seed);
  const int64_t S = task.config().image, V = model.config().vocab_size;
  const int32_t qmark = task.id("?");
  const bool ceiling = policy == kObjectsCeiling;
  std::unique_ptr<KVPolicy> pol = policy.empty() || ceiling ? nullptr : make_kv_policy(policy, opts, budget);
  if (ceiling) budget.check();
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
    const std::vector<uint8_t> objects = object_patches(e.pixels, S, image_tokens, task.config().noise);  // image tokens come first
    if (ceiling) evict_background(s, objects, int64_t(std::floor((1.0 - budget.ratio) * double(image_tokens) + 1e-9)), seed + uint64_t(i));
    auto t1 = clock::now();
    r.kv_frac_sum += kv_fraction(s, s.next_pos);
    r.kv_bytes_sum += double(kv_used_bytes(s));
    const auto [obj, bg] = kept_by_mask(s, objects);
    r.obj_kept_sum += obj, r.bg_kept_sum += bg;
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
