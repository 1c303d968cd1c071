#include "infer/kv_policy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "kernels/cpu/vec.h"
#include "nn/module.h"

namespace clm {

int64_t KVBudget::cells(int64_t seen) const {
  if (tokens > 0) return tokens;
  return std::max<int64_t>(1, int64_t(std::ceil(ratio * double(seen) - 1e-9)));
}

void KVBudget::check() const {
  if (tokens < 0) throw std::invalid_argument("KV budget in tokens must be >= 0, got " + std::to_string(tokens));
  if (!(ratio > 0.0 && ratio <= 1.0)) throw std::invalid_argument("KV budget must be in (0, 1], got " + std::to_string(ratio));
}

KVPolicy::KVPolicy(std::string name, const KVBudget& b) : name_(std::move(name)), budget_(b) { b.check(); }

void KVPolicy::attach(InferState& s) {
  layers_.clear();
  heads_.clear();
  bool any = false;
  for (auto& l : s.layers) {
    auto* kv = dynamic_cast<nn::KVCells*>(l.get());
    layers_.push_back(kv);
    heads_.emplace_back(kv ? size_t(kv->heads()) : 0);
    if (kv)
      for (auto& h : heads_.back()) h.score.reserve(size_t(kv->capacity()));
    any = any || kv;
  }
  if (!any) throw std::invalid_argument("kv policy '" + name_ + "': this model's layers keep no KV cache to evict from");
  bind();
  if (const int64_t l = watched_layer(); l >= 0 && (l >= int64_t(layers_.size()) || !layers_[size_t(l)]))
    throw std::invalid_argument("kv policy '" + name_ + "': layer=" + std::to_string(l) + " is not a KV-cache layer of this model (" +
                                std::to_string(layers_.size()) + " layers)");
  stats = {};
  seen_ = 0;
  s.on_call_start = [this](InferState& st, int64_t T) { before(st, T); };
  s.on_call_end = [this](InferState& st) { after(st); };
  if (wants_rows()) s.on_attention = [this](const nn::AttnEvent& e) { observe(e); };
  if (wants_filter())
    s.token_filter = [this](int64_t l, int64_t T, const int32_t* pos, uint8_t* keep) { return filter(l, T, pos, keep); };
}

void KVPolicy::before(InferState& s, int64_t T) {
  T_ = T;
  first_pos_ = int32_t(s.next_pos);
  last_pos_ = int32_t(s.next_pos + T - 1);
  marked_.assign(size_t(T), s.tag != 0);
  if (s.tags.size() == size_t(T))
    for (int64_t t = 0; t < T; ++t) marked_[size_t(t)] = s.tags[size_t(t)] != 0;
  on_before();
}

void KVPolicy::after(InferState& s) {
  const auto t0 = std::chrono::steady_clock::now();
  seen_ = s.next_pos;
  evict(s);
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

KVPolicy::Head& KVPolicy::head(int64_t l, int64_t h, int64_t n) {
  Head& hd = heads_[size_t(l)][size_t(h)];
  if (hd.score.size() < size_t(n)) hd.score.resize(size_t(n), 0.0f);
  return hd;
}

int64_t KVPolicy::keep_best(int64_t l, int64_t h, int64_t budget, int64_t sinks, int64_t recent, const float* score,
                            bool keep_order) {
  const nn::KVCells& kv = *layers_[size_t(l)];
  const int64_t n = kv.len(h);
  if (n <= budget) return 0;
  sinks = std::min(sinks, budget);
  recent = std::min(recent, budget - sinks);
  const int32_t* tp = kv.true_pos(h);
  idx_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (tp[i] >= sinks && tp[i] <= last_pos_ - recent) idx_.push_back(i);
  const int64_t e = std::min<int64_t>(n - budget, int64_t(idx_.size()));
  if (e <= 0) return 0;
  auto worse = [&](int64_t a, int64_t b) { return score[a] != score[b] ? score[a] < score[b] : tp[a] < tp[b]; };
  if (e < int64_t(idx_.size())) std::nth_element(idx_.begin(), idx_.begin() + e, idx_.end(), worse);
  keep_.assign(size_t(n), 1);
  for (int64_t j = 0; j < e; ++j) keep_[size_t(idx_[size_t(j)])] = 0;
  drop(l, h, keep_.data(), keep_order || e > 4);
  stats.evicted += e;
  return e;
}

void KVPolicy::drop(int64_t l, int64_t h, const uint8_t* keep, bool keep_order) {
  nn::KVCells& kv = *layers_[size_t(l)];
  const int64_t n = kv.len(h);
  std::vector<float>& sc = head(l, h, n).score;
  if (keep_order) {
    int64_t w = 0;
    for (int64_t i = 0; i < n; ++i)
      if (keep[i]) sc[size_t(w++)] = sc[size_t(i)];
    kv.compact(h, keep);
    sc.resize(size_t(w));
    return;
  }
  int64_t len = n;  // descending: a cell moved into a hole has already been judged
  for (int64_t i = n - 1; i >= 0; --i)
    if (!keep[i]) {
      kv.remove(h, i);
      sc[size_t(i)] = sc[size_t(--len)];
    }
  sc.resize(size_t(len));
}

void KVPolicy::zero_scores() {
  for (auto& l : heads_)
    for (auto& h : l) std::fill(h.score.begin(), h.score.end(), 0.0f);
}

namespace {

using nn::OptionSpec;
using nn::Options;
using Registry = nn::Registry<KVPolicy, const KVBudget&>;

std::function<std::string(const nlohmann::json&)> at_least(double lo) {
  return [lo](const nlohmann::json& v) {
    return v.get<double>() >= lo ? std::string() : "must be >= " + std::to_string(int64_t(lo));
  };
}
std::function<std::string(const nlohmann::json&)> fraction() {
  return [](const nlohmann::json& v) {
    const double x = v.get<double>();
    return x >= 0 && x <= 1 ? std::string() : std::string("must be in [0, 1]");
  };
}

// ---- full: the reference, never evicts ----------------------------------------------------------
struct Full : KVPolicy {
  using KVPolicy::KVPolicy;
  void evict(InferState&) override {}
};

// ---- streaming (StreamingLLM): sinks + the newest ------------------------------------------------
struct Streaming : KVPolicy {
  int64_t sinks;
  Streaming(const Options& o, const KVBudget& b) : KVPolicy("streaming", b), sinks(o.integer("sinks")) {}
  void evict(InferState&) override {
    const int64_t b = budget_.cells(seen_);
    for (size_t l = 0; l < layers_.size(); ++l)
      if (layers_[l])
        for (int64_t h = 0; h < layers_[l]->heads(); ++h)
          keep_best(int64_t(l), h, b, sinks, b, head(int64_t(l), h, layers_[l]->len(h)).score.data());
  }
};

// Sums head (l, h)'s scores over the KV heads of layer l (scope=layer: one keep-set per layer) into
// `out`; cells are aligned across a layer's heads because they are always evicted alike.
struct Scored : KVPolicy {
  bool layer_scope;
  std::vector<float> sum_;
  Scored(std::string n, const KVBudget& b, const Options& o) : KVPolicy(std::move(n), b), layer_scope(o.str("scope") == "layer") {}
  bool wants_rows() const override { return true; }
  // Evicts every KV head of every layer to `budget_of(l)` by its scores (or the layer's summed).
  template <class Budget, class ScoreOf>
  void evict_all(Budget budget_of, int64_t sinks, int64_t recent, ScoreOf score_of, bool keep_order) {
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (!layers_[l]) continue;
      nn::KVCells& kv = *layers_[l];
      const int64_t b = budget_of(int64_t(l)), n = kv.len(0);
      if (!layer_scope) {
        for (int64_t h = 0; h < kv.heads(); ++h) keep_best(int64_t(l), h, b, sinks, recent, score_of(int64_t(l), h), keep_order);
        continue;
      }
      if (n <= b) continue;
      sum_.assign(size_t(n), 0.0f);
      for (int64_t h = 0; h < kv.heads(); ++h) {
        const float* s = score_of(int64_t(l), h);
        for (int64_t i = 0; i < n; ++i) sum_[size_t(i)] += s[i];
      }
      const int64_t before = stats.evicted;
      keep_best(int64_t(l), 0, b, sinks, recent, sum_.data(), keep_order);  // leaves head 0's keep mask in keep_
      if (stats.evicted == before) continue;
      const std::vector<uint8_t> keep = keep_;
      for (int64_t h = 1; h < kv.heads(); ++h) {  // the same mask: the heads stay aligned
        drop(int64_t(l), h, keep.data(), keep_order || stats.evicted - before > 4);
        stats.evicted += n - kv.len(h);
      }
    }
  }
};

const OptionSpec kScope{"scope", "head", "head: each KV head keeps its own cells | layer: scores summed over a layer's heads, one keep-set",
                        nn::one_of({"head", "layer"})};

// ---- h2o: accumulated attention + recent ---------------------------------------------------------
struct H2O : Scored {
  int64_t sinks;
  double recent;
  H2O(const Options& o, const KVBudget& b) : Scored("h2o", b, o), sinks(o.integer("sinks")), recent(o.num("recent")) {}
  void observe(const nn::AttnEvent& e) override {
    kernels::vec().axpy(1.0f, e.probs, head(e.layer, e.kv_head, e.n).score.data(), e.n);
  }
  void evict(InferState&) override {
    const int64_t b = budget_.cells(seen_);
    evict_all([&](int64_t) { return b; }, sinks, int64_t(std::lround(recent * double(b))),
              [&](int64_t l, int64_t h) { return heads_[size_t(l)][size_t(h)].score.data(); }, false);
  }
};

// ---- tova: the last query's attention ------------------------------------------------------------
struct Tova : Scored {
  int64_t sinks;
  Tova(const Options& o, const KVBudget& b) : Scored("tova", b, o), sinks(o.integer("sinks")) {}
  void on_before() override { zero_scores(); }
  void observe(const nn::AttnEvent& e) override {
    if (e.query_pos != last_pos_) return;
    kernels::vec().axpy(1.0f, e.probs, head(e.layer, e.kv_head, e.n).score.data(), e.n);
  }
  void evict(InferState&) override {
    const int64_t b = budget_.cells(seen_);
    evict_all([&](int64_t) { return b; }, sinks, 0, [&](int64_t l, int64_t h) { return heads_[size_t(l)][size_t(h)].score.data(); },
              false);
  }
};

// ---- snapkv / pyramidkv: prompt compression from an observation window ------------------------------
struct SnapKV : Scored {
  int64_t window, kernel, sinks;
  bool max_pool;
  double beta;  // > 0: pyramid budgets (PyramidKV)
  std::vector<float> pooled_;
  SnapKV(const std::string& name, const Options& o, const KVBudget& b, double beta_)
      : Scored(name, b, o),
        window(o.integer("window")),
        kernel(o.integer("kernel")),
        sinks(o.integer("sinks")),
        max_pool(o.str("pool") == "max"),
        beta(beta_) {}
  void on_before() override { zero_scores(); }
  void observe(const nn::AttnEvent& e) override {
    if (T_ < 2 || e.query_pos <= last_pos_ - window) return;  // prompts only, their last `window` queries
    kernels::vec().axpy(1.0f, e.probs, head(e.layer, e.kv_head, e.n).score.data(), e.n);
  }
  // Per-layer budget: uniform, or PyramidKV's arithmetic sequence from 2*avg - avg/beta (bottom)
  // to avg/beta (top), the same total over the layers (a bottom budget above the tokens seen
  // wastes its excess, as in PyramidKV).
  int64_t layer_budget(int64_t l, int64_t avg) const {
    int64_t L = 0, idx = 0;
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i]) idx = int64_t(i) == l ? L : idx, ++L;
    if (beta <= 0 || L < 2 || avg >= seen_) return avg;  // room for everything: no layer compresses
    const double top = double(avg) / beta, bottom = 2.0 * double(avg) - top;
    return std::max<int64_t>(1, std::lround(bottom - (bottom - top) * double(idx) / double(L - 1)));
  }
  const float* pool(int64_t l, int64_t h) {
    const int64_t n = layers_[size_t(l)]->len(h), r = kernel / 2;
    const float* s = head(l, h, n).score.data();
    pooled_.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      float acc = max_pool ? s[i] : 0.0f;
      for (int64_t j = std::max<int64_t>(0, i - r); j <= std::min(n - 1, i + r); ++j) acc = max_pool ? std::max(acc, s[j]) : acc + s[j];
      pooled_[size_t(i)] = max_pool ? acc : acc / float(std::min(n - 1, i + r) - std::max<int64_t>(0, i - r) + 1);
    }
    return pooled_.data();
  }
  void evict(InferState&) override {
    if (T_ < 2) return;  // compresses prompts (and chunks of a long input), not single decoded tokens
    const int64_t avg = budget_.cells(seen_);
    evict_all([&](int64_t l) { return layer_budget(l, avg); }, sinks, window, [&](int64_t l, int64_t h) { return pool(l, h); }, true);
  }
};

// Which of the call's tokens are marked, as positions in call order; its rank scores per KV head.
struct MarkedRanks {
  std::vector<std::vector<float>> per_kv;  // [kv head][T]
  void reset(size_t kv_heads, int64_t T) {
    per_kv.resize(kv_heads);
    for (auto& v : per_kv) v.assign(size_t(T), 0.0f);
  }
  float total(int64_t t) const {
    float s = 0;
    for (auto& v : per_kv) s += v[size_t(t)];
    return s;
  }
};

// ---- fastv: marked tokens ranked by the last query at layer K leave later layers' hidden states ----
struct FastV : KVPolicy {
  int64_t layer;
  MarkedRanks rank;
  FastV(const Options& o, const KVBudget& b) : KVPolicy("fastv", b), layer(o.integer("layer")) {}
  int64_t watched_layer() const override { return layer; }
  bool wants_rows() const override { return true; }
  bool wants_filter() const override { return true; }
  void on_before() override { rank.reset(size_t(layers_[size_t(layer)]->heads()), T_); }
  void observe(const nn::AttnEvent& e) override {
    if (e.layer != layer || e.query_pos != last_pos_) return;
    float* r = rank.per_kv[size_t(e.kv_head)].data();
    for (int64_t i = 0; i < e.n; ++i)
      if (e.cell_pos[i] >= first_pos_ && e.cell_pos[i] <= last_pos_) r[e.cell_pos[i] - first_pos_] += e.probs[i];
  }
  bool filter(int64_t l, int64_t T, const int32_t* pos, uint8_t* keep) override {
    if (l != layer) return false;
    idx_.clear();
    for (int64_t t = 0; t < T; ++t)
      if (marked_[size_t(pos[t] - first_pos_)]) idx_.push_back(t);
    const int64_t drop_n = int64_t(idx_.size()) - int64_t(std::ceil(budget_.ratio * double(idx_.size()) - 1e-9));
    if (drop_n <= 0) return false;
    std::nth_element(idx_.begin(), idx_.begin() + drop_n, idx_.end(), [&](int64_t a, int64_t b) {
      const float ra = rank.total(pos[a] - first_pos_), rb = rank.total(pos[b] - first_pos_);
      return ra != rb ? ra < rb : a < b;
    });
    for (int64_t j = 0; j < drop_n; ++j) keep[idx_[size_t(j)]] = 0;
    stats.pruned += drop_n;
    return true;
  }
  void evict(InferState&) override {}
};

// ---- hae --------------------------------------------------------------------------------------------
struct HAE : KVPolicy {
  int64_t layer, prefill_sinks, sinks, recent, bin, batch;
  double r, alpha, visual_weight;
  bool normalize, prune_hidden, decode;
  // prefill stage: head-summed attention of text queries after the marked span to the marked cells
  std::vector<std::vector<float>> acc_;  // [kv head][text query * marked]
  std::vector<int32_t> mpos_;            // marked positions of this call, in order
  std::vector<int64_t> mindex_;          // call offset -> index in mpos_ (-1: not marked)
  int32_t text_from_ = 0;                // text queries: positions >= this
  int64_t n_text_ = 0;
  bool decided_ = false;
  std::vector<int32_t> evict_pos_;  // sorted positions the prefill stage evicts
  HAE(const Options& o, const KVBudget& b)
      : KVPolicy("hae", b),
        layer(o.integer("layer")),
        prefill_sinks(o.integer("prefill_sinks")),
        sinks(o.integer("sinks")),
        recent(o.integer("recent")),
        bin(o.integer("bin")),
        batch(o.integer("batch")),
        r(o.num("r")),
        alpha(o.num("alpha")),
        visual_weight(o.num("visual_weight")),
        normalize(o.flag("normalize")),
        prune_hidden(o.flag("prune_hidden")),
        decode(o.flag("decode")) {
    if (layer < 0 && prune_hidden) throw std::invalid_argument("hae: layer=-1 (every layer decides) cannot prune_hidden: no layer comes after all of them");
  }
  bool wants_rows() const override { return true; }
  bool wants_filter() const override { return prune_hidden; }
  int64_t watched_layer() const override { return layer; }

  void on_before() override {
    // cells moved by someone else since the last call (a truncated chat turn): list the bins again
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int64_t h = 0; layers_[l] && h < layers_[l]->heads(); ++h)
        if (layers_[l]->len(h) != len_after_[l][size_t(h)]) list_bin(int64_t(l), h);
    decided_ = false;
    evict_pos_.clear();
    mpos_.clear();
    mindex_.assign(size_t(T_), -1);
    for (int64_t t = 0; t < T_; ++t)
      if (marked_[size_t(t)]) mindex_[size_t(t)] = int64_t(mpos_.size()), mpos_.push_back(first_pos_ + int32_t(t));
    n_text_ = 0;
    if (!mpos_.empty() && mpos_.back() < last_pos_) {
      text_from_ = mpos_.back() + 1;
      n_text_ = last_pos_ - text_from_ + 1;
    }
    const size_t kvh = size_t(layers_[size_t(std::max<int64_t>(layer, 0))]->heads());  // layer -1: every layer has as many
    acc_.resize(kvh);
    for (auto& a : acc_) a.assign(size_t(n_text_) * mpos_.size(), 0.0f);
    rows_.assign(kvh, 0);
  }

  void observe(const nn::AttnEvent& e) override {
    if (n_text_ > 0 && (layer < 0 || e.layer == layer) && e.query_pos >= text_from_) {
      if (e.query_pos == text_from_) ++rows_[size_t(e.kv_head)];
      float* a = acc_[size_t(e.kv_head)].data() + size_t(e.query_pos - text_from_) * mpos_.size();
      for (int64_t i = 0; i < e.n; ++i) {
        const int32_t p = e.cell_pos[i];
        if (p >= first_pos_ && p <= last_pos_ && mindex_[size_t(p - first_pos_)] >= 0) a[mindex_[size_t(p - first_pos_)]] += e.probs[i];
      }
    }
    if (!decode) return;
    // decoding scores: accumulated attention; hidden (binned) cells get the probability they would
    // have had, from their key and this row's log-normaliser, so that they can earn their way back
    nn::KVCells& kv = *layers_[size_t(e.layer)];
    float* s = head(e.layer, e.kv_head, e.n).score.data();
    const auto& vk = kernels::vec();
    vk.axpy(1.0f, e.probs, s, e.n);
    const std::vector<int64_t>& bin_cells = bin_[size_t(e.layer)][size_t(e.kv_head)];
    if (bin_cells.empty() || !e.q) return;  // an empty bin: nothing to shadow
    // The row's log-normaliser from one visible cell: lse = scale q.k_i - log p_i holds for any cell
    // with p_i > 0; the first (a sink) or the newest usually has a large one, else the row's largest.
    int64_t ref = e.probs[0] >= e.probs[e.n - 1] ? 0 : e.n - 1;
    if (!(e.probs[ref] > 1e-20f)) ref = std::max_element(e.probs, e.probs + e.n) - e.probs;  // hidden cells have probability 0
    if (e.probs[ref] <= 0.0f) return;
    const int64_t hd = kv.head_dim();
    const float lse = e.scale * vk.dot(e.q, kv.k(e.kv_head) + ref * hd, hd) - std::log(e.probs[ref]);
    const int32_t* tp = kv.true_pos(e.kv_head);
    for (int64_t i : bin_cells)
      if (i < e.n && e.cell_pos[i] == nn::KVCells::kHidden && tp[i] <= e.query_pos)
        s[i] += std::exp(e.scale * vk.dot(e.q, kv.k(e.kv_head) + i * hd, hd) - lse);
  }
  // The hidden cells of head (l, h), listed again after the head's cells were hidden, restored or
  // moved (here, or by a truncation between calls: on_before): decoding reads the list instead of
  // scanning every cell of every row.
  void list_bin(int64_t l, int64_t h) {
    const nn::KVCells& kv = *layers_[size_t(l)];
    std::vector<int64_t>& b = bin_[size_t(l)][size_t(h)];
    b.clear();
    for (int64_t i = 0; i < kv.len(h); ++i)
      if (kv.hidden(h, i)) b.push_back(i);
  }

  // Dual-attention pruning: g_j = sum_i A_ij, m_j = max_i A_ij over the text queries (A averaged
  // over the query heads); evict j when g_j < r * sum(g) (/ |V| with normalize) and m_j < alpha,
  // at most cap = (1 - budget ratio) * |V| of them, lowest g first; never one of the first prefill_sinks
  // positions. layer -1: A averaged over every layer's query heads.
  void decide() {
    if (decided_) return;
    decided_ = true;
    const size_t V = mpos_.size();
    if (V == 0 || n_text_ == 0) return;
    const int64_t H = n_heads();
    std::vector<double> g(V, 0.0), m(V, 0.0);
    for (int64_t i = 0; i < n_text_; ++i)
      for (size_t j = 0; j < V; ++j) {
        double a = 0;
        for (auto& acc : acc_) a += acc[size_t(i) * V + j];
        a /= double(H);
        g[j] += a;
        m[j] = std::max(m[j], a);
      }
    double gsum = 0;
    for (double x : g) gsum += x;
    const double thr = r * gsum / (normalize ? double(V) : 1.0);
    std::vector<size_t> cand;
    for (size_t j = 0; j < V; ++j)
      if (g[j] < thr && m[j] < alpha && mpos_[j] >= prefill_sinks) cand.push_back(j);
    const size_t cap = size_t(std::floor((1.0 - budget_.ratio) * double(V) + 1e-9));
    std::sort(cand.begin(), cand.end(), [&](size_t a, size_t b) { return g[a] != g[b] ? g[a] < g[b] : a < b; });
    if (cand.size() > cap) cand.resize(cap);
    for (size_t j : cand) evict_pos_.push_back(mpos_[j]);
    std::sort(evict_pos_.begin(), evict_pos_.end());
  }
  int64_t n_heads() const {  // query heads of the deciding layer(s): the rows they reported for one query
    int64_t H = 0;
    for (int64_t c : rows_) H += c;
    return std::max<int64_t>(H, 1);
  }
  std::vector<int64_t> rows_;  // [kv head] rows seen for the first text query

  bool filter(int64_t l, int64_t T, const int32_t* pos, uint8_t* keep) override {
    if (l != layer) return false;
    decide();
    if (evict_pos_.empty()) return false;
    for (int64_t t = 0; t < T; ++t) keep[t] = !std::binary_search(evict_pos_.begin(), evict_pos_.end(), pos[t]);
    stats.pruned += int64_t(evict_pos_.size());
    return true;
  }

  void evict(InferState&) override {
    decide();
    if (!evict_pos_.empty())  // broadcast the keep-set: every layer, every KV head
      for (size_t l = 0; l < layers_.size(); ++l) {
        if (!layers_[l]) continue;
        nn::KVCells& kv = *layers_[l];
        for (int64_t h = 0; h < kv.heads(); ++h) {
          const int64_t n = kv.len(h);
          keep_.assign(size_t(n), 1);
          int64_t e = 0;
          for (int64_t i = 0; i < n; ++i)
            if (std::binary_search(evict_pos_.begin(), evict_pos_.end(), kv.true_pos(h)[i])) keep_[size_t(i)] = 0, ++e;
          if (e) drop(int64_t(l), h, keep_.data(), true), stats.evicted += e, list_bin(int64_t(l), h);
        }
      }
    if (decode) decode_evict();
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int64_t h = 0; layers_[l] && h < layers_[l]->heads(); ++h) len_after_[l][size_t(h)] = layers_[l]->len(h);
  }

  // The recycle bin. Once a head's visible cells reach budget + batch, the weakest evictable ones
  // (modality-weighted score; never sinks or the recent window) are hidden down to the budget, in
  // one selection; hidden cells that now outscore the weakest visible ones swap back in; when the
  // bin holds `bin` cells they are removed together (one compaction instead of one per token).
  void decode_evict() {
    const int64_t b = budget_.cells(seen_);
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (!layers_[l]) continue;
      nn::KVCells& kv = *layers_[l];
      for (int64_t h = 0; h < kv.heads(); ++h) {
        const int64_t n = kv.len(h);
        const int64_t nh = int64_t(bin_[l][size_t(h)].size());
        if (n - nh < b + batch) continue;  // most tokens stop here: no scan
        float* s = head(int64_t(l), h, n).score.data();
        const int32_t* tp = kv.true_pos(h);
        const uint8_t* tag = kv.tag(h);
        auto weight = [&](int64_t i) { return tag[i] ? float(visual_weight) * s[i] : s[i]; };
        idx_.clear();
        hid_.clear();
        int64_t visible = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (kv.hidden(h, i)) hid_.push_back(i);
          else if (++visible, tp[i] >= sinks && tp[i] <= last_pos_ - recent) idx_.push_back(i);
        }
        if (visible < b + batch) continue;
        const int64_t e = std::min<int64_t>(visible - b, int64_t(idx_.size()));
        auto weaker = [&](int64_t x, int64_t y) { return weight(x) != weight(y) ? weight(x) < weight(y) : tp[x] < tp[y]; };
        if (e > 0 && e < int64_t(idx_.size())) std::nth_element(idx_.begin(), idx_.begin() + e, idx_.end(), weaker);
        // restore: the strongest hidden against the weakest cells that stay visible, pairwise
        const int64_t m = std::min<int64_t>(int64_t(hid_.size()), int64_t(idx_.size()) - e);
        if (m > 0) {
          std::partial_sort(idx_.begin() + e, idx_.begin() + e + m, idx_.end(), weaker);
          std::sort(hid_.begin(), hid_.end(), [&](int64_t x, int64_t y) { return weaker(y, x); });
          for (int64_t j = 0; j < m && weaker(idx_[size_t(e + j)], hid_[size_t(j)]); ++j) {
            kv.unhide(h, hid_[size_t(j)]), kv.hide(h, idx_[size_t(e + j)]);
            ++stats.restored, ++stats.hidden;
          }
        }
        for (int64_t j = 0; j < e; ++j) kv.hide(h, idx_[size_t(j)]), ++stats.hidden;
        if (int64_t(hid_.size()) + std::max<int64_t>(e, 0) >= bin) {  // the bin is full: remove its cells in one batch
          keep_.resize(size_t(n));
          int64_t gone = 0;
          for (int64_t i = 0; i < n; ++i) gone += !(keep_[size_t(i)] = !kv.hidden(h, i));
          drop(int64_t(l), h, keep_.data(), true);
          stats.evicted += gone;
        }
        list_bin(int64_t(l), h);
      }
    }
  }
  std::vector<int64_t> hid_;
  std::vector<std::vector<std::vector<int64_t>>> bin_;  // [layer][KV head] indices of the hidden cells
  std::vector<std::vector<int64_t>> len_after_;          // [layer][KV head] cells when the last call ended
  void bind() override {
    bin_.assign(layers_.size(), {});
    len_after_.assign(layers_.size(), {});
    for (size_t l = 0; l < layers_.size(); ++l)
      if (layers_[l]) bin_[l].assign(size_t(layers_[l]->heads()), {}), len_after_[l].assign(size_t(layers_[l]->heads()), 0);
  }
};

const bool registered = [] {
  auto& R = Registry::get();
  R.add("full", [](const KVBudget& b) { return std::make_unique<Full>("full", b); });
  R.add("streaming", {{"sinks", 4, "first positions always kept (attention sinks)", at_least(0)}},
        [](const Options& o, const KVBudget& b) { return std::make_unique<Streaming>(o, b); });
  R.add("h2o",
        {{"sinks", 0, "first positions always kept", at_least(0)},
         {"recent", 0.5, "fraction of the budget kept for the newest tokens (the rest: heavy hitters)", fraction()},
         kScope},
        [](const Options& o, const KVBudget& b) { return std::make_unique<H2O>(o, b); });
  R.add("tova", {{"sinks", 0, "first positions always kept", at_least(0)}, {kScope.name, "layer", kScope.help, kScope.check}},
        [](const Options& o, const KVBudget& b) { return std::make_unique<Tova>(o, b); });
  const std::vector<OptionSpec> snap{{"window", 32, "observation window: the prompt's last queries whose attention scores the cells (always kept)", at_least(1)},
                                     {"kernel", 7, "pooling width over neighbouring cells (1: none)", at_least(1)},
                                     {"pool", "max", "max | avg", nn::one_of({"max", "avg"})},
                                     {"sinks", 0, "first positions always kept", at_least(0)},
                                     kScope};
  R.add("snapkv", snap, [](const Options& o, const KVBudget& b) { return std::make_unique<SnapKV>("snapkv", o, b, 0.0); });
  auto pyr = snap;
  pyr.push_back({"beta", 20.0, "top layer's budget = average / beta; bottom = 2 * average - top", at_least(1)});
  R.add("pyramidkv", pyr, [](const Options& o, const KVBudget& b) { return std::make_unique<SnapKV>("pyramidkv", o, b, o.num("beta")); });
  R.add("fastv", {{"layer", 1, "0-based layer whose last-query attention ranks the marked tokens; later layers never see the dropped ones", at_least(0)}},
        [](const Options& o, const KVBudget& b) { return std::make_unique<FastV>(o, b); });
  R.add("hae",
        {{"layer", 0, "0-based layer whose attention decides the prefill pruning (broadcast to every layer); -1: every layer's, averaged", at_least(-1)},
         {"r", 1.0, "global threshold: evict when g_j < r * sum(g) (/ |V| with normalize)", at_least(0)},
         {"normalize", true, "divide the global threshold by the number of marked tokens |V| (r then transfers across image sizes)", nullptr},
         {"alpha", 0.02, "individual threshold: evict only when max_i A_ij < alpha", at_least(0)},
         {"prefill_sinks", 0, "prefill: marked tokens at the first positions are never pruned (1: an image that opens the sequence keeps its attention sink)", at_least(0)},
         {"prune_hidden", false, "also drop the pruned tokens from later layers' hidden states (saves prefill compute)", nullptr},
         {"decode", true, "decode-time eviction with the recycle bin", nullptr},
         {"visual_weight", 0.5, "decode scores of marked (image) cells are multiplied by this: they go first", at_least(0)},
         {"sinks", 4, "decode: first positions never evicted", at_least(0)},
         {"recent", 16, "decode: newest positions never evicted", at_least(0)},
         {"bin", 16, "decode: hidden cells per head that trigger one batched removal", at_least(1)},
         {"batch", 8, "decode: cells over the budget before one selection hides them together (1: every token)", at_least(1)}},
        [](const Options& o, const KVBudget& b) { return std::make_unique<HAE>(o, b); });
  return true;
}();

}  // namespace

std::unique_ptr<KVPolicy> make_kv_policy(const std::string& name, const nlohmann::json& opts, const KVBudget& b) {
  (void)registered;
  return Registry::get().create("kv policy", name, opts, b);
}

std::vector<std::string> kv_policy_names() { return Registry::get().names(); }

std::string describe_kv_policies() {
  std::string out;
  for (const auto& n : Registry::get().names()) {
    const auto& e = Registry::get().entry("kv policy", n);
    out += n + (e.specs.empty() ? "" : " (" + nn::describe_options(e.specs) + ")") + "\n";
  }
  return out;
}

}  // namespace clm
