// Compact token embeddings: the [vocab, d_model] table is built from fewer parameters on every
// training forward (so a tied output projection trains the same parameters), and rebuilt for
// inference only when the parameters changed.
//   see         Sememe Entanglement Encoding: LayerNorm(trunc_d(sum_k f_k[u1] (x) ... (x) f_k[un]))
//   factorized  ALBERT-style: A [V, k] B^T [k, d]
//   hashed      hash embeddings: w[v,1] E[h1(v)] + ... + w[v,h] E[hh(v)], E [buckets, d]
// Choices (PAD, unit-row budget, initialisation): docs/METHODS.md "Compact embeddings".
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_map>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "nn/module.h"
#include "util/fs.h"

namespace clm::nn {
namespace {

uint64_t fnv1a(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
uint64_t hash_str(const std::string& s) { return fnv1a(s.data(), s.size()); }
// A fingerprint of a parameter's bytes, 8 at a time (it runs before every inference call).
uint64_t fingerprint(const void* p, size_t n, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  return fnv1a(b + i, n - i, h);
}

// Integer ids stored in an f32 buffer (exact below 2^24) so that they travel in model.safetensors.
Tensor ids_of(const Var& buf) {
  const Tensor& b = buf->value;
  Tensor t = Tensor::empty(b.shape(), DType::i32);
  int32_t* o = t.data<int32_t>();
  ag::dispatch_float(b.dtype(), [&]<class T>() {
    const T* p = b.data<T>();
    for (int64_t i = 0; i < b.numel(); ++i) {
      if (!(p[i] >= 0 && p[i] < T(1 << 24)) || p[i] != std::floor(p[i]))
        throw std::invalid_argument("embedding: stored id " + std::to_string(double(p[i])) + " is not an integer in [0, 2^24) (corrupt checkpoint?)");
      o[i] = int32_t(p[i]);
    }
  });
  return t;
}
void set_ids(Var& buf, const std::vector<int32_t>& ids) {
  Tensor& b = buf->value;
  if (int64_t(ids.size()) != b.numel()) throw std::logic_error("set_ids: size");
  ag::dispatch_float(b.dtype(), [&]<class T>() {
    T* p = b.data<T>();
    for (size_t i = 0; i < ids.size(); ++i) p[i] = T(ids[i]);
  });
}

// Stand-in words "#0", "#1", ... for a model built before (or without) bind_vocabulary.
std::vector<std::string> id_words(int64_t V) {
  std::vector<std::string> w;
  for (int64_t v = 0; v < V; ++v) w.push_back("#" + std::to_string(v));
  return w;
}

struct BuiltEmbedding : TokenEmbedding {
  Var cache;  // [V, d]: what inference reads and a tied head wraps (rebuilt by refresh)
  Var cur;    // the table built by the last forward, on its tape
  double scale;
  uint64_t stamp = 0;
  bool fresh = false;

  BuiltEmbedding(const ModelConfig& c, Init& init)
      : cache(ag::leaf(Tensor::zeros({c.vocab_size, c.d_model}, init.dtype))),
        scale(c.embed_scale) {}
  virtual Var build() = 0;  // the [V, d] table from the parameters

  Var forward(const Tensor& ids) override {
    cur = build();
    Var e = ag::embedding(cur, ids);
    return scale == 1.0 ? e : ag::scale(e, scale);
  }
  Var output_weight() override { return cache; }
  Var forward_output_weight() override {
    if (!cur) throw std::logic_error("embedding: forward_output_weight before forward");
    return cur;
  }
  bool refresh() override {
    uint64_t h = 1469598103934665603ull;
    visit("", [&](const std::string&, Var& p, ParamKind) { h = fingerprint(p->value.raw(), size_t(p->value.nbytes()), h); });
    if (fresh && h == stamp) return false;
    ag::NoGrad ng;
    Var t = build();
    cache->value.copy_(t->value);
    stamp = h;
    fresh = true;
    return true;
  }
  void infer(const int32_t* ids, int64_t T, float* out) const override {
    const Tensor& tb = cache->value;
    if (!fresh) throw std::logic_error("embedding: infer before refresh");
    if (tb.dtype() != DType::f32) throw std::invalid_argument("inference needs an f32 model");
    kernels::embedding_forward<float>(out, tb.data<float>(), ids, T, tb.dim(0), tb.dim(1));
    if (scale != 1.0) kernels::vec().scale(float(scale), out, T * tb.dim(1));
  }
};

// ---- SEE ----
int64_t factor_size(int64_t d, int64_t n) {  // smallest q with q^n >= d
  for (int64_t q = 1;; ++q) {
    int64_t p = 1;
    for (int64_t j = 0; j < n && p < d; ++j) p *= q;
    if (p >= d) return q;
  }
}

struct SeeEmbedding : BuiltEmbedding {
  int64_t n, r, U, q, d;
  std::string source;
  Var factors, ln_w, ln_b, units;  // units: [V, n] unit rows (0 = PAD), a buffer
  Var gain;                        // word_gain: [V, 1] per-word scales of the normalised rows (or null)
  Tensor row_ids;                  // 0..V-1 as [V, 1]: the gain applied through weighted_rows
  SeeEmbedding(const Options& o, const ModelConfig& c, Init& init)
      : BuiltEmbedding(c, init), n(o.integer("order")), r(o.integer("rank")), U(o.integer("rows")), d(c.d_model), source(o.str("units")) {
    q = factor_size(d, n);
    // std 0 (auto): each product of n factors has variance s^(2n), the r-term sum variance 1. The
    // LayerNorm makes the table independent of this scale, but AdamW's steps are not: a smaller s
    // moves the factors faster (relative step lr/s)
    const double s = o.num("std") > 0 ? o.num("std") : std::pow(double(r), -1.0 / (2.0 * double(n)));
    factors = init.normal({r, U, q}, s);
    // the LayerNorm gain starts at init_std, so the table starts at a dense table's scale (gain 1
    // gives rows of norm sqrt(d): a tied head's first logits would have std sqrt(d))
    ln_w = init.constant({d}, c.init_std);
    ln_b = init.constant({d}, 0.0);
    units = ag::leaf(Tensor::zeros({c.vocab_size, n}, init.dtype));
    if (o.integer("word_gain")) {
      gain = init.constant({c.vocab_size, 1}, 1.0);
      std::vector<int32_t> ids(size_t(c.vocab_size));
      for (int64_t v = 0; v < c.vocab_size; ++v) ids[size_t(v)] = int32_t(v);
      row_ids = Tensor::from(ids, {c.vocab_size, 1});
    }
    if (init.random) assign(hash_units(id_words(c.vocab_size)));  // until bind_vocabulary: each id hashed into n rows
  }
  std::vector<std::vector<std::string>> hash_units(const std::vector<std::string>& words) const {
    std::vector<std::vector<std::string>> u(words.size());
    for (size_t v = 0; v < words.size(); ++v)
      for (int64_t j = 0; j < n; ++j) u[v].push_back("h" + std::to_string(j) + ":" + words[v]);
    return u;
  }
  // Unit strings per word (priority order) -> rows: the U-1 most used strings get rows of their own,
  // the rest are hashed into [1, U); missing slots get row 0 (PAD).
  void assign(const std::vector<std::vector<std::string>>& per_word, bool report = false) {
    std::unordered_map<std::string, int64_t> uses;
    for (auto& us : per_word)
      for (size_t j = 0; j < us.size() && int64_t(j) < n; ++j) ++uses[us[j]];
    std::vector<std::pair<std::string, int64_t>> order(uses.begin(), uses.end());
    std::sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    std::unordered_map<std::string, int32_t> row;
    for (size_t i = 0; i < order.size(); ++i)
      row[order[i].first] = int64_t(i) < U - 1 ? int32_t(i + 1) : int32_t(1 + hash_str(order[i].first) % uint64_t(U - 1));
    std::vector<int32_t> ids(per_word.size() * size_t(n), 0);
    std::map<std::vector<int32_t>, int> tuples;
    for (size_t v = 0; v < per_word.size(); ++v) {
      for (size_t j = 0; j < per_word[v].size() && int64_t(j) < n; ++j) ids[v * size_t(n) + j] = row[per_word[v][j]];
      ++tuples[std::vector<int32_t>(ids.begin() + std::ptrdiff_t(v * size_t(n)), ids.begin() + std::ptrdiff_t((v + 1) * size_t(n)))];
    }
    set_ids(units, ids);
    fresh = false;
    if (report)
      std::fprintf(stderr, "see: %zu words, %zu distinct units into %lld rows (%lld shared by hashing), %zu distinct unit tuples, %lld parameters\n",
                   per_word.size(), order.size(), (long long)U, (long long)std::max<int64_t>(0, int64_t(order.size()) - (U - 1)),
                   tuples.size(), (long long)(factors->value.numel() + 2 * d + (gain ? gain->value.numel() : 0)));
  }
  void bind_vocabulary(const std::vector<std::string>& words) override {
    if (int64_t(words.size()) != units->value.dim(0))
      throw std::invalid_argument("see: " + std::to_string(words.size()) + " words for a vocabulary of " + std::to_string(units->value.dim(0)));
    if (source == "hash") return assign(hash_units(words), true);
    // a units file (clm units): "word<TAB>unit unit ..." per line
    std::unordered_map<std::string, std::vector<std::string>> table;
    std::istringstream in(read_file(source));
    std::string line;
    int64_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      const size_t tab = line.find('\t');
      if (line.empty() || (line[0] == '#' && tab == std::string::npos)) continue;  // a comment (a word "#" has a tab)
      if (tab == std::string::npos) throw std::runtime_error("'" + source + "' line " + std::to_string(lineno) + ": expected word<TAB>units");
      std::istringstream us(line.substr(tab + 1));
      std::vector<std::string> u;
      for (std::string x; us >> x;) u.push_back(x);
      table[line.substr(0, tab)] = std::move(u);
    }
    std::vector<std::vector<std::string>> per_word;
    for (size_t v = 0; v < words.size(); ++v) {
      auto it = table.find(words[v]);
      if (it == table.end()) {
        if (words[v] == "<mask>") {  // the masked-LM row, added by training
          per_word.push_back(hash_units({words[v]})[0]);
          continue;
        }
        throw std::invalid_argument("see: the units file '" + source + "' does not match the vocabulary: '" + words[v] +
                                    "' (id " + std::to_string(v) + ") is missing (build it with clm units for this corpus)");
      }
      per_word.push_back(it->second);
    }
    if (table.size() + (words.back() == "<mask>" ? 1 : 0) != words.size())
      throw std::invalid_argument("see: the units file '" + source + "' has " + std::to_string(table.size()) +
                                  " words, the vocabulary " + std::to_string(words.size()) + ": built for another corpus?");
    assign(per_word, true);
  }
  Var build() override {
    Var rows = ag::layernorm(ag::tensor_product_rows(factors, ids_of(units), d), ln_w, ln_b, 1e-5);
    return gain ? ag::weighted_rows(rows, row_ids, gain) : rows;
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".factors", factors, ParamKind::embedding);
    f(p + ".norm.weight", ln_w, ParamKind::norm);
    f(p + ".norm.bias", ln_b, ParamKind::norm);
    f(p + ".units", units, ParamKind::buffer);
    if (gain) f(p + ".word_gain", gain, ParamKind::norm);
  }
};

// ---- ALBERT-style factorised embedding ----
struct FactorizedEmbedding : BuiltEmbedding {
  Var a, b;  // [V, k], [d, k]
  FactorizedEmbedding(const Options& o, const ModelConfig& c, Init& init) : BuiltEmbedding(c, init) {
    const int64_t k = o.integer("k");
    // both factors at the same scale, rows of A B^T with std init_std: AdamW moves each by the same
    // relative step (A ~ N(0, 1) with a tiny B barely trains: its steps are 1e-3 of its size)
    const double s = std::sqrt(c.init_std / std::sqrt(double(k)));
    a = init.normal({c.vocab_size, k}, s);
    b = init.normal({c.d_model, k}, s);
  }
  Var build() override { return ag::linear(a, b); }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".weight", a, ParamKind::embedding);
    f(p + ".proj.weight", b, ParamKind::weight);
  }
};

// ---- hash embeddings (Svenstrup et al. 2017) ----
struct HashedEmbedding : BuiltEmbedding {
  int64_t buckets, h;
  Var table, w, idx;  // [buckets, d], [V, h] importance weights, [V, h] bucket ids (a buffer)
  HashedEmbedding(const Options& o, const ModelConfig& c, Init& init)
      : BuiltEmbedding(c, init), buckets(o.integer("buckets")), h(o.integer("hashes")) {
    table = init.normal({buckets, c.d_model}, c.init_std);
    w = init.constant({c.vocab_size, h}, 1.0);
    idx = ag::leaf(Tensor::zeros({c.vocab_size, h}, init.dtype));
    if (init.random) bind_vocabulary(id_words(c.vocab_size));
  }
  void bind_vocabulary(const std::vector<std::string>& words) override {
    if (int64_t(words.size()) != idx->value.dim(0))
      throw std::invalid_argument("hashed: " + std::to_string(words.size()) + " words for a vocabulary of " + std::to_string(idx->value.dim(0)));
    std::vector<int32_t> ids;
    for (auto& wd : words)
      for (int64_t j = 0; j < h; ++j) ids.push_back(int32_t(hash_str("h" + std::to_string(j) + ":" + wd) % uint64_t(buckets)));
    set_ids(idx, ids);
    fresh = false;
  }
  Var build() override { return ag::weighted_rows(table, ids_of(idx), w); }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".buckets", table, ParamKind::embedding);
    f(p + ".importance", w, ParamKind::embedding);
    f(p + ".bucket_ids", idx, ParamKind::buffer);
  }
};

std::function<std::string(const nlohmann::json&)> int_in(int64_t lo, int64_t hi) {
  return [lo, hi](const nlohmann::json& v) {
    return v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi
               ? std::string()
               : "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  };
}

const bool reg_see = EmbeddingRegistry::get().add(
    "see",
    {{"order", 3, "n: tensor order, units per word (factor size q = ceil(d^(1/n)))",
      int_in(2, 8)},
     {"rank", 7, "r: terms in the sum of tensor products", int_in(1, 256)},
     {"rows", 1024, "U: factor-table rows (row 0 is PAD); sets the parameter count r*U*q",
      int_in(2, 1 << 24)},
     {"std", 0.0, "initial std of the factors (0: r^(-1/(2n)), the sum then has unit variance)",
      [](const nlohmann::json& v) {
        return v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 10 ? std::string() : std::string("must be in [0, 10]");
      }},
     {"word_gain", 0, "1: a learned scale per word on the normalised rows (V parameters; the LayerNorm alone gives every row the same norm)",
      int_in(0, 1)},
     {"units", "hash", "hash (n hashed units per word) | a file made by `clm units` (word<TAB>units)",
      [](const nlohmann::json& v) {
        return v.is_string() && !v.get<std::string>().empty() ? std::string() : std::string("must be hash or a units file");
      }}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<SeeEmbedding>(o, c, i); });

const bool reg_factorized = EmbeddingRegistry::get().add(
    "factorized",
    {{"k", 64, "inner size: A [V, k] B^T [k, d]", int_in(1, 1 << 16)}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<FactorizedEmbedding>(o, c, i); });

const bool reg_hashed = EmbeddingRegistry::get().add(
    "hashed",
    {{"buckets", 1024, "rows of the shared table", int_in(1, 1 << 24)},
     {"hashes", 2, "hash functions (rows summed per word, each with a learned weight)",
      int_in(1, 16)}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<HashedEmbedding>(o, c, i); });

}  // namespace
}  // namespace clm::nn
