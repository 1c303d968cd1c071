// TransformerLM: config round trip and validation, slot registry, KV-cached decoding against full
// recomputation, sampler behaviour.
#include <atomic>
#include <fstream>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "common.h"
#include "infer/chat.h"
#include "infer/generate.h"
#include "nn/kv_cache.h"
#include "models/transformer.h"

using namespace clm;

// Every operator new in this test binary is counted (for the no-allocation-per-token test).
static std::atomic<int64_t> g_news{0};
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  ++g_news;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

static ModelConfig small(const std::string& pos = "rope") {
  ModelConfig c;
  c.vocab_size = 50, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48;
  c.max_seq_len = 32, c.position = pos, c.init_std = 0.2;
  return c;
}

// Logits of `seq` at every position by recomputing the whole sequence (the training forward).
static Tensor full_logits(LanguageModel& m, const std::vector<int32_t>& seq) {
  ag::NoGrad ng;
  const int64_t n = (int64_t)seq.size();
  return m.forward(Tensor::from(seq, {n}), 1, n)->value.reshape({n, m.config().vocab_size});
}
static Tensor row(const Tensor& t, int64_t r) { return t.slice(0, r, r + 1).contiguous().reshape({t.dim(1)}); }
static Tensor vec_of(const float* p, int64_t n) { return Tensor::from(std::vector<float>(p, p + n), {n}); }

// UBSan in fuzz/fuzz_config (on an input written after reading the code): nlohmann's get<int64_t> converts 1e300 with undefined
// behaviour; integer fields take integers (or integral floats such as 64.0) in range only.
TEST(Config, IntegerFieldsRefuseFloatsOutOfRange) {
  nlohmann::json j = small();
  j["d_model"] = 64.0;
  EXPECT_EQ(j.get<ModelConfig>().d_model, 64);
  for (double bad : {1e300, -1e300, 9.3e18, 64.5}) {
    j["d_model"] = bad;
    try {
      (void)j.get<ModelConfig>();
      ADD_FAILURE() << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), "model config: d_model must be an integer, not a number out of range or with a fraction");
    }
  }
}

TEST(Config, JsonRoundTripAndValidation) {
  ModelConfig c = small();
  c.tie_embeddings = true, c.mlp = "gelu";
  nlohmann::json j = c;
  ModelConfig d = j.get<ModelConfig>();
  EXPECT_EQ(nlohmann::json(d), j);
  j["d_modle"] = 3;
  EXPECT_THROW(j.get<ModelConfig>(), std::invalid_argument);
  ModelConfig bad = small();
  bad.n_heads = 5;
  try {
    bad.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("n_heads (5) must divide d_model (32)"), std::string::npos);
  }
  bad = small(), bad.n_kv_heads = 3;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

TEST(Registry, UnknownVariantListsKnownOnes) {
  ModelConfig c = small();
  c.attention = "flash9000";
  try {
    TransformerLM m(c);
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string s = e.what();
    EXPECT_NE(s.find("unknown attention 'flash9000'"), std::string::npos);
    EXPECT_NE(s.find("causal"), std::string::npos);
  }
}

// A variant with options, registered by the test: RMSNorm whose output is multiplied by `gain`.
namespace {
struct GainNorm : nn::Norm {
  nn::Var w;
  double gain;
  GainNorm(int64_t d, const nn::Options& o, nn::Init& init) : w(init.constant({d}, 1.0)), gain(o.num("gain")) {}
  nn::Var forward(const nn::Var& x) override { return ag::scale(ag::rmsnorm(x, w, 1e-5), gain); }
  void infer(const float* x, float* y, int64_t T) const override {
    const int64_t D = w->value.numel();
    for (int64_t i = 0; i < T * D; ++i) y[i] = x[i];
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += double(x[t * D + i]) * x[t * D + i];
      const double r = 1.0 / std::sqrt(ss / double(D) + 1e-5);
      for (int64_t i = 0; i < D; ++i) y[t * D + i] = float(x[t * D + i] * r * gain);
    }
  }
  void visit(const std::string& p, const nn::ParamVisitor& f) override { f(p + ".weight", w, nn::ParamKind::norm); }
};
const bool reg_gain = nn::NormRegistry::get().add(
    "test_gain", {{"gain", 1.0, "output scale", [](const nlohmann::json& v) { return v.get<double>() > 0 ? "" : "must be > 0"; }}},
    [](const nn::Options& o, int64_t d, const ModelConfig&, nn::Init& i) { return std::make_unique<GainNorm>(d, o, i); });
}  // namespace

TEST(Options, VariantsDeclareCheckAndReceiveTheirOptions) {
  ModelConfig c = small();
  c.norm = "test_gain";
  auto err = [&](const ModelConfig& cfg) -> std::string {
    try {
      TransformerLM m(cfg, 1);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  c.norm_opt = {{"gian", 2.0}};
  EXPECT_NE(err(c).find("norm 'test_gain' has no option 'gian' (options: gain=1.0)"), std::string::npos) << err(c);
  c.norm_opt = {{"gain", "big"}};
  EXPECT_NE(err(c).find("option 'gain' must be a number"), std::string::npos) << err(c);
  c.norm_opt = {{"gain", -1}};
  EXPECT_NE(err(c).find("must be > 0"), std::string::npos) << err(c);
  ModelConfig plain = small();
  plain.attention_opt = {{"x", 1}};
  EXPECT_NE(err(plain).find("attention 'causal' has no option 'x' (options: causal=true)"), std::string::npos) << err(plain);
  plain.attention_opt = nullptr, plain.position = "learned", plain.position_opt = {{"x", 1}};
  EXPECT_NE(err(plain).find("position 'learned' has no option 'x' (it takes none)"), std::string::npos) << err(plain);
  // the option reaches the variant: gain 2 vs the default 1 changes the logits; JSON round trip keeps it
  c.norm_opt = nlohmann::json::object();
  nn::set_option(c.norm_opt, "gain=2", "--norm-opt");
  EXPECT_EQ(c.norm_opt, (nlohmann::json{{"gain", 2}}));
  ModelConfig back = nlohmann::json(c).get<ModelConfig>();
  EXPECT_EQ(back.norm_opt, c.norm_opt);
  EXPECT_FALSE(nlohmann::json(small()).contains("norm_opt")) << "unset options are not written";
  ModelConfig one = c;
  one.norm_opt = nlohmann::json::object();
  TransformerLM m2(c, 1), m1(one, 1);
  std::vector<int32_t> seq{1, 2, 3};
  InferState s2 = m2.make_state(4), s1 = m1.make_state(4);
  Tensor a = vec_of(m2.infer(s2, seq), 50), b = vec_of(m1.infer(s1, seq), 50);
  EXPECT_GT(test::rel_err(a, b), 1e-3);
  EXPECT_LT(test::rel_err(a, row(full_logits(m2, seq), 2)), 1e-5) << "infer and forward agree on the option";
  EXPECT_THROW(nn::set_option(c.norm_opt, "gain", "--norm-opt"), std::invalid_argument);
  EXPECT_NE(nn::NormRegistry::get().describe().find("test_gain (gain=1.0)"), std::string::npos);
}

TEST(Model, ParameterCountMatchesFormula) {
  ModelConfig c = small();
  TransformerLM m(c);
  const int64_t D = 32, hd = 8, layer = D * 4 * hd + 2 * D * 2 * hd + 4 * hd * D + 3 * D * 48 + 2 * D;
  EXPECT_EQ(m.num_params(), 50 * D + 2 * layer + D + 50 * D);
  c.tie_embeddings = true;
  EXPECT_EQ(TransformerLM(c).num_params(), 50 * D + 2 * layer + D);
}

TEST(Model, SameSeedSameWeightsDifferentSeedDifferent) {
  TransformerLM a(small(), 1), b(small(), 1), c(small(), 2);
  std::vector<Tensor> wa, wb, wc;
  a.visit([&](auto&, nn::Var& v, auto) { wa.push_back(v->value); });
  b.visit([&](auto&, nn::Var& v, auto) { wb.push_back(v->value); });
  c.visit([&](auto&, nn::Var& v, auto) { wc.push_back(v->value); });
  EXPECT_EQ(test::rel_err(wa[0], wb[0]), 0.0);
  EXPECT_GT(test::rel_err(wa[0], wc[0]), 0.1);
}

// A slot combination: attention and position variants with options.
struct Variant {
  std::string name, attention = "causal", position = "rope";
  nlohmann::json attention_opt = nullptr, position_opt = nullptr;
  std::string embedding = "standard";
  nlohmann::json embedding_opt = nullptr;
  ModelConfig config() const {
    ModelConfig c = small(position);
    c.attention = attention, c.attention_opt = attention_opt, c.position_opt = position_opt;
    c.embedding = embedding, c.embedding_opt = embedding_opt;
    if (embedding != "standard") c.tie_embeddings = true;  // the built table is also the head
    if (position == "3d-rpe") c.max_seq_len = 40;  // chunk 5 < training length, positions beyond 4 chunks
    return c;
  }
};
class CacheParity : public ::testing::TestWithParam<Variant> {};

// Inference token by token through the layer states (KV cells, running d x d sums) gives the logits
// of recomputing the whole prefix.
TEST_P(CacheParity, CachedDecodingEqualsRecompute) {
  TransformerLM m(GetParam().config(), 3);
  std::vector<int32_t> seq{1, 7, 3, 9, 22, 41, 5, 5, 0, 13, 2, 8};
  const int64_t V = 50, P = 5;
  Tensor full = full_logits(m, seq);
  InferState st = m.make_state(16);
  // prefill the first P tokens, then one at a time
  const float* l = m.infer(st, std::span<const int32_t>(seq).first(P));
  EXPECT_LT(test::rel_err(vec_of(l, V), row(full, P - 1)), 1e-5);
  for (size_t t = P; t < seq.size(); ++t) {
    l = m.infer(st, std::span<const int32_t>(&seq[t], 1));
    EXPECT_LT(test::rel_err(vec_of(l, V), row(full, int64_t(t))), 1e-5) << "position " << t;
  }
  EXPECT_EQ(st.next_pos, (int64_t)seq.size());
  if (auto* kv = dynamic_cast<nn::KVCells*>(st.layers[0].get())) {
    for (int64_t h = 0; h < kv->heads(); ++h) {
      ASSERT_EQ(kv->len(h), (int64_t)seq.size());
      for (int64_t i = 0; i < kv->len(h); ++i) EXPECT_EQ(kv->pos(h)[i], i);
    }
  } else {
    EXPECT_EQ(m.state_bytes_per_token(), 0u) << "a constant-size state";
  }
}
INSTANTIATE_TEST_SUITE_P(
    Variants, CacheParity,
    ::testing::Values(Variant{"rope"}, Variant{"learned", "causal", "learned"}, Variant{"none", "causal", "none"},
                      Variant{"alibi", "causal", "alibi"}, Variant{"yarn", "causal", "rope", nullptr, {{"scaling", "yarn"}, {"scale", 4.0}}},
                      Variant{"ntk", "causal", "rope", nullptr, {{"scaling", "ntk"}, {"scale", 2.0}}},
                      Variant{"pi", "causal", "rope", nullptr, {{"scaling", "pi"}, {"scale", 3.0}}},
                      Variant{"rpe3d", "causal", "3d-rpe", nullptr, {{"chunk", 5}, {"phi", 0.3}}},
                      Variant{"rpe3d_official", "causal", "3d-rpe", nullptr, {{"chunk", 3}, {"phase", "official"}, {"scale", 2.0}}},
                      Variant{"tensorcoder", "tensorcoder"},
                      Variant{"tensorcoder_cols", "tensorcoder", "rope", {{"f", "softmax_cols"}, {"scale", "sqrt_n"}}},
                      Variant{"multilinear", "multilinear"}, Variant{"multilinear_r16_alibi", "multilinear", "alibi", {{"rank", 16}}},
                      Variant{"see", "causal", "rope", nullptr, nullptr, "see", {{"order", 2}, {"rank", 3}, {"rows", 20}}},
                      Variant{"see_gain", "causal", "rope", nullptr, nullptr, "see", {{"order", 3}, {"rank", 2}, {"rows", 9}, {"word_gain", 1}}},
                      Variant{"factorized", "causal", "rope", nullptr, nullptr, "factorized", {{"k", 6}}},
                      Variant{"hashed", "causal", "rope", nullptr, nullptr, "hashed", {{"buckets", 9}}}),
    [](const auto& info) { return info.param.name; });

// Recurrent models (TSLM, LSTM): prefill then token-by-token decoding through the recurrent state
// gives the logits of the training forward; the state cannot be truncated into the past.
TEST(Recurrent, DecodingEqualsTheForward) {
  for (std::string arch : {"tslm", "lstm"}) {
    ModelConfig c = small("rope");
    c.arch = arch, c.init_std = 0.3;
    auto m = make_model(c, 7);
    std::vector<int32_t> seq{1, 7, 3, 9, 22, 41, 5, 5, 0, 13};
    const int64_t V = c.vocab_size, P = 4;
    Tensor full = full_logits(*m, seq);
    InferState st = m->make_state(16);
    const float* l = m->infer(st, std::span<const int32_t>(seq).first(P));
    EXPECT_LT(test::rel_err(vec_of(l, V), row(full, P - 1)), 1e-5) << arch;
    for (size_t t = P; t < seq.size(); ++t) {
      l = m->infer(st, std::span<const int32_t>(&seq[t], 1));
      EXPECT_LT(test::rel_err(vec_of(l, V), row(full, int64_t(t))), 1e-5) << arch << " position " << t;
    }
    EXPECT_EQ(m->state_bytes_per_token(), 0u);
    EXPECT_TRUE(st.layers[0]->truncate(int64_t(seq.size())));
    EXPECT_FALSE(st.layers[0]->truncate(3));
    c.attention = "tensorcoder";
    EXPECT_THROW(make_model(c, 7), std::invalid_argument) << "a transformer option on a recurrent model";
  }
}

// In training with carry_state, a batch continues from the state the previous batch ended in
// (truncated BPTT over contiguous lanes): two halves of a sequence give the whole sequence's logits.
TEST(Recurrent, CarriedStateContinuesTheSequence) {
  for (std::string arch : {"tslm", "lstm"}) {
    ModelConfig c = small("rope");
    c.arch = arch, c.init_std = 0.3;
    auto m = make_model(c, 7);
    std::vector<int32_t> seq{1, 7, 3, 9, 22, 41, 5, 5};
    Tensor full = full_logits(*m, seq);
    m->carry_state(true);
    nn::Var va = m->forward(Tensor::from(std::vector<int32_t>(seq.begin(), seq.begin() + 4), {4}), 1, 4);
    nn::Var vb = m->forward(Tensor::from(std::vector<int32_t>(seq.begin() + 4, seq.end()), {4}), 1, 4);
    Tensor a = va->value, b = vb->value;
    for (int64_t t = 0; t < 4; ++t) {
      EXPECT_LT(test::rel_err(row(a.reshape({4, c.vocab_size}), t), row(full, t)), 1e-5) << arch;
      EXPECT_LT(test::rel_err(row(b.reshape({4, c.vocab_size}), t), row(full, t + 4)), 1e-5) << arch << " carried";
    }
    ag::backward(ag::add(ag::sum(va), ag::sum(vb)));  // consumes the tape (the carried state is a constant)
  }
}

// A built embedding table (SEE, factorized, hashed) is rebuilt for inference when its parameters
// change (an optimizer step, a load), and a packed tied head is re-packed with it.
TEST(Embedding, BuiltTableFollowsItsParameters) {
  for (std::string e : {"see", "factorized", "hashed"}) {
    ModelConfig c = small("rope");
    c.embedding = e, c.tie_embeddings = true;
    TransformerLM m(c, 5);
    m.pack("f32");
    std::vector<int32_t> seq{4, 9, 1, 33, 2, 7};
    const int64_t V = c.vocab_size;
    auto check = [&](const char* when) {
      Tensor full = full_logits(m, seq);
      InferState st = m.make_state(8);
      st.all_logits = true;
      m.infer(st, seq);
      for (size_t t = 0; t < seq.size(); ++t)
        EXPECT_LT(test::rel_err(vec_of(st.logits.data() + t * size_t(V), V), row(full, int64_t(t))), 1e-5) << e << " " << when << " position " << t;
    };
    check("fresh");
    m.visit([&](const std::string& name, nn::Var& v, nn::ParamKind kind) {
      if (kind == nn::ParamKind::buffer || name.rfind("model.embed_tokens", 0) != 0) return;
      for (int64_t i = 0; i < v->value.numel(); ++i) v->value.data<float>()[i] += 0.05f * float((i * 7) % 5 - 2);
    });
    check("after an update");
  }
}

// SEE's unit assignment: words with the same units get the same rows; rows beyond the budget are
// shared by hashing; a units file that does not match the vocabulary is refused.
TEST(Embedding, SeeBindsWordsToUnitRows) {
  ModelConfig c = small("rope");
  c.vocab_size = 4, c.embedding = "see", c.tie_embeddings = true;
  const std::string path = ::testing::TempDir() + "/see_units.txt";
  {
    std::ofstream f(path);
    f << "# test\nbig\tsyn:a1 lex:0 sw:big</w>\nlarge\tsyn:a1 lex:0 sw:large</w>\nthe\tsw:the</w>\ncat\tsyn:n2 hyp:n3\n";
  }
  c.embedding_opt = {{"order", 3}, {"rank", 2}, {"rows", 64}, {"units", path}};
  TransformerLM m(c, 1);
  m.bind_vocabulary({"big", "large", "the", "cat"});
  Tensor u;
  m.visit([&](const std::string& name, nn::Var& v, nn::ParamKind) {
    if (name == "model.embed_tokens.units") u = v->value;
  });
  ASSERT_EQ(u.shape(), (Shape{4, 3}));
  EXPECT_EQ(u.at(0), u.at(3));   // big and large share syn:a1
  EXPECT_EQ(u.at(1), u.at(4));   // ... and lex:0
  EXPECT_NE(u.at(2), u.at(5));   // but not their pieces
  EXPECT_EQ(u.at(7), 0.0);       // "the": one unit, then PAD
  EXPECT_EQ(u.at(8), 0.0);
  EXPECT_EQ(u.at(11), 0.0);      // "cat": two units, then PAD
  EXPECT_EQ(u.at(1), 1.0);       // the most used units get the first rows (ties by name: lex:0, then syn:a1)
  EXPECT_EQ(u.at(0), 2.0);
  EXPECT_THROW(m.bind_vocabulary({"big", "large", "the", "dog"}), std::invalid_argument);
  c.embedding_opt["rows"] = 3;  // 7 distinct units into rows 1..2: all in range
  TransformerLM small_rows(c, 1);
  small_rows.bind_vocabulary({"big", "large", "the", "cat"});
  small_rows.visit([&](const std::string& name, nn::Var& v, nn::ParamKind) {
    if (name != "model.embed_tokens.units") return;
    for (int64_t i = 0; i < v->value.numel(); ++i) EXPECT_TRUE(v->value.at(i) >= 0 && v->value.at(i) < 3);
  });
}

// The cos and sin of pair i at position p as a position encoding applies them: a unit vector in pair
// i's first slot, rotated in place (rotate-half pairs: i and i + hd/2).
static std::pair<double, double> turn(nn::PositionEncoding& pe, int64_t hd, int64_t i, int32_t p) {
  std::vector<float> x(size_t(hd), 0.0f);
  x[size_t(i)] = 1.0f;
  nn::Workspace ws;
  nn::InferCtx ctx;
  ctx.pos = &p, ctx.ws = &ws;
  pe.infer_rotate(x.data(), 1, ctx);
  return {x[size_t(i)], x[size_t(i + hd / 2)]};
}

// Each rotary variant's angle against its formula (docs/METHODS.md), at positions inside and far
// beyond the training length; hd = 8, theta = 10^4.
TEST(Position, RotaryAnglesFollowTheirFormulas) {
  const ModelConfig c = small();  // max_seq_len 32
  const double PI = 3.14159265358979323846;
  auto w = [](double theta, int64_t i) { return std::pow(theta, -2.0 * double(i) / 8.0); };
  struct Row {
    std::string variant;
    nlohmann::json opt;
    std::function<double(int64_t p, int64_t i)> angle;
    double mag = 1.0;
  };
  const double s = 4.0, yarn_m = 0.1 * std::log(s) + 1.0;
  auto yarn = [&](int64_t p, int64_t i) {
    const double turns = 32.0 * w(1e4, i) / (2 * PI), g = std::clamp((turns - 1.0) / 31.0, 0.0, 1.0);
    return double(p) * ((1 - g) * w(1e4, i) / s + g * w(1e4, i));
  };
  const std::vector<Row> rows = {
      {"rope", nullptr, [&](int64_t p, int64_t i) { return double(p) * w(1e4, i); }},
      {"rope", {{"scaling", "pi"}, {"scale", s}}, [&](int64_t p, int64_t i) { return double(p) / s * w(1e4, i); }},
      {"rope", {{"scaling", "ntk"}, {"scale", s}}, [&](int64_t p, int64_t i) { return double(p) * w(1e4 * std::pow(s, 8.0 / 6.0), i); }},
      {"rope", {{"scaling", "yarn"}, {"scale", s}}, yarn, yarn_m},
      {"3d-rpe", {{"chunk", 5}, {"phi", 0.3}},
       [&](int64_t p, int64_t i) { return double(p % 5) * w(1e4, i) - 0.3 * double(p / 5); }},
      {"3d-rpe", {{"chunk", 5}, {"phase", "official"}},
       [&](int64_t p, int64_t i) { return double(p % 5) * w(1e4, i) - std::pow(1e4, -double(p / 5)); }},
      {"3d-rpe", {{"chunk", 5}, {"phi", 0.3}, {"scale", 2.0}},
       [&](int64_t p, int64_t i) {
         const double x = double(p) / 2.0, j = std::floor(x / 5.0);
         return (x - 5.0 * j) * w(1e4, i) - 0.3 * j;
       }},
  };
  for (auto& r : rows) {
    nn::Init init{Rng(1)};
    auto pe = nn::PositionRegistry::get().create("position", r.variant, r.opt, c, init);
    for (int32_t p : {0, 1, 4, 5, 7, 31, 100, 1000})
      for (int64_t i = 0; i < 4; ++i) {
        auto [cs, sn] = turn(*pe, 8, i, p);
        const double a = r.angle(p, i);
        EXPECT_NEAR(cs, r.mag * std::cos(a), 2e-6) << r.variant << " " << r.opt.dump() << " p=" << p << " i=" << i;
        EXPECT_NEAR(sn, r.mag * std::sin(a), 2e-6) << r.variant << " " << r.opt.dump() << " p=" << p << " i=" << i;
      }
  }
}

// YaRN keeps the fastest frequency, interpolates the slowest by s; ALiBi's slopes are the paper's.
TEST(Position, YarnRampEndsAndAlibiSlopes) {
  const ModelConfig c = small();
  nn::Init init{Rng(1)};
  auto yarn = nn::PositionRegistry::get().create("position", "rope", {{"scaling", "yarn"}, {"scale", 4.0}, {"orig_len", 4096}}, c, init);
  auto rope = nn::PositionRegistry::get().create("position", "rope", c, init);
  auto pi = nn::PositionRegistry::get().create("position", "rope", {{"scaling", "pi"}, {"scale", 4.0}}, c, init);
  const double m = 0.1 * std::log(4.0) + 1.0;
  for (int32_t p : {3, 50}) {
    EXPECT_NEAR(turn(*yarn, 8, 0, p).second / m, turn(*rope, 8, 0, p).second, 1e-6) << "fast pair kept";
    EXPECT_NEAR(turn(*yarn, 8, 3, p).second / m, turn(*pi, 8, 3, p).second, 1e-6) << "slow pair interpolated";
  }
  auto alibi = nn::PositionRegistry::get().create("position", "alibi", c, init);
  EXPECT_DOUBLE_EQ(alibi->alibi_slope(0, 8), 0.5);
  EXPECT_DOUBLE_EQ(alibi->alibi_slope(7, 8), 1.0 / 256);
  // 6 heads: the 4-head slopes 2^-2..2^-8, then 2^-1, 2^-3 (every other slope of 8 heads)
  const double six[] = {0.25, 1.0 / 16, 1.0 / 64, 1.0 / 256, 0.5, 0.125};
  for (int h = 0; h < 6; ++h) EXPECT_DOUBLE_EQ(alibi->alibi_slope(h, 6), six[h]) << h;
  EXPECT_EQ(rope->alibi_slope(0, 8), 0.0);
}

TEST(Position, BadVariantsAndOptionsAreOneLineErrors) {
  ModelConfig c = small();
  auto err = [&](const std::string& slot, const std::string& name, const nlohmann::json& opt) -> std::string {
    ModelConfig m = c;
    (slot == "attention" ? m.attention : m.position) = name;
    (slot == "attention" ? m.attention_opt : m.position_opt) = opt;
    try {
      TransformerLM lm(m, 1);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(err("position", "rpe", nullptr).find("unknown position 'rpe' (known: 3d-rpe, alibi"), std::string::npos);
  EXPECT_NE(err("position", "3d-rpe", {{"chunk", 32}}).find("chunk 32 must be below max_seq_len 32"), std::string::npos);
  EXPECT_NE(err("position", "3d-rpe", {{"chunk", 0}}).find("option 'chunk' = 0: must be >= 1"), std::string::npos);
  EXPECT_NE(err("position", "rope", {{"scaling", "pi"}, {"scale", 0.5}}).find("option 'scale' = 0.5: must be in [1, 1e6]"), std::string::npos);
  EXPECT_NE(err("position", "rope", {{"scale", 2.0}}).find("needs scaling=pi|ntk|yarn"), std::string::npos);
  EXPECT_NE(err("position", "rope", {{"scaling", "linear"}}).find("must be none | pi | ntk | yarn"), std::string::npos);
  EXPECT_NE(err("attention", "tensorcoder", {{"f", "sigmoid"}}).find("must be softmax_rows | softmax_cols"), std::string::npos);
  EXPECT_NE(err("attention", "multilinear", {{"rank", 12}}).find("rank 12 must be a multiple of the head dim 8"), std::string::npos);
  // a bidirectional TensorCoder trains but cannot decode; alibi needs token-pair scores
  ModelConfig bi = c;
  bi.attention = "tensorcoder", bi.attention_opt = {{"causal", false}};
  TransformerLM m(bi, 1);
  InferState st = m.make_state(8);
  std::vector<int32_t> ids{1, 2};
  EXPECT_THROW(m.infer(st, ids), std::invalid_argument);
  bi.attention_opt = nullptr, bi.position = "alibi";
  TransformerLM ma(bi, 1);
  EXPECT_THROW(ma.forward(Tensor::from(ids, {2}), 1, 2), std::invalid_argument);
}

TEST(Model, StateOverflowAndBadIdsAreErrors) {
  TransformerLM m(small(), 3);
  InferState st = m.make_state(2);
  std::vector<int32_t> three{1, 2, 3};
  EXPECT_THROW(m.infer(st, three), std::length_error);
  std::vector<int32_t> bad{1, 99};
  EXPECT_THROW(m.infer(st, bad), std::out_of_range);  // id >= vocab
  EXPECT_THROW(m.forward(Tensor::from(std::vector<int32_t>{1, 99}, {2}), 1, 2), std::out_of_range);
  EXPECT_THROW(m.pack("fp3"), std::invalid_argument);
}

// Cells carry their positions: after removing cells (eviction), attention masks by position and
// new tokens continue at the true length. Removing nothing, or truncating to a prefix, equals a
// fresh computation.
TEST(KVCells, RemovalKeepsPositionsAndTruncateEqualsFreshPrefix) {
  TransformerLM m(small(), 5);
  std::vector<int32_t> seq{4, 8, 15, 16, 23, 42, 7, 1};
  InferState st = m.make_state(16);
  m.infer(st, std::span<const int32_t>(seq).first(6));
  auto& kv = static_cast<nn::KVCells&>(*st.layers[1]);
  std::vector<uint8_t> keep{1, 0, 1, 1, 0, 1};  // drop positions 1 and 4 of head 0 only
  EXPECT_EQ(kv.compact(0, keep.data()), 4);
  EXPECT_EQ(kv.len(1), 6);
  EXPECT_EQ(std::vector<int32_t>(kv.pos(0), kv.pos(0) + 4), (std::vector<int32_t>{0, 2, 3, 5}));
  m.infer(st, std::span<const int32_t>(&seq[6], 1));
  EXPECT_EQ(st.next_pos, 7);
  EXPECT_EQ(kv.pos(0)[4], 6) << "a new token takes the true next position, not the cell index";
  EXPECT_EQ(kv.len(0), 5);
  // truncate to 3 positions, continue: equals recomputing seq[0..4)
  ASSERT_TRUE(st.truncate(3));
  EXPECT_EQ(kv.len(0), 2);  // positions 0 and 2 remain in head 0
  EXPECT_EQ(kv.len(1), 3);
  InferState fresh = m.make_state(16);
  for (auto& l : st.layers) l->reset();  // undo the eviction so the comparison is exact
  st.next_pos = 0;
  const float* a = m.infer(st, std::span<const int32_t>(seq).first(4));
  std::vector<float> got(a, a + 50);
  const float* b = m.infer(fresh, std::span<const int32_t>(seq).first(4));
  EXPECT_EQ(test::rel_err(vec_of(got.data(), 50), vec_of(b, 50)), 0.0);
  // with a cell removed, the result differs from the full cache (the cell mattered) but stays finite
  InferState ev = m.make_state(16);
  m.infer(ev, std::span<const int32_t>(seq).first(6));
  for (auto& l : ev.layers) {
    auto& c = static_cast<nn::KVCells&>(*l);
    std::vector<uint8_t> k2{1, 1, 0, 1, 1, 1};
    for (int64_t h = 0; h < c.heads(); ++h) c.compact(h, k2.data());
  }
  const float* e = m.infer(ev, std::span<const int32_t>(&seq[6], 1));
  Tensor full = full_logits(m, seq);
  const double err = test::rel_err(vec_of(e, 50), row(full, 6));
  EXPECT_GT(err, 1e-4);
  EXPECT_TRUE(std::isfinite(err));
}

// An attention observer sees one probability row per (layer, head, query): each sums to 1 over
// the cells the query may see, and is zero beyond its position (prefill masks by position).
TEST(KVCells, ObserverSeesNormalisedMaskedRows) {
  ModelConfig c = small();
  TransformerLM m(c, 2);
  InferState st = m.make_state(8);
  std::atomic<int64_t> rows = 0;  // observers run concurrently for different KV heads
  st.on_attention = [&](const nn::AttnEvent& e) {
    ++rows;
    double sum = 0;
    for (int64_t i = 0; i < e.n; ++i) {
      if (e.cell_pos[i] > e.query_pos) {
        EXPECT_EQ(e.probs[i], 0.0f);
      }
      sum += e.probs[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_EQ(e.kv_head, e.head / (c.n_heads / c.n_kv_heads));
  };
  std::vector<int32_t> p{3, 1, 4};
  m.infer(st, p);
  EXPECT_EQ(rows.load(), c.n_layers * c.n_heads * 3);
}

TEST(Sampler, GreedyTopKTopPAndSeed) {
  std::vector<float> logits{0.1f, 3.0f, 2.9f, -1.0f, 2.0f};
  Sampler greedy({0.0, 0, 1.0, 0});
  EXPECT_EQ(greedy.sample(logits.data(), 5), 1);
  Sampler k1({1.0, 1, 1.0, 5});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.sample(logits.data(), 5), 1);
  Sampler k2({1.0, 2, 1.0, 5});
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(k2.sample(logits.data(), 5));
  EXPECT_EQ(seen, (std::set<int32_t>{1, 2}));
  Sampler p({1.0, 0, 0.3, 5});  // the top token alone holds > 30%
  for (int i = 0; i < 20; ++i) EXPECT_EQ(p.sample(logits.data(), 5), 1);
  Sampler a({1.0, 0, 1.0, 9}), b({1.0, 0, 1.0, 9});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits.data(), 5), b.sample(logits.data(), 5));
}

TEST(Generate, GreedyMatchesArgmaxOfRecomputeAndStopsAtEos) {
  TransformerLM m(small(), 4);
  std::vector<int32_t> prompt{3, 1, 4};
  Sampler s({0.0, 0, 1.0, 0});
  auto out = generate(m, prompt, {6, -1}, s);
  ASSERT_EQ(out.size(), 6u);
  std::vector<int32_t> seq = prompt;
  ag::NoGrad ng;
  for (int32_t tok : out) {
    Tensor ids = Tensor::from(seq, {(int64_t)seq.size()});
    Tensor l = m.forward(ids, 1, (int64_t)seq.size())->value;
    const float* last = l.data<float>() + (seq.size() - 1) * 50;
    EXPECT_EQ(tok, int32_t(std::max_element(last, last + 50) - last));
    seq.push_back(tok);
  }
  Sampler s2({0.0, 0, 1.0, 0});
  auto stopped = generate(m, prompt, {6, out[2]}, s2);
  EXPECT_EQ(stopped.size(), size_t(std::find(out.begin(), out.end(), out[2]) - out.begin()));
}

// A prompt fed in chunks (prefill of several tokens, then more) gives the logits of the last row of
// the full forward, with packed and dense weights.
TEST(Model, ChunkedPrefillEqualsLastRowOfForward) {
  TransformerLM m(small(), 6);
  std::vector<int32_t> seq{3, 1, 4, 1, 5, 9, 2, 6};
  Tensor full = full_logits(m, seq);
  for (std::string fmt : {"", "f32"}) {
    m.pack(fmt);
    InferState st = m.make_state(8);
    const float* a = m.infer(st, std::span<const int32_t>(seq).first(2));
    EXPECT_LT(test::rel_err(vec_of(a, 50), row(full, 1)), 1e-5) << fmt;
    const float* b = m.infer(st, std::span<const int32_t>(seq).subspan(2, 5));
    EXPECT_LT(test::rel_err(vec_of(b, 50), row(full, 6)), 1e-5) << fmt;
    EXPECT_EQ(st.next_pos, 7);
  }
}

// Decoding allocates nothing per token: the step (f32 and bf16 panels, odd shapes that need padded
// x) and sampling with temperature, top-k and top-p.
TEST(Infer, NoAllocationPerToken) {
  ModelConfig c = small();
  c.d_model = 36, c.head_dim = 8, c.d_ff = 52;  // columns not a multiple of 8
  TransformerLM m(c, 3);
  for (std::string wd : {"f32", "bf16"}) {
    m.pack(wd);
    InferState s = m.make_state(40);
    Sampler sampler({0.9, 20, 0.9, 1});
    std::vector<int32_t> prompt{1, 2, 3};
    int32_t tok = sampler.sample(m.infer(s, prompt), c.vocab_size);
    for (int i = 0; i < 3; ++i) tok = sampler.sample(m.infer(s, {&tok, 1}), c.vocab_size);  // warm: thread-local buffers
    const int64_t before = g_news.load();
    for (int i = 0; i < 20; ++i) tok = sampler.sample(m.infer(s, {&tok, 1}), c.vocab_size);
    EXPECT_EQ(g_news.load() - before, 0) << wd;
  }
}

// A Generator keeps its cache between calls (chat turns): the second call prefills only what
// follows the shared prefix and must produce what a fresh generation from the whole prompt does.
TEST(Generate, GeneratorReusesTheCachedPrefix) {
  TransformerLM m(small(), 4);
  for (bool fast : {true, false}) {
    GenerateConfig g{5, -1};
    g.weights = fast ? "f32" : "";
    Generator gen(m, g, 40);
    Sampler s({0.0, 0, 1.0, 0});
    std::vector<int32_t> turn1{3, 1, 4, 1, 5};
    auto r1 = gen.generate(turn1, s);
    ASSERT_EQ(r1.size(), 5u);
    std::vector<int32_t> turn2 = turn1;  // the conversation so far, the reply, then a new message
    turn2.insert(turn2.end(), r1.begin(), r1.end());
    for (int32_t t : {9, 2, 6}) turn2.push_back(t);
    GenerateStats st;
    auto r2 = gen.generate(turn2, s, nullptr, &st);
    EXPECT_EQ(st.reused_tokens, 9) << "prompt and the first four replies were cached (the fifth was never fed)";
    Sampler fresh_s({0.0, 0, 1.0, 0});
    EXPECT_EQ(r2, generate(m, turn2, g, fresh_s)) << (fast ? "fast" : "generic");
    // an edited history (a different earlier token) re-prefills from the first difference
    std::vector<int32_t> turn3 = turn2;
    turn3[2] = 7;
    auto r3 = gen.generate(turn3, s, nullptr, &st);
    EXPECT_EQ(st.reused_tokens, 2);
    Sampler fresh3({0.0, 0, 1.0, 0});
    EXPECT_EQ(r3, generate(m, turn3, g, fresh3));
    // too long for the context: an error, not an overflow
    EXPECT_THROW(gen.generate(std::vector<int32_t>(41, 1), s), std::length_error);
    // a bad id fails the call and leaves a usable generator (its cache restarts)
    std::vector<int32_t> bad = turn3;
    bad.push_back(999);
    bad.push_back(3);
    EXPECT_ANY_THROW(gen.generate(bad, s));
    EXPECT_TRUE(gen.cached().empty());
    auto r4 = gen.generate(turn3, s, nullptr, &st);
    EXPECT_EQ(st.reused_tokens, 0);
    EXPECT_EQ(r4, r3);
  }
}

// Decoding through packed weights (matrix-vector kernels) against full recomputation, f32 and bf16,
// for rotate-half and interleaved rotary layouts, GQA, biases, Gemma-style variants and GPT-style
// models (learned positions, LayerNorm, GELU MLP with biases). Biases and norm weights are
// randomised: zeros and ones would hide a missing bias add or a wrong norm weight.
TEST(Infer, PackedDecodeMatchesFullRecompute) {
  for (int variant = 0; variant < 4; ++variant) {
    ModelConfig c = small();
    if (variant == 1) c.rope_interleaved = true, c.attn_bias = true, c.tie_embeddings = true;
    if (variant == 2) c.norm = "rmsnorm_1p", c.mlp = "geglu_tanh", c.embed_scale = 2.0, c.head_dim = 12;
    if (variant == 3) c.position = "learned", c.norm = "layernorm", c.mlp = "gelu", c.mlp_bias = c.attn_bias = true;
    TransformerLM m(c, 11);
    Rng r(variant + 1);
    m.visit([&](const std::string&, nn::Var& v, nn::ParamKind k) {
      if (k != nn::ParamKind::norm && k != nn::ParamKind::bias) return;
      float* p = v->value.data<float>();
      for (int64_t i = 0; i < v->value.numel(); ++i) p[i] += float(0.3 * r.normal());
    });
    std::vector<int32_t> seq{4, 8, 15, 16, 23, 42, 7, 1, 30};
    Tensor full = full_logits(m, seq);
    for (std::string wd : {"f32", "bf16"}) {
      m.pack(wd);
      InferState s = m.make_state(16);
      m.infer(s, std::span<const int32_t>(seq).first(3));
      for (size_t t = 3; t < seq.size(); ++t) {
        const float* l = m.infer(s, std::span<const int32_t>(&seq[t], 1));
        EXPECT_LT(test::rel_err(vec_of(l, 50), row(full, int64_t(t))), wd == "f32" ? 1e-5 : 2e-2)
            << "variant " << variant << " pos " << t << " " << wd;
      }
      EXPECT_EQ(s.next_pos, (int64_t)seq.size());
    }
  }
}

TEST(Chat, TemplatesRenderTheFamiliesFormats) {
  std::vector<ChatMessage> m{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(chat_pieces_to_string(render_chat("llama2", m)),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(chat_pieces_to_string(render_chat("llama3", m)),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
            "\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(chat_pieces_to_string(render_chat("chatml", m)),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            "Hello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat_pieces_to_string(render_chat("phi3", m)),
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye<|end|>\n"
            "<|assistant|>\n");
  EXPECT_THROW(render_chat("alpaca", m), std::invalid_argument);
  // Llama-2 strips and Llama-3 trims contents (a streamed reply starting with a space, say)
  std::vector<ChatMessage> padded = m;
  padded[2].content = " Hello.\n";
  for (const char* t : {"llama2", "llama3"}) EXPECT_EQ(chat_pieces_to_string(render_chat(t, padded)), chat_pieces_to_string(render_chat(t, m)));
  ByteTokenizer bt;  // no special tokens: a template that needs them is refused by name
  try {
    encode_chat(bt, render_chat("chatml", m));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("<|im_start|>"), std::string::npos);
  }
}
