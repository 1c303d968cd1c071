// KV-cache eviction policies on hand-made caches whose right answer is known (which positions
// survive, which positions new tokens get), and through a real model: budget 1 is bit-identical
// to no policy, FastV drops the tokens its layer ranks lowest, bad input throws.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <mutex>
#include <set>

#include "autograd/ops.h"
#include "common.h"
#include "data/shapes.h"
#include "eval/longgen.h"
#include "eval/vqa.h"
#include "infer/generate.h"
#include "infer/kv_policy.h"
#include "models/transformer.h"
#include "nn/kv_cache.h"

using namespace clm;

namespace {

ModelConfig small() {
  ModelConfig c;
  c.vocab_size = 50, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48;
  c.max_seq_len = 256, c.init_std = 0.2;
  return c;
}

// A state of `layers` hand-filled KV caches: n cells at positions 0..n-1 with the given tags; the
// key of position t in every head is (t + 1, 0, ...) so that q = (1, 0, ...) scores it t + 1.
InferState cells(int64_t layers, int64_t kv_heads, int64_t n, const std::vector<uint8_t>& tags = {}, int64_t hd = 2) {
  InferState s;
  const int64_t W = kv_heads * hd;
  std::vector<float> k(size_t(n * W), 0.0f), v(size_t(n * W), 1.0f);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    pos[size_t(t)] = int32_t(t);
    for (int64_t h = 0; h < kv_heads; ++h) k[size_t(t * W + h * hd)] = float(t + 1);
  }
  for (int64_t l = 0; l < layers; ++l) {
    auto kv = std::make_unique<nn::KVCells>(kv_heads, hd, 64);
    kv->append(k.data(), v.data(), n, pos.data(), 0, tags.empty() ? nullptr : tags.data());
    s.layers.push_back(std::move(kv));
  }
  s.next_pos = n;
  return s;
}
Tensor row(const Tensor& t, int64_t r) { return t.slice(0, r, r + 1).contiguous().reshape({t.dim(1)}); }
Tensor vec_of(const float* p, int64_t n) { return Tensor::from(std::vector<float>(p, p + n), {n}); }
nn::KVCells& kv(InferState& s, int64_t l) { return static_cast<nn::KVCells&>(*s.layers[size_t(l)]); }
std::vector<int32_t> survivors(InferState& s, int64_t l, int64_t h, bool visible_only = false) {
  auto& c = kv(s, l);
  std::vector<int32_t> p;
  for (int64_t i = 0; i < c.len(h); ++i)
    if (!visible_only || !c.hidden(h, i)) p.push_back(c.true_pos(h)[i]);
  std::sort(p.begin(), p.end());
  return p;
}
// One attention row over head (l, kh)'s cells, probabilities given by position (others 0).
void row(InferState& s, int64_t l, int64_t head, int64_t kh, int32_t qpos, const std::vector<std::pair<int32_t, float>>& p,
         const float* q = nullptr) {
  auto& c = kv(s, l);
  std::vector<float> probs(size_t(c.len(kh)), 0.0f);
  for (int64_t i = 0; i < c.len(kh); ++i)
    for (auto& [ps, pr] : p)
      if (c.true_pos(kh)[i] == ps) probs[size_t(i)] = pr;
  s.on_attention({l, head, kh, qpos, probs.data(), c.pos(kh), c.len(kh), q, 1.0f});
}
// The policy around a call of T tokens whose cells are already in the state (hand-made).
template <class F> void call(KVPolicy& p, InferState& s, int64_t T, F rows) {
  s.next_pos -= T;
  p.before(s, T);
  s.next_pos += T;
  rows();
  p.after(s);
}
// Appends one token at the next position to every layer (a decoded token), key (pos + 1, 0).
void append_token(InferState& s, uint8_t tag = 0) {
  for (auto& l : s.layers) {
    auto& c = static_cast<nn::KVCells&>(*l);
    std::vector<float> k(size_t(c.heads() * c.head_dim()), 0.0f), v(k.size(), 1.0f);
    for (int64_t h = 0; h < c.heads(); ++h) k[size_t(h * c.head_dim())] = float(s.next_pos + 1);
    const int32_t p = int32_t(s.next_pos);
    c.append(k.data(), v.data(), 1, &p, tag);
  }
  s.next_pos += 1;
}

}  // namespace

TEST(KVPolicy, StreamingKeepsSinksAndTheNewest) {
  InferState s = cells(1, 1, 10);
  auto p = make_kv_policy("streaming", {{"sinks", 2}}, {1.0, 6});
  p->attach(s);
  call(*p, s, 10, [] {});
  EXPECT_EQ(survivors(s, 0, 0), (std::vector<int32_t>{0, 1, 6, 7, 8, 9}));
  append_token(s);
  call(*p, s, 1, [] {});
  EXPECT_EQ(survivors(s, 0, 0), (std::vector<int32_t>{0, 1, 7, 8, 9, 10})) << "the new token keeps its true position";
  EXPECT_EQ(p->stats.evicted, 5);
}

TEST(KVPolicy, H2OKeepsHeavyHittersAndTheRecentHalf) {
  InferState s = cells(1, 1, 10);
  auto p = make_kv_policy("h2o", {{"recent", 0.5}}, {1.0, 6});  // 3 recent + 3 heavy
  p->attach(s);
  call(*p, s, 10, [&] {
    row(s, 0, 0, 0, 9, {{2, 0.5f}, {4, 0.3f}, {0, 0.1f}, {1, 0.05f}, {9, 0.05f}});
    row(s, 0, 1, 0, 8, {{1, 0.02f}, {6, 0.04f}});  // a second query head of the same KV head adds up
  });
  EXPECT_EQ(survivors(s, 0, 0), (std::vector<int32_t>{0, 2, 4, 7, 8, 9}));
  // decoding: scores follow their cells through the removal that fills holes from the end
  append_token(s);
  call(*p, s, 1, [&] { row(s, 0, 0, 0, 10, {{7, 0.9f}, {10, 0.1f}}); });
  EXPECT_EQ(survivors(s, 0, 0), (std::vector<int32_t>{2, 4, 7, 8, 9, 10})) << "position 0 had the least accumulated attention";
}

TEST(KVPolicy, TovaUsesOnlyTheLastQueryAndOneKeepSetPerLayer) {
  InferState s = cells(1, 2, 8);
  auto p = make_kv_policy("tova", nullptr, {1.0, 3});
  p->attach(s);
  call(*p, s, 8, [&] {
    row(s, 0, 0, 0, 6, {{1, 1.0f}});  // not the last query: ignored
    row(s, 0, 0, 0, 7, {{3, 0.4f}, {5, 0.3f}, {7, 0.1f}});
    row(s, 0, 2, 1, 7, {{3, 0.1f}, {5, 0.1f}, {7, 0.05f}, {6, 0.2f}});
  });
  // summed over the layer's heads: 3 -> .5, 5 -> .4, 6 -> .2, 7 -> .15
  EXPECT_EQ(survivors(s, 0, 0), (std::vector<int32_t>{3, 5, 6}));
  EXPECT_EQ(survivors(s, 0, 1), (std::vector<int32_t>{3, 5, 6}));
}

TEST(KVPolicy, SnapKVPoolsTheObservationWindowAndKeepsIt) {
  for (int kernel : {1, 3}) {
    InferState s = cells(1, 1, 10);
    auto p = make_kv_policy("snapkv", {{"window", 2}, {"kernel", kernel}}, {1.0, 5});
    p->attach(s);
    call(*p, s, 10, [&] {
      row(s, 0, 0, 0, 7, {{6, 1.0f}});  // outside the window: ignored
      row(s, 0, 0, 0, 9, {{4, 0.5f}, {0, 0.2f}, {1, 0.15f}});
    });
    EXPECT_EQ(survivors(s, 0, 0), kernel == 1 ? (std::vector<int32_t>{0, 1, 4, 8, 9}) : (std::vector<int32_t>{3, 4, 5, 8, 9}))
        << "kernel " << kernel;
    append_token(s);
    call(*p, s, 1, [&] { row(s, 0, 0, 0, 10, {{10, 1.0f}}); });
    EXPECT_EQ(kv(s, 0).len(0), 6) << "a decoded token is not compressed";
  }
}

TEST(KVPolicy, PyramidKVShapesBudgetsOverLayers) {
  InferState s = cells(3, 1, 20);
  auto p = make_kv_policy("pyramidkv", {{"window", 1}, {"beta", 2.0}}, {1.0, 6});
  p->attach(s);
  call(*p, s, 20, [] {});
  EXPECT_EQ(kv(s, 0).len(0), 9);  // bottom: 2 * 6 - 3
  EXPECT_EQ(kv(s, 1).len(0), 6);
  EXPECT_EQ(kv(s, 2).len(0), 3);  // top: 6 / beta
}

// Dual-attention pruning: marked cells 1..6, text queries 7 and 8, two query heads on one KV head.
// Head-averaged A: g = column sums, m = column maxima.
TEST(KVPolicy, HAEPrefillEvictsWhereGlobalAndIndividualScoresAreBothLow) {
  const std::vector<uint8_t> tags{0, 1, 1, 1, 1, 1, 1, 0, 0};
  // Layer 0, per head the same row, so A = row: g_1 = .8, g_2 = .1, g_3 = .09 (m_3 = .09), g_4 = .02,
  // g_5 = .04, g_6 = .06; threshold r * sum(g) / |V| = 1.11 / 6 = .185: 2..6 are below it, but m_3 = .09
  // >= alpha keeps 3 (the lowest g of all but 4): the cap of 4 takes 2, 4, 5, 6, with or without
  // normalize (r = 1/6 then). Layer 1's rows (all on cell 4) count only with layer -1: the average
  // over four head rows is g = .4, .05, .045, .51, .02, .03, threshold 1.055 / 6: 2, 3, 5, 6 go.
  // prefill_sinks = 3: positions 0..2 are never pruned, so 2 stays and 4, 5, 6 go.
  const std::vector<std::pair<nlohmann::json, std::vector<int32_t>>> cases = {
      {{{"normalize", true}}, {0, 1, 3, 7, 8}},
      {{{"normalize", false}, {"r", 1.0 / 6}}, {0, 1, 3, 7, 8}},
      {{{"prefill_sinks", 3}}, {0, 1, 2, 3, 7, 8}},
      {{{"layer", -1}}, {0, 1, 4, 7, 8}}};
  for (const auto& [opt, want] : cases) {
    InferState s = cells(2, 1, 9, tags);
    nlohmann::json o{{"decode", false}, {"alpha", 0.08}, {"sinks", 0}};
    o.update(opt);
    auto p = make_kv_policy("hae", o, {0.25, 0});  // cap: 4 of the 6 marked tokens
    p->attach(s);
    s.tags = tags;
    call(*p, s, 9, [&] {
      for (int head : {0, 1}) {
        row(s, 0, head, 0, 7, {{1, 0.4f}, {3, 0.09f}, {2, 0.05f}, {4, 0.01f}, {5, 0.02f}, {6, 0.02f}});
        row(s, 0, head, 0, 8, {{1, 0.4f}, {2, 0.05f}, {4, 0.01f}, {5, 0.02f}, {6, 0.04f}});
        row(s, 1, head, 0, 7, {{4, 0.5f}});
        row(s, 1, head, 0, 8, {{4, 0.5f}});
      }
    });
    EXPECT_EQ(survivors(s, 0, 0), want) << opt.dump();
    EXPECT_EQ(survivors(s, 1, 0), want) << opt.dump() << ": the keep-set is broadcast to every layer";
  }
  EXPECT_THROW(make_kv_policy("hae", {{"layer", -1}, {"prune_hidden", true}}, {0.5, 0}), std::invalid_argument);
}

// The recycle bin: cells over the budget are hidden (not removed); a hidden cell whose would-be
// attention outgrows the weakest visible cell's score comes back; a full bin is removed at once.
TEST(KVPolicy, HAERecycleBinHidesRestoresAndCompactsInABatch) {
  InferState s = cells(1, 1, 6);
  auto p = make_kv_policy("hae", {{"sinks", 0}, {"recent", 1}, {"bin", 3}, {"batch", 1}, {"alpha", 0.0}}, {1.0, 4});
  p->attach(s);
  const float q[2] = {1.0f, 0.0f};
  // softmax over the visible cells with scores = position + 1 (the keys): probabilities consistent
  // with the key, so the policy's would-be attention of hidden cells is exact
  auto softmax_row = [&](int32_t qpos) {
    auto& c = kv(s, 0);
    std::vector<std::pair<int32_t, float>> pr;
    double z = 0;
    for (int64_t i = 0; i < c.len(0); ++i)
      if (!c.hidden(0, i)) z += std::exp(double(c.true_pos(0)[i] + 1));
    for (int64_t i = 0; i < c.len(0); ++i)
      if (!c.hidden(0, i)) pr.push_back({c.true_pos(0)[i], float(std::exp(double(c.true_pos(0)[i] + 1)) / z)});
    row(s, 0, 0, 0, qpos, pr, q);
  };
  call(*p, s, 6, [&] { softmax_row(5); });
  // scores: position 5 highest ... 0 lowest; budget 4 hides the two weakest
  EXPECT_EQ(survivors(s, 0, 0, true), (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(kv(s, 0).len(0), 6) << "hidden cells stay in place";
  EXPECT_EQ(p->stats.hidden, 2);
  // make position 1's key dominant: its would-be attention grows, it must come back
  kv(s, 0).k(0)[1 * 2] = 40.0f;
  append_token(s);
  call(*p, s, 1, [&] { softmax_row(6); });
  // the new token pushes one more cell (2) into the bin; 1 outscores the weakest visible cell (3)
  // and swaps back in; the bin now holds 0, 2, 3 = its size: removed together
  EXPECT_EQ(survivors(s, 0, 0, true), (std::vector<int32_t>{1, 4, 5, 6}));
  EXPECT_EQ(p->stats.restored, 1);
  EXPECT_EQ(kv(s, 0).len(0), 4) << "bin emptied in one batch";
  EXPECT_EQ(p->stats.evicted, 3);
}

// With the whole cache as budget every policy leaves decoding bit-identical to no policy.
TEST(KVPolicy, BudgetOneIsBitIdenticalToTheFullCache) {
  TransformerLM m(small(), 3);
  ag::NoGrad ng;
  std::vector<int32_t> prompt{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
  std::vector<uint8_t> tags(prompt.size(), 0);
  for (size_t i = 2; i < 9; ++i) tags[i] = 1;
  auto run = [&](const std::string& policy) {
    InferState s = m.make_state(64);
    std::unique_ptr<KVPolicy> p;
    if (!policy.empty()) p = make_kv_policy(policy, nullptr, {1.0, 0}), p->attach(s);
    std::vector<float> out;
    std::vector<int32_t> ids = prompt;
    s.tags = tags;
    for (int step = 0; step < 6; ++step) {
      const float* l = m.infer(s, ids);
      out.insert(out.end(), l, l + 50);
      ids = {int32_t(std::max_element(l, l + 50) - l)};
    }
    return out;
  };
  const auto ref = run("");
  for (const auto& name : kv_policy_names()) {
    const auto got = run(name);
    size_t first = 0;
    while (first < got.size() && got[first] == ref[first]) ++first;
    EXPECT_EQ(got, ref) << name << ": first difference at " << first;
  }
}

// Long generation (kv-bench --task gen): the sampler's known answers; any policy at budget 1 gives
// the full cache's tokens and a zero KL; a real budget keeps fewer cells and moves the distribution;
// the full cache's loss on the generated tokens equals the training forward's cross-entropy.
TEST(KVGen, SamplerGenerationAndTheFullCachesJudgement) {
  const float l[2] = {0.0f, std::log(3.0f)};  // softmax 0.25 / 0.75; at temperature 0.5: 0.1 / 0.9
  EXPECT_EQ(pick_token(l, 2, 0, 0.99), 1);
  EXPECT_EQ(pick_token(l, 2, 1, 0.24), 0);
  EXPECT_EQ(pick_token(l, 2, 1, 0.26), 1);
  EXPECT_EQ(pick_token(l, 2, 0.5, 0.09), 0);
  EXPECT_EQ(pick_token(l, 2, 0.5, 0.11), 1);

  TransformerLM m(small(), 5);
  const std::vector<int32_t> prompt{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4};
  const int64_t ctx = int64_t(prompt.size()), gen = 24;
  for (double temp : {0.0, 1.0}) {
    const auto ref = generate_under(m, prompt.data(), ctx, gen, temp, 11, nullptr, nullptr);
    ASSERT_EQ(int64_t(ref.size()), gen);
    for (const char* name : {"full", "streaming", "h2o", "hae"}) {
      GenRow r;
      auto p = make_kv_policy(name, nullptr, {1.0, 0});
      EXPECT_EQ(generate_under(m, prompt.data(), ctx, gen, temp, 11, p.get(), &r), ref) << name << " at budget 1, temperature " << temp;
      EXPECT_EQ(r.kl, 0.0) << name;
      EXPECT_EQ(r.scored, gen);
    }
    GenRow r;
    auto p = make_kv_policy("streaming", {{"sinks", 2}}, {0.25, 0});
    const auto got = generate_under(m, prompt.data(), ctx, gen, temp, 11, p.get(), &r);
    EXPECT_NEAR(r.frac_sum, 0.25, 0.03) << "a quarter of the 43 cells kept at the end";
    EXPECT_GT(r.kv.evicted, 0);
    EXPECT_GT(r.kl, 1e-4) << "the evicted cache's distributions differ from the full cache's";
    if (temp > 0) {
      EXPECT_NE(generate_under(m, prompt.data(), ctx, gen, temp, 12, nullptr, nullptr), ref) << "another seed, other draws";
    }
    // the full cache's loss on the policy's tokens against the forward over prompt + generation
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), got.begin(), got.end());
    ag::NoGrad ng;
    const Tensor lg = m.forward(Tensor::from(ids, {int64_t(ids.size())}), 1, int64_t(ids.size()))->value;
    double want = 0;
    for (int64_t t = ctx - 1; t + 1 < int64_t(ids.size()); ++t) {
      const float* row = lg.data<float>() + t * 50;
      double z = 0;
      for (int v = 0; v < 50; ++v) z += std::exp(double(row[v]));
      want += std::log(z) - row[ids[size_t(t + 1)]];
    }
    EXPECT_NEAR(r.nll, want, 1e-4 * want);
  }
}

// FastV: the marked tokens that layer K's last query attends to least leave the hidden states;
// layer K keeps every cell, later layers only the survivors, at their true positions.
TEST(KVPolicy, FastVDropsTheLowestRankedMarkedTokensAfterItsLayer) {
  TransformerLM m(small(), 5);
  ag::NoGrad ng;
  std::vector<int32_t> prompt{3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  std::vector<uint8_t> tags{0, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  // reference ranking: layer 0's last-query attention, summed over heads
  std::vector<double> rank(10, 0.0);
  {
    InferState s = m.make_state(32);
    std::mutex mu;  // observers run concurrently for different KV heads
    s.on_attention = [&](const nn::AttnEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (e.layer == 0 && e.query_pos == 9)
        for (int64_t i = 0; i < e.n; ++i) rank[size_t(e.cell_pos[i])] += e.probs[i];
    };
    m.infer(s, prompt);
  }
  std::vector<int32_t> marked{1, 2, 3, 4, 5, 6};
  std::sort(marked.begin(), marked.end(), [&](int32_t a, int32_t b) { return rank[size_t(a)] < rank[size_t(b)]; });
  std::vector<int32_t> expect{0, 7, 8, 9};
  expect.insert(expect.end(), marked.begin() + 3, marked.end());
  std::sort(expect.begin(), expect.end());

  InferState s = m.make_state(32);
  auto p = make_kv_policy("fastv", {{"layer", 0}}, {0.5, 0});
  p->attach(s);
  s.tags = tags;
  m.infer(s, prompt);
  EXPECT_EQ(p->stats.pruned, 3);
  EXPECT_EQ(kv(s, 0).len(0), 10);
  EXPECT_EQ(survivors(s, 1, 0), expect);
  EXPECT_EQ(survivors(s, 1, 1), expect);
  const int32_t next = 7;
  m.infer(s, std::span<const int32_t>(&next, 1));
  EXPECT_EQ(kv(s, 1).true_pos(0)[kv(s, 1).len(0) - 1], 10) << "new tokens continue at the true length";
}

TEST(KVPolicy, BadInputIsRefused) {
  EXPECT_THROW(KVBudget({0.0, 0}).check(), std::invalid_argument);
  EXPECT_THROW(KVBudget({1.5, 0}).check(), std::invalid_argument);
  EXPECT_THROW(KVBudget({0.5, -1}).check(), std::invalid_argument);
  EXPECT_THROW(make_kv_policy("h2o", nullptr, {0.0, 0}), std::invalid_argument);
  try {
    make_kv_policy("lru", nullptr, {0.5, 0});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("h2o"), std::string::npos) << "lists the known policies";
  }
  EXPECT_THROW(make_kv_policy("streaming", {{"sinks", -1}}, {0.5, 0}), std::invalid_argument);
  EXPECT_THROW(make_kv_policy("h2o", {{"window", 3}}, {0.5, 0}), std::invalid_argument);  // not its option
  TransformerLM m(small(), 1);
  InferState s = m.make_state(8);
  EXPECT_THROW(make_kv_policy("fastv", {{"layer", 5}}, {0.5, 0})->attach(s), std::invalid_argument);
  ModelConfig tc = small();
  tc.attention = "tensorcoder";
  auto t = make_model(tc, 1);
  InferState ts = t->make_state(8);
  EXPECT_THROW(make_kv_policy("h2o", nullptr, {0.5, 0})->attach(ts), std::invalid_argument) << "no KV cache to evict from";
  // a token filter cannot serve a scoring call that wants every token's logits
  InferState fs = m.make_state(8);
  make_kv_policy("fastv", nullptr, {0.5, 0})->attach(fs);
  fs.all_logits = true;
  std::vector<int32_t> ids{1, 2};
  EXPECT_THROW(m.infer(fs, ids), std::invalid_argument);
}

// Prefill attention is computed 64 queries at a time: a long prompt in one call equals the
// training forward.
TEST(KVPolicy, LongPrefillInTilesEqualsTheForward) {
  TransformerLM m(small(), 7);
  ag::NoGrad ng;
  std::vector<int32_t> seq(150);
  for (size_t i = 0; i < seq.size(); ++i) seq[i] = int32_t((i * 7 + 3) % 50);
  InferState s = m.make_state(160);
  s.all_logits = true;
  m.infer(s, seq);
  Tensor full = m.forward(Tensor::from(seq, {150}), 1, 150)->value;
  std::vector<float> got(s.logits.begin(), s.logits.begin() + 150 * 50);
  EXPECT_LT(test::rel_err(Tensor::from(got, {150, 50}), full.reshape({150, 50})), 1e-5);
}

// ---- images in front of the decoder -----------------------------------------------------------

namespace {
ModelConfig vision_cfg() {
  ModelConfig c = small();
  c.vision = "patch";
  c.vision_opt = {{"image", 8}, {"patch", 4}, {"channels", 3}, {"token", 2}};
  return c;
}
Tensor random_images(int64_t N, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(size_t(N * 8 * 8 * 3));
  for (float& x : v) x = float(r.uniform());
  return Tensor::from(v, {N, 8, 8, 3});
}
}  // namespace

// The 4 patch vectors replace the placeholder rows; prefill + decoding equal the training forward,
// and the image changes the logits (it is read).
TEST(Vision, ImagesSpliceIntoTheSequenceAndInferEqualsForward) {
  TransformerLM m(vision_cfg(), 11);
  ag::NoGrad ng;
  EXPECT_EQ(m.image_tokens(), 4);
  std::vector<int32_t> seq{2, 2, 2, 2, 5, 7, 9, 11};
  Tensor img = random_images(1, 3);
  m.set_images(img);
  Tensor full = m.forward(Tensor::from(seq, {8}), 1, 8)->value.reshape({8, 50});
  InferState s = m.make_state(16);
  m.set_images(img);
  m.infer(s, std::span<const int32_t>(seq).first(6));
  EXPECT_EQ(kv(s, 0).tag(0)[0], 1) << "image cells are tagged";
  EXPECT_EQ(kv(s, 0).tag(0)[4], 0);
  for (int t = 6; t < 8; ++t) {
    const float* l = m.infer(s, std::span<const int32_t>(&seq[size_t(t)], 1));
    EXPECT_LT(test::rel_err(vec_of(l, 50), row(full, t)), 1e-5) << t;
  }
  m.set_images(random_images(1, 4));
  Tensor other = m.forward(Tensor::from(seq, {8}), 1, 8)->value.reshape({8, 50});
  EXPECT_GT(test::rel_err(row(other, 7), row(full, 7)), 1e-3);
}

TEST(Vision, WrongImagesAreRefused) {
  TransformerLM m(vision_cfg(), 1);
  std::vector<int32_t> seq{2, 2, 2, 2, 5};
  EXPECT_THROW(m.set_images(Tensor::zeros({1, 9, 9, 3}, DType::f32)), std::invalid_argument);  // wrong size
  EXPECT_THROW(m.forward(Tensor::from(seq, {5}), 1, 5), std::invalid_argument);                  // placeholders, no image
  m.set_images(random_images(2, 1));  // two images, four placeholders
  EXPECT_THROW(m.forward(Tensor::from(seq, {5}), 1, 5), std::invalid_argument);
  TransformerLM text(small(), 1);
  EXPECT_THROW(text.set_images(random_images(1, 1)), std::invalid_argument);
  ModelConfig bad = vision_cfg();
  bad.vision_opt["patch"] = 3;  // does not divide 8
  EXPECT_THROW(TransformerLM(bad, 1), std::invalid_argument);
}

// The renderer's answers agree with its pixels; batches are deterministic; the test split's
// scenes never occur in training.
TEST(Shapes, AnswersMatchPixelsSplitsAreDisjointBatchesDeterministic) {
  ShapesTask task;
  Rng rng(5);
  const int64_t S = 24, c = 8;
  for (int i = 0; i < 200; ++i) {
    ShapesExample e = task.sample(rng, false, "count");
    int objects = 0;  // a cell holds an object when its centre pixel is far from the background
    for (int cell = 0; cell < 9; ++cell) {
      const int64_t y = (cell / 3) * c + c / 2, x = (cell % 3) * c + c / 2;
      float m = 0;
      for (int ch = 0; ch < 3; ++ch) m = std::max(m, e.pixels[size_t((y * S + x) * 3 + ch)]);
      objects += m > 0.5f;
    }
    const std::vector<std::string> counts{"one", "two", "three"};
    EXPECT_EQ(e.answer[0], counts[size_t(objects - 1)]);
  }
  std::set<std::string> train, test;
  auto key = [](const ShapesExample& e) {
    std::string k;
    for (float p : e.pixels) k += p > 0.5f ? '1' : '0';
    return k;
  };
  Rng a(1), b(2);
  for (int i = 0; i < 1500; ++i) train.insert(key(task.sample(a, false, "describe")));
  for (int i = 0; i < 300; ++i) test.insert(key(task.sample(b, true, "describe")));
  for (const auto& k : test) EXPECT_EQ(train.count(k), 0u);
  Tensor x1, y1, i1, x2, y2, i2;
  task.batch(9, 4, 64, 36, 0.5, x1, y1, i1);
  task.batch(9, 4, 64, 36, 0.5, x2, y2, i2);
  EXPECT_EQ(test::rel_err(i1, i2), 0.0);
  int64_t targets = 0;
  for (int64_t k = 0; k < 4 * 64; ++k) {
    EXPECT_EQ(x1.data<int32_t>()[k], x2.data<int32_t>()[k]);
    targets += y1.data<int32_t>()[k] >= 0;
  }
  EXPECT_GE(targets, 8) << "answers and their <eos> are the targets";
  EXPECT_THROW(task.batch(9, 4, 40, 36, 1.0, x1, y1, i1), std::invalid_argument) << "a description does not fit 40 tokens";
}

// The test bed's object mask (a patch with one pixel off the background) and the kept fractions by
// mask, averaged over KV heads.
TEST(KVPolicy, ObjectPatchesAndWhatEachHeadKeepsOfThem) {
  std::vector<float> px(size_t(24 * 24 * 3), 0.1f);
  px[size_t((5 * 24 + 9) * 3 + 1)] = 0.8f;      // y 5, x 9: patch (1, 2) of a 6 x 6 grid
  px[size_t((23 * 24 + 23) * 3 + 0)] = 0.14f;   // within the noise: background
  std::vector<uint8_t> want(36, 0);
  want[8] = 1;
  EXPECT_EQ(object_patches(px, 24, 36, 0.05), want);
  EXPECT_THROW(object_patches(px, 24, 35, 0.05), std::invalid_argument);
  InferState s = cells(1, 2, 6);
  std::vector<uint8_t> keep0{0, 0, 1, 1, 1, 1}, keep1{1, 1, 0, 1, 1, 1};
  kv(s, 0).compact(0, keep0.data());  // head 0 loses positions 0 (object) and 1 (background)
  kv(s, 0).compact(1, keep1.data());  // head 1 loses position 2 (object)
  const auto [obj, bg] = kept_by_mask(s, {1, 0, 1, 0});
  EXPECT_DOUBLE_EQ(obj, (0.5 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(bg, (0.5 + 1.0) / 2);
}
