// Number formats (bit-exact against PyTorch / ml_dtypes casts made by tools/make_numfmt_fixtures.py
// and against the definitions), fake quantization, and the quantization methods.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common.h"
#include "eval/perplexity.h"
#include "models/lm.h"
#include "kernels/cpu/quads.h"
#include "kernels/cpu/vec.h"
#include "formats/safetensors.h"
#include "models/io.h"
#include "quant/calibrate.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#include "quant/checkpoint.h"
#include "quant/weight_only.h"
#include "quant/methods.h"
#include "quant/numfmt.h"
#include "util/fs.h"

using namespace clm;
using namespace clm::quant;

namespace {

// Every kernel tier this CPU runs: the scalar reference, then AVX2, AVX-512 and VNNI where present.
std::vector<const kernels::VecKernels*> all_tiers() {
  std::vector<const kernels::VecKernels*> tiers = {&kernels::vec_scalar()};
  for (auto* t : {kernels::vec_avx2(), kernels::vec_avx512(), kernels::vec_avx512vnni()})
    if (t) tiers.push_back(t);
  return tiers;
}

std::vector<std::pair<float, uint8_t>> load_fixture(const std::string& name) {
  std::ifstream f(std::string(CLM_SOURCE_DIR) + "/tests/fixtures/numfmt/" + name + ".txt");
  EXPECT_TRUE(f.good()) << name;
  std::vector<std::pair<float, uint8_t>> out;
  uint32_t bits, code;
  std::string a, b;
  while (f >> a >> b) {
    bits = uint32_t(std::stoul(a, nullptr, 16));
    code = uint32_t(std::stoul(b, nullptr, 16));
    float x;
    std::memcpy(&x, &bits, 4);
    out.push_back({x, uint8_t(code)});
  }
  return out;
}

void check_against_reference(const MiniFloat& m, const std::string& name, size_t min_lines) {
  auto fx = load_fixture(name);
  ASSERT_GE(fx.size(), min_lines);
  int bad = 0;
  for (auto [x, code] : fx) {
    const uint8_t got = m.encode(x);
    if (got != code && ++bad <= 5) ADD_FAILURE() << name << ": encode(" << x << ") = " << int(got) << ", reference " << int(code);
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace

TEST(NumFmt, E4M3MatchesPyTorchCastOnEveryCodeAndTie) { check_against_reference(kE4M3, "e4m3", 5000); }
TEST(NumFmt, E5M2MatchesPyTorchCastOnEveryCodeAndTie) { check_against_reference(kE5M2, "e5m2", 5000); }
TEST(NumFmt, E2M1MatchesMlDtypesCastOnEveryCodeAndTie) { check_against_reference(kE2M1, "e2m1", 5000); }

TEST(NumFmt, FastE2M1EncodeEqualsTheGenericOne) {
  for (auto [x, code] : load_fixture("e2m1")) EXPECT_EQ(e2m1_encode(x), code) << x;
  std::mt19937 rng(5);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = rng();
    float x;
    std::memcpy(&x, &bits, 4);
    if (std::isnan(x)) continue;
    ASSERT_EQ(e2m1_encode(x), kE2M1.encode(x)) << x;
  }
  for (float x : {0.0f, -0.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 1e30f, -INFINITY})
    EXPECT_EQ(e2m1_encode(x), kE2M1.encode(x)) << x;
}

// NVFP4's block scale by bit arithmetic: the generic encoder's code for every code's value, both
// neighbours of every midpoint between codes (and the midpoint itself: the tie), a sweep of float
// bit patterns from 0 to past the saturation point, and the specials.
TEST(NumFmt, FastUE4M3EncodeEqualsTheGenericOne) {
  std::vector<float> xs = {0.0f, -0.0f, -1.0f, 448.0f, 464.0f, 480.0f, 1e30f, INFINITY, -INFINITY, NAN, 0x1p-10f, 0x1p-9f, 0x1p-6f};
  for (int c = 0; c < 0x7F; ++c) {
    const float v = kUE4M3.decode(uint8_t(c)), next = kUE4M3.decode(uint8_t(c + 1));
    const float mid = c + 1 < 0x7F ? (v + next) / 2 : 464.0f;  // exact: one more mantissa bit
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), std::nextafter(v, 0.0f), std::nextafter(v, 1e9f)}) xs.push_back(x);
  }
  for (uint32_t bits = 0; bits < 0x44000000u; bits += 997) {  // 0 .. 512
    float x;
    std::memcpy(&x, &bits, 4);
    xs.push_back(x);
  }
  for (float x : xs) {
    ASSERT_EQ(ue4m3_encode(x), kUE4M3.encode(x)) << x;
    const uint8_t c = kUE4M3.encode(x);
    if (!std::isnan(kUE4M3.decode(c))) {
      ASSERT_EQ(ue4m3_decode(c), kUE4M3.decode(c)) << int(c);
    }
  }
}

TEST(NumFmt, E8M0MatchesMlDtypesOnEveryPowerOfTwo) {
  auto fx = load_fixture("e8m0");
  ASSERT_EQ(fx.size(), 255u);
  for (auto [x, code] : fx) {
    int e;
    std::frexp(x, &e);
    EXPECT_EQ(e8m0_encode_exponent(e - 1), code) << x;
    EXPECT_EQ(e8m0_decode(code), x);
  }
  EXPECT_TRUE(std::isnan(e8m0_decode(0xFF)));
}

TEST(NumFmt, EveryCodeDecodesAndEncodesBack) {
  for (const MiniFloat* m : {&kE4M3, &kE5M2, &kE2M1, &kUE4M3}) {
    int finite = 0;
    for (int c = 0; c < m->codes(); ++c) {
      const float v = m->decode(uint8_t(c));
      if (std::isnan(v)) {
        EXPECT_TRUE(m->is_nan(uint8_t(c)));
        continue;
      }
      if (std::isinf(v)) continue;
      ++finite;
      EXPECT_EQ(m->encode(v), c) << "code " << c << " value " << v;
    }
    EXPECT_GE(finite, m->codes() - 8);
  }
}

TEST(NumFmt, KnownValuesSaturationSubnormalsAndSpecials) {
  // E2M1 magnitudes and the ties named in the spec: 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4
  const float mags[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) EXPECT_EQ(kE2M1.decode(uint8_t(c)), mags[c]);
  const std::pair<float, float> ties[] = {{0.25f, 0}, {0.75f, 1}, {1.25f, 1}, {1.75f, 2}, {2.5f, 2}, {3.5f, 4}, {5.0f, 4}};
  for (auto [x, v] : ties) {
    EXPECT_EQ(kE2M1.decode(kE2M1.encode(x)), v) << x;
    EXPECT_EQ(kE2M1.decode(kE2M1.encode(-x)), -v) << -x;
  }
  // saturation, not NaN / Inf
  EXPECT_EQ(kE4M3.encode(1e6f), 0x7E);
  EXPECT_EQ(kE4M3.encode(-INFINITY), 0xFE);
  EXPECT_EQ(kE5M2.encode(1e9f), 0x7B);
  EXPECT_EQ(kE2M1.encode(100.0f), 0x7);
  EXPECT_EQ(kE4M3.decode(0x7E), 448.0f);
  EXPECT_EQ(kE5M2.decode(0x7B), 57344.0f);
  EXPECT_TRUE(std::isinf(kE5M2.decode(0x7C)));
  EXPECT_TRUE(std::isnan(kE4M3.decode(0x7F)));
  EXPECT_EQ(kE4M3.encode(NAN), 0x7F);
  // subnormals: E4M3's smallest is 2^-9, UE4M3 has no sign bit
  EXPECT_EQ(kE4M3.decode(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(kE4M3.encode(std::ldexp(1.0f, -10)), 0x00);              // tie to even (0)
  EXPECT_EQ(kE4M3.encode(std::ldexp(1.5f, -10)), 0x01);
  EXPECT_EQ(kE4M3.encode(std::ldexp(3.0f, -10)), 0x02);              // 1.5 * 2^-9 -> tie -> 2 * 2^-9
  EXPECT_EQ(kUE4M3.encode(-3.0f), 0x00);
  EXPECT_EQ(kUE4M3.codes(), 128);
  // INT: round half to even, symmetric clamp
  EXPECT_EQ(int_encode(2.5f, 1.0f, 127), 2);
  EXPECT_EQ(int_encode(3.5f, 1.0f, 127), 4);
  EXPECT_EQ(int_encode(-2.5f, 1.0f, 127), -2);
  EXPECT_EQ(int_encode(500.0f, 1.0f, 127), 127);
  EXPECT_EQ(int_encode(-500.0f, 1.0f, 127), -127);
  EXPECT_EQ(int_encode(7.6f, 1.0f, 7), 7);
  EXPECT_EQ(int_encode(-9.0f, 1.0f, 7), -7);
}

TEST(NumFmt, MxBlockScaleFollowsTheSpecRule) {
  // amax 5.0: floor(log2 5) = 2, emax(E2M1) = 2 -> X = 2^0; amax 100: 6 - 2 -> X = 2^4.
  float x[32] = {};
  uint8_t codes[32];
  x[3] = 5.0f;
  EXPECT_EQ(mx_encode_block(kE2M1, x, 32, codes), 127);
  EXPECT_EQ(kE2M1.decode(codes[3]), 4.0f);  // 5 -> tie -> 4
  x[3] = -100.0f;
  x[4] = 7.9f;
  EXPECT_EQ(mx_encode_block(kE2M1, x, 32, codes), 127 + 4);
  float out[32];
  mx_decode_block(kE2M1, uint8_t(127 + 4), codes, 32, out);
  EXPECT_EQ(out[3], -96.0f);  // 100/16 = 6.25 -> saturates to 6 -> 96
  EXPECT_EQ(out[4], 8.0f);    // 7.9/16 = 0.49 -> 0.5
  // MXFP8: emax 8, amax 448 -> X = 2^0, exact
  for (int i = 0; i < 32; ++i) x[i] = kE4M3.decode(uint8_t(i * 3));
  x[31] = 448.0f;
  EXPECT_EQ(mx_encode_block(kE4M3, x, 32, codes), 127);
  mx_decode_block(kE4M3, 127, codes, 32, out);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], x[i]);
}

TEST(NumFmt, Nvfp4FollowsTheRecipe) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(16 * 64);
  for (auto& v : x) v = nd(rng);
  x[77] = 40.0f;  // an outlier block
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float st = nvfp4_tensor_scale(amax);
  EXPECT_FLOAT_EQ(st, 40.0f / 2688.0f);
  std::vector<float> y(x.size());
  for (size_t b = 0; b < x.size(); b += 16) {
    uint8_t codes[16];
    const uint8_t sc = nvfp4_encode_block(&x[b], 16, st, codes);
    float bmax = 0;
    for (int i = 0; i < 16; ++i) bmax = std::max(bmax, std::fabs(x[b + i]));
    EXPECT_EQ(sc, kUE4M3.encode(bmax / (6 * st)));
    nvfp4_decode_block(sc, st, codes, 16, &y[b]);
    const float d = kUE4M3.decode(sc) * st;
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(codes[i], kE2M1.encode(x[b + i] / d));
      // |error| <= half the largest E2M1 step (1.0) times the block's scale, and the block max is
      // represented within the scale's own rounding (E4M3: 2^-4 relative)
      EXPECT_LE(std::fabs(y[b + i] - x[b + i]), 1.0f * d + 1e-6f);
    }
  }
  EXPECT_NEAR(y[77], 40.0f, 40.0f * 0.07f);
  // an all-zero block takes the smallest scale, and decodes to zeros
  float z[16] = {};
  uint8_t codes[16];
  EXPECT_EQ(nvfp4_encode_block(z, 16, st, codes), 1);
  for (uint8_t c : codes) EXPECT_EQ(c, 0);
}

TEST(NumFmt, FakeQuantGranularitiesAndErrors) {
  // per-row int8: each row's absmax maps to 127 exactly
  std::vector<float> x = {1, -2, 0.5f, 4, /**/ 100, 3, -50, 0.1f};
  fake_quant(ElemSpec::parse("int8"), x.data(), 2, 4);
  EXPECT_FLOAT_EQ(x[3], 4.0f);
  EXPECT_FLOAT_EQ(x[4], 100.0f);
  EXPECT_FLOAT_EQ(x[2], std::nearbyint(0.5f / (4.0f / 127)) * (4.0f / 127));
  EXPECT_EQ(x[7], 0.0f);  // 0.1 < (100/127)/2: in the "quantization kernel"
  // per-tensor: the second row's scale governs the first
  std::vector<float> t = {1, -2, 0.5f, 4, 100, 3, -50, 0.1f};
  const int64_t zeroed = fake_quant_count_zeroed(ElemSpec::parse("int8/tensor"), t.data(), 2, 4);
  EXPECT_EQ(zeroed, 1);  // 0.1 (< half a step, 0.394); 0.5 rounds to one step
  EXPECT_FLOAT_EQ(t[2], 100.0f / 127);
  // groups
  std::vector<float> g = {1, 2, 100, 200};
  fake_quant(ElemSpec::parse("int4/g2"), g.data(), 1, 4);
  EXPECT_FLOAT_EQ(g[1], 2.0f);
  EXPECT_FLOAT_EQ(g[0], std::nearbyint(1 / (2.0f / 7)) * (2.0f / 7));
  EXPECT_FLOAT_EQ(g[3], 200.0f);
  // bits per element
  EXPECT_DOUBLE_EQ(ElemSpec::parse("nvfp4").bits(), 4.5);
  EXPECT_DOUBLE_EQ(ElemSpec::parse("mxfp4").bits(), 4.25);
  EXPECT_DOUBLE_EQ(ElemSpec::parse("int4/g128").bits(), 4.25);
  // errors
  EXPECT_THROW(ElemSpec::parse("int3"), std::invalid_argument);
  EXPECT_THROW(ElemSpec::parse("int8/g0"), std::invalid_argument);
  EXPECT_THROW(ElemSpec::parse("nvfp4/g32"), std::invalid_argument);
  // a short last block is quantized as if zero-padded
  for (const char* f : {"nvfp4", "mxfp4", "mxfp8"}) {
    std::vector<float> r(20), padded(32, 0.0f);
    for (int i = 0; i < 20; ++i) r[size_t(i)] = padded[size_t(i)] = std::sin(1.7f * float(i)) * float(i + 1);
    fake_quant(ElemSpec::parse(f), r.data(), 1, 20);
    fake_quant(ElemSpec::parse(f), padded.data(), 1, 32);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(r[size_t(i)], padded[size_t(i)]) << f << " " << i;
    for (int i = 20; i < 32; ++i) EXPECT_EQ(padded[size_t(i)], 0.0f);
  }
  std::vector<float> bad(20, 1.0f);
  bad[0] = NAN;
  EXPECT_THROW(fake_quant(ElemSpec::parse("int8"), bad.data(), 1, 20), std::invalid_argument);
}

// ---- calibration and methods on a small random model ----
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 64, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 96;
  c.max_seq_len = 64, c.init_std = 0.3;
  return c;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % 64);
  return t;
}

std::vector<float> all_logits(LanguageModel& m, const std::vector<int32_t>& ids) {
  InferState s = m.make_state(int64_t(ids.size()));
  s.all_logits = true;
  m.infer(s, ids);
  return std::vector<float>(s.logits.begin(), s.logits.begin() + long(ids.size()) * m.config().vocab_size);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}
double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double(a[i] - b[i]) * double(a[i] - b[i]);
  return std::sqrt(d / double(a.size()));
}

// An input channel with a large outlier in every layer: scale some embedding columns.
std::unique_ptr<LanguageModel> outlier_model() {
  auto m = make_model(tiny(), 5);
  for (auto& [name, w] : m->named_weights())
    if (name == "model.embed_tokens.weight")
      for (int64_t r = 0; r < w.dim(0); ++r) w.data<float>()[r * w.dim(1) + 7] *= 30.0f;
  return m;
}

}  // namespace

TEST(Calibrate, GroupsSharedInputsAndRecordsChannelMaxima) {
  auto m = outlier_model();
  const auto stream = tokens(4 * 32, 1);
  quant::Calibration c = quant::calibrate(*m, stream, 4, 32, "test");
  ASSERT_EQ(c.inputs.size(), 2u * 7 + 1);
  const std::string l0 = "model.layers.0.";
  auto g = [&](const std::string& n) { return c.at(n).group; };
  EXPECT_EQ(g(l0 + "self_attn.q_proj"), g(l0 + "self_attn.k_proj"));
  EXPECT_EQ(g(l0 + "self_attn.q_proj"), g(l0 + "self_attn.v_proj"));
  EXPECT_EQ(g(l0 + "mlp.gate_proj"), g(l0 + "mlp.up_proj"));
  EXPECT_NE(g(l0 + "self_attn.q_proj"), g(l0 + "self_attn.o_proj"));
  EXPECT_NE(g(l0 + "mlp.gate_proj"), g(l0 + "mlp.down_proj"));
  EXPECT_NE(g(l0 + "self_attn.q_proj"), g("model.layers.1.self_attn.q_proj"));
  const quant::InputStats& q = c.at(l0 + "self_attn.q_proj");
  EXPECT_EQ(q.tokens, 128);
  // the observer's maxima are the maxima of what the Linear sees: check one against a direct hook
  std::vector<float> direct(64, 0.0f);
  m->linears([&](const std::string& n, nn::Linear& l) {
    if (n == l0 + "self_attn.q_proj")
      l.observer = [&](const float* x, int64_t rows, int64_t in) {
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t j = 0; j < in; ++j) direct[size_t(j)] = std::max(direct[size_t(j)], std::fabs(x[t * in + j]));
      };
  });
  InferState s = m->make_state(32);
  for (int w = 0; w < 4; ++w) {
    s.reset();
    m->infer(s, std::span<const int32_t>(stream.data() + w * 32, 32));
  }
  EXPECT_EQ(direct, q.absmax);
  EXPECT_GE(q.above_abs, q.tokens);  // at least the token's max itself
  // save / load round trip, and refusals
  test::TempDir d;
  c.save(d.path + "/c.json");
  quant::Calibration back = quant::Calibration::load(d.path + "/c.json");
  EXPECT_EQ(back.at(l0 + "self_attn.q_proj").absmax, q.absmax);
  EXPECT_EQ(back.at(l0 + "mlp.up_proj").group, c.at(l0 + "mlp.up_proj").group);
  std::string j = read_file(d.path + "/c.json");
  write_file_atomic(d.path + "/bad.json", j.substr(0, j.size() / 2));
  EXPECT_THROW(quant::Calibration::load(d.path + "/bad.json"), std::runtime_error);
  nlohmann::json jj = nlohmann::json::parse(j);
  jj["inputs"][l0 + "self_attn.q_proj"]["absmax"][3] = -1.0;
  write_file_atomic(d.path + "/neg.json", jj.dump());
  EXPECT_THROW(quant::Calibration::load(d.path + "/neg.json"), std::runtime_error);
  jj = nlohmann::json::parse(j);
  jj["inputs"][l0 + "self_attn.q_proj"]["in"] = 63;
  write_file_atomic(d.path + "/in.json", jj.dump());
  EXPECT_THROW(quant::Calibration::load(d.path + "/in.json"), std::runtime_error);
}

TEST(QuantMethods, NoneIsExactAndCrossQuantAlphaOneIsPerTokenInt8) {
  auto m = outlier_model();
  const auto ids = tokens(40, 2);
  const auto ref = all_logits(*m, ids);
  quant::Calibration c = quant::calibrate(*m, tokens(128, 3), 4, 32, "test");
  quant::quantize_model(*m, "rtn", {{"w", "none"}, {"a", "none"}}, nullptr);
  EXPECT_LE(max_abs_diff(all_logits(*m, ids), ref), 1e-4);
  // smoothquant without rounding: the scales cancel
  quant::quantize_model(*m, "smoothquant", {{"w", "none"}, {"a", "none"}, {"alpha", 0.7}}, &c);
  EXPECT_LE(max_abs_diff(all_logits(*m, ids), ref), 1e-3);
  quant::QuantResult pt = quant::quantize_model(*m, "rtn", {{"w", "int8"}, {"a", "int8"}}, nullptr);
  const auto per_token = all_logits(*m, ids);
  EXPECT_GT(max_abs_diff(per_token, ref), 1e-4);  // it does quantize
  quant::QuantResult cq = quant::quantize_model(*m, "crossquant", {{"alpha", 1.0}}, &c);
  EXPECT_EQ(all_logits(*m, ids), per_token);
  EXPECT_EQ(cq.kernel(), pt.kernel());
  EXPECT_GT(pt.kernel(), 0.0);
  // dynamic cross quantization on a model with an outlier channel: a smaller kernel overall (not a
  // theorem layer by layer: Δ_ij <= Δ_i only where c_j <= t_i)
  quant::QuantResult dyn = quant::quantize_model(*m, "crossquant", {{"alpha", 0.3}, {"mode", "dynamic"}}, &c);
  all_logits(*m, ids);
  ASSERT_EQ(dyn.layers.size(), pt.layers.size());
  EXPECT_LT(dyn.kernel(), pt.kernel());
  // the head stays unless asked
  for (auto& l : dyn.layers) EXPECT_NE(l->name, "lm_head");
  quant::QuantResult h = quant::quantize_model(*m, "rtn", {{"head", true}}, nullptr);
  EXPECT_EQ(h.layers.back()->name, "lm_head");
}

TEST(QuantMethods, ArcQuantResidualChannelsReduceTheError) {
  auto m = outlier_model();
  const auto ids = tokens(48, 4);
  const auto ref = all_logits(*m, ids);
  quant::Calibration c = quant::calibrate(*m, tokens(128, 5), 4, 32, "test");
  auto err = [&](const char* method, nlohmann::json o) {
    quant::QuantResult r = quant::quantize_model(*m, method, o, method == std::string("rtn") ? nullptr : &c);
    const double e = rms_diff(all_logits(*m, ids), ref);
    return std::make_pair(e, r);
  };
  auto [e_rtn, r_rtn] = err("rtn", {{"w", "nvfp4"}, {"a", "nvfp4"}});
  auto [e0, r0] = err("arcquant", {{"ke", 0}});
  auto [e64, r64] = err("arcquant", {{"ke", 64}});
  auto [erule, rrule] = err("arcquant", nlohmann::json::object());
  EXPECT_DOUBLE_EQ(r0.avg_a_bits, 4.5);
  EXPECT_LT(e64, 0.85 * e0);  // every channel compensated (the weights' error remains)
  EXPECT_LT(e64, 0.85 * e_rtn);
  // the ratio rule: KE = min(K, ceil(K * ratio / 64) * 64) from the calibrated counts
  for (auto& l : rrule.layers) {
    const quant::InputStats& s = c.at(l->name);
    const double ratio = double(s.above_abs) / (double(s.tokens) * double(s.in));
    EXPECT_EQ(l->k_eff - l->in, std::min<int64_t>(s.in, int64_t(std::ceil(double(s.in) * ratio / 64)) * 64)) << l->name;
  }
  EXPECT_GT(rrule.avg_a_bits, 4.5);
  // ke_step: the same rule rounded to blocks of 16 instead of the paper's 64
  auto [e16, r16] = err("arcquant", {{"ke_step", 16}});
  bool finer = false;
  for (size_t i = 0; i < r16.layers.size(); ++i) {
    const auto& l = r16.layers[i];
    const quant::InputStats& s = c.at(l->name);
    const double ratio = double(s.above_abs) / (double(s.tokens) * double(s.in));
    EXPECT_EQ(l->k_eff - l->in, std::min<int64_t>(s.in, int64_t(std::ceil(double(s.in) * ratio / 16)) * 16)) << l->name;
    EXPECT_LE(l->k_eff, rrule.layers[i]->k_eff) << l->name;
    finer |= l->k_eff < rrule.layers[i]->k_eff;
  }
  EXPECT_TRUE(finer);  // this model's ratios are not all multiples of 1/4 of K
  EXPECT_LT(r16.avg_a_bits, rrule.avg_a_bits);
  EXPECT_THROW(quant::quantize_model(*m, "arcquant", {{"ke_step", 8}}, &c), std::invalid_argument);
  // the weight format's dequantize shows the duplicated salient columns
  m->linears([&](const std::string& n, nn::Linear& l) {
    if (n != "model.layers.0.mlp.down_proj") return;
    quant::quantize_model(*m, "arcquant", {{"ke", 64}}, &c);
    const auto& f = *l.packed;
    std::vector<float> w(size_t(f.rows() * (f.cols() + 64)));
    f.dequantize(w.data());
    const int64_t K = f.cols(), Ka = K + 64;
    for (int64_t r = 0; r < f.rows(); ++r)
      for (int64_t e = 0; e < 64; ++e) ASSERT_EQ(w[size_t(r * Ka + K + e)], w[size_t(r * Ka + K - 64 + e)]);
  });
  // options are checked
  EXPECT_THROW(quant::quantize_model(*m, "arcquant", {{"ke", 10}}, &c), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "arcquant", {{"thr", "max"}}, &c), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "arcquant", nlohmann::json::object(), nullptr), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "gptq", nlohmann::json::object(), nullptr), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "rtn", {{"w", "int5"}}, nullptr), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "crossquant", {{"alpha", 1.5}}, &c), std::invalid_argument);
}

TEST(QuantMethods, PerplexityThroughInferMatchesTheBatchedForward) {
  auto m = make_model(tiny(), 9);
  const auto stream = tokens(300, 6);
  PerplexityResult a = perplexity(*m, stream, 48, 32, 4);
  PerplexityResult b = perplexity(*m, stream, 48, 32, 4, 0, true);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.windows, b.windows);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-4 * a.nll_sum);
}

// One Linear whose weights NVFP4 represents exactly (E2M1 values, every block's max 6): the error
// left is the activations', and the appended residual channels shrink it for the salient ones.
TEST(QuantMethods, ArcQuantResidualIsTheActivationsSecondQuantization) {
  const int64_t R = 8, K = 64, n = 16;
  std::mt19937 rng(8);
  const float grid[] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  Tensor w = Tensor::empty({R, K}, DType::f32);
  for (int64_t i = 0; i < R * K; ++i) w.data<float>()[i] = (i % 16 == 0 ? 6.0f : grid[rng() % 8]) * (rng() % 2 ? 1.0f : -1.0f);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(size_t(n * K));
  for (auto& v : x) v = nd(rng);
  for (int64_t t = 0; t < n; ++t) x[size_t(t * K + 5)] *= 40, x[size_t(t * K + 50)] *= 25;  // two outlier channels
  quant::InputStats st;
  st.in = K;
  st.tokens = n;
  st.absmax.assign(size_t(K), 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < K; ++j) st.absmax[size_t(j)] = std::max(st.absmax[size_t(j)], std::fabs(x[size_t(t * K + j)]));
  std::vector<float> exact(size_t(n * R), 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K; ++k) exact[size_t(t * R + r)] += x[size_t(t * K + k)] * w.data<float>()[r * K + k];
  const quant::QuantMethod& arc = quant::MethodRegistry::get().at("arcquant");
  auto run = [&](int64_t ke) {
    std::vector<std::shared_ptr<quant::LayerReport>> reps;
    quant::GroupInput input;
    auto f = arc.make({"l"}, {w}, &st, nn::Options({{"ke", ke}}, arc.options, "arcquant"), reps, input);
    std::vector<float> y(size_t(n * R));
    f[0]->matmul(x.data(), n, y.data());
    EXPECT_EQ(reps[0]->k_eff, K + ke);
    return rms_diff(y, exact);
  };
  const double e0 = run(0), e16 = run(16), e64 = run(64);
  EXPECT_GT(e0, 0.0);
  EXPECT_LT(e16, e0);        // the 16 largest channels (both outliers' blocks) compensated
  EXPECT_LT(e64, 0.3 * e0);  // all of them: a second quantization of every residual
}

// The vectorised activation quantizer gives int_encode's codes: ties to even, clamping, signs.
TEST(Int8Kernels, QuantizeGivesIntEncodesCodesOnEveryTier) {
  const auto tiers = all_tiers();
  std::mt19937 rng(13);
  std::normal_distribution<float> nd(0, 40);
  for (size_t n : {1003, 9001}) {  // one chunk of the counters, three (4096 each) and a tail
    std::vector<float> x(n);
    for (size_t i = 0; i < x.size(); ++i) x[i] = i % 3 == 0 ? float(int(nd(rng))) + 0.5f : nd(rng);  // ties, then anything
    x[0] = 1000, x[1] = -1000, x[2] = -0.5f, x[4] = 126.5f, x[5] = -127.5f;
    // the quantization kernel's cases: zeros of both signs, subnormals, values just under a half
    x[6] = 0.0f, x[7] = -0.0f, x[8] = 1e-45f, x[9] = -3e-39f, x[10] = 0.4999f, x[11] = -0.3f, x[n - 1] = 1e-40f, x[n - 2] = 0.0f;
    const float scale = 1.0f;
    int64_t want_sum = 0, want_zeroed = 0;
    for (float v : x) {
      want_sum += int_encode(v, scale, 127);
      want_zeroed += int_encode(v, scale, 127) == 0 && v != 0;
    }
    for (auto* t : tiers) {
      std::vector<int8_t> q(x.size());
      const kernels::I8Codes c = t->quantize_i8(x.data(), scale, q.data(), int64_t(x.size()));
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(q[i], int_encode(x[i], scale, 127)) << t->isa << " " << x[i];
      EXPECT_EQ(c.sum, want_sum) << t->isa << " n " << n;
      EXPECT_EQ(c.zeroed, want_zeroed) << t->isa << " n " << n;
    }
  }
}

// absmax: the largest magnitude, or NaN when any value is Inf or NaN, wherever it sits (the vector
// body or the tail), on every tier.
TEST(Int8Kernels, AbsmaxFindsTheLargestOrNaNOnEveryTier) {
  std::mt19937 rng(14);
  std::normal_distribution<float> nd(0, 3);
  for (auto* t : all_tiers())
    for (int64_t n : {0, 5, 16, 37, 1000}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = nd(rng);
      float want = 0;
      for (float v : x) want = std::max(want, std::fabs(v));
      EXPECT_EQ(t->absmax(x.data(), n), want) << t->isa << " n " << n;
      for (int64_t at : {int64_t(0), n / 2, n - 1}) {
        if (n == 0) break;
        for (float bad : {NAN, INFINITY, -INFINITY}) {
          const float keep = x[size_t(at)];
          x[size_t(at)] = bad;
          EXPECT_TRUE(std::isnan(t->absmax(x.data(), n))) << t->isa << " n " << n << " at " << at << " " << bad;
          x[size_t(at)] = keep;
        }
      }
    }
}

TEST(Int8Kernels, Dot4IsExactOnEveryTier) {
  const auto tiers = all_tiers();
  std::mt19937 rng(12);
  for (int64_t n : {64, 128, 704, 4096}) {
    const int64_t ld = n + 64;
    std::vector<int8_t> w(static_cast<size_t>(4 * ld)), x(static_cast<size_t>(n));
    for (auto& v : w) v = int8_t(int(rng() % 255) - 127);
    for (auto& v : x) v = int8_t(int(rng() % 255) - 127);
    for (int64_t i = 0; i < 64; ++i) w[size_t(i)] = 127, x[size_t(i)] = -127;  // the extremes
    int32_t ref[4];
    for (int r = 0; r < 4; ++r) {
      ref[r] = 0;
      for (int64_t i = 0; i < n; ++i) ref[r] += int32_t(w[size_t(r * ld + i)]) * x[size_t(i)];
    }
    std::vector<int8_t> panel(size_t(4 * n));  // the kernel's layout: 64-column chunks of the four rows
    for (int r = 0; r < 4; ++r)
      for (int64_t i = 0; i < n; ++i) panel[size_t((4 * (i / 64) + r) * 64 + i % 64)] = w[size_t(r * ld + i)];
    // four tokens for the 4x4 tile: x, its negation, all -127, random
    std::vector<int8_t> xs(size_t(4 * (n + 64)));
    const int64_t ldx = n + 64;
    for (int64_t i = 0; i < n; ++i) {
      xs[size_t(i)] = x[size_t(i)], xs[size_t(ldx + i)] = int8_t(-x[size_t(i)]), xs[size_t(2 * ldx + i)] = -127;
      xs[size_t(3 * ldx + i)] = int8_t(int(rng() % 255) - 127);
    }
    int32_t ref16[16];
    for (int t = 0; t < 4; ++t)
      for (int r = 0; r < 4; ++r) {
        ref16[4 * t + r] = 0;
        for (int64_t i = 0; i < n; ++i) ref16[4 * t + r] += int32_t(w[size_t(r * ld + i)]) * xs[size_t(t * ldx + i)];
      }
    for (auto* t : tiers) {
      int32_t out[4], out16[16];
      t->dot4_i8(panel.data(), x.data(), n, out);
      for (int r = 0; r < 4; ++r) EXPECT_EQ(out[r], ref[r]) << t->isa << " n " << n << " row " << r;
      int32_t xsum[4] = {0, 0, 0, 0};
      for (int tt = 0; tt < 4; ++tt)
        for (int64_t i = 0; i < n; ++i) xsum[tt] += xs[size_t(tt * ldx + i)];
      t->gemm4x4_i8(panel.data(), xs.data(), ldx, n, xsum, out16);
      for (int i = 0; i < 16; ++i) EXPECT_EQ(out16[i], ref16[i]) << t->isa << " gemm4x4 n " << n << " token " << i / 4 << " row " << i % 4;
    }
  }
  std::printf("int8 dot tiers checked: %zu\n", tiers.size());
  EXPECT_GE(tiers.size(), 2u);  // scalar and at least AVX2 on every x86-64 host this project supports
}

// A prompt through a tier's outer-product panels (16 tokens or more: AVX-512 VNNI's dpbusd, AVX2's
// int16 vpmaddwd on widened blocks) gives the floats of the scalar tier's 4x4 tiles bit for bit: the
// int32 sums are exact and the scaling is the same two products in the same order. Rows off the
// 16-row panels (70: a last panel of 6) and off the 64-row groups, columns off the 64-column padding
// (130) and over several of the kernels' column blocks (1200: 512 + 512 + 192), token counts off the
// tiles of 6 and 4 (16 .. 23 and 100), extreme codes; and a second call reuses the packed panels.
TEST(Int8Kernels, PanelGemmEqualsTheTiles) {
  std::vector<const kernels::VecKernels*> tiers;
  for (auto* t : all_tiers())
    if (t->gemm_i8_panels) tiers.push_back(t);
  if (tiers.empty()) GTEST_SKIP() << "this CPU has no tier with the panel GEMM (AVX2 or AVX-512 VNNI)";
  EXPECT_EQ(kernels::vec_scalar().gemm_i8_panels, nullptr);
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0, 1);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{70, 130}, {130, 130}, {70, 1200}}) {  // 1200: three column blocks
    Tensor w = Tensor::empty({rows, cols});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng);
    w.data<float>()[5] = 40.f;  // row 0's scale set by one weight: the others small codes, one 127
    auto rep = std::make_shared<quant::LayerReport>();
    rep->in = rep->k_eff = cols;
    const quant::Int8Format f(w, quant::Int8Format::Act{}, rep, "t");
    for (int64_t n : {16, 17, 18, 19, 20, 21, 22, 23, 100, 16}) {
      std::vector<float> x(size_t(n * cols)), want(size_t(n * rows)), got(size_t(n * rows));
      for (auto& v : x) v = nd(rng);
      x[3] = -9.f;  // token 0: a code of -127
      kernels::set_vec(&kernels::vec_scalar());
      f.matmul(x.data(), n, want.data());
      for (auto* t : tiers) {
        kernels::set_vec(t);
        f.matmul(x.data(), n, got.data());
        kernels::set_vec(nullptr);
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << t->isa << " rows " << rows << " tokens " << n << " at " << i;
      }
    }
  }
}

// W8A8, NVFP4 and W4A8 quantize a prompt's tokens in parallel: a non-finite value in any token
// (one token, a prompt, the first value or the last) is refused with one message, never a crash or
// a silent zero.
TEST(Int8Kernels, NonFiniteInputsAreRefusedInEveryPath) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0, 1);
  Tensor w = Tensor::empty({8, 96});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng);
  auto rep = std::make_shared<quant::LayerReport>();
  rep->in = rep->k_eff = 96;
  quant::Int8Format i8(w, quant::Int8Format::Act{}, rep, "t");
  quant::Nvfp4Format nv(w, std::vector<int64_t>{}, 0, 4.0f, false, rep, "t");
  quant::WeightOnlyFormat w4a8(w, ElemSpec::parse("mxfp4"), rep, "t", ElemSpec::parse("int8/g32"));
  for (const kernels::WeightFormat* f : std::initializer_list<const kernels::WeightFormat*>{&i8, &nv, &w4a8})
  for (int64_t n : {1, 3, 9, 600})
    for (float bad : {NAN, INFINITY, -INFINITY})
      for (int64_t at : {int64_t(0), n * 96 - 1}) {
        std::vector<float> x(size_t(n * 96)), y(size_t(n * 8));
        for (auto& v : x) v = nd(rng);
        x[size_t(at)] = bad;
        try {
          f->matmul(x.data(), n, y.data());
          ADD_FAILURE() << f->name() << " accepted " << bad << " at " << at << " of " << n << " tokens";
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "quantize: non-finite value in the input");
        }
      }
}

// SmoothQuant's division folded into the norms (fold=norm, the default): the q/k/v and gate/up
// formats divide by nothing and the norms' weights are the originals over s (the s that fold=none
// divides by at run time); o_proj and down_proj, which no norm feeds, keep the run-time division.
// The dense model stays the same function (norm / s, weights · s), and the two quantized models
// give the same logits up to a few codes rounded the other way.
TEST(QuantMethods, SmoothQuantFoldsIntoTheNorms) {
  auto folded = outlier_model(), runtime = outlier_model(), orig = outlier_model();
  const auto ids = tokens(40, 61);
  quant::Calibration c = quant::calibrate(*orig, tokens(128, 62), 4, 32, "test");
  quant::quantize_model(*folded, "smoothquant", {{"alpha", 0.5}}, &c);
  quant::quantize_model(*runtime, "smoothquant", {{"alpha", 0.5}, {"fold", "none"}}, &c);
  std::map<std::string, Tensor> smooth;  // fold=none: each Linear's run-time divisor
  std::map<std::string, bool> divides;   // fold=norm: whether the format still divides
  auto stored = [](nn::Linear& l, nlohmann::json& meta) {
    std::vector<std::pair<std::string, Tensor>> parts;
    l.packed->store("", parts, meta);
    return parts;
  };
  runtime->linears([&](const std::string& n, nn::Linear& l) {
    if (!l.packed) return;
    nlohmann::json meta;
    for (auto& [k, t] : stored(l, meta))
      if (k == "smooth") smooth[n] = t;
  });
  folded->linears([&](const std::string& n, nn::Linear& l) {
    if (!l.packed) return;
    nlohmann::json meta;
    stored(l, meta);
    divides[n] = meta.at("smooth").get<bool>();
  });
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"})
      EXPECT_FALSE(divides.at(p + n)) << p + n;
    for (const char* n : {"self_attn.o_proj", "mlp.down_proj"}) EXPECT_TRUE(divides.at(p + n)) << p + n;
    for (auto [norm, lin] : {std::pair{"input_layernorm", "self_attn.q_proj"}, std::pair{"post_attention_layernorm", "mlp.gate_proj"}}) {
      const Tensor& s = smooth.at(p + lin);
      Tensor before, after;
      for (auto& [n, t] : orig->named_weights())
        if (n == p + norm + ".weight") before = t;
      for (auto& [n, t] : folded->named_weights())
        if (n == p + norm + ".weight") after = t;
      ASSERT_EQ(after.numel(), s.numel());
      for (int64_t j = 0; j < s.numel(); ++j)
        EXPECT_NEAR(after.data<float>()[j], before.data<float>()[j] / s.data<float>()[j], 1e-6 * std::fabs(before.data<float>()[j])) << norm;
    }
  }
  // the quantized models agree (a few codes may round the other way: x·(w/s) against (x·w)/s)
  const auto lf = all_logits(*folded, ids), lr = all_logits(*runtime, ids), lo = all_logits(*orig, ids);
  double scale = 0;
  for (float v : lo) scale = std::max(scale, double(std::fabs(v)));
  EXPECT_LE(rms_diff(lf, lr), 1e-3 * scale);
  EXPECT_GT(max_abs_diff(lf, lo), 1e-5 * scale);  // and they do quantize
  // the dense model is the same function: its training forward
  Tensor x = Tensor::from(ids, {1, int64_t(ids.size())});
  const Tensor df = folded->forward(x, 1, int64_t(ids.size()))->value, dor = orig->forward(x, 1, int64_t(ids.size()))->value;
  std::vector<float> a(df.data<float>(), df.data<float>() + df.numel()), b(dor.data<float>(), dor.data<float>() + dor.numel());
  EXPECT_LE(max_abs_diff(a, b), 1e-4 * scale);
  EXPECT_THROW(quant::quantize_model(*orig, "smoothquant", {{"fold", "weights"}}, &c), std::invalid_argument);
}

// The integer kernels and the fake-quant reference compute the same quantization: same codes,
// logits equal up to summation order.
TEST(Int8Kernels, RealAndFakePathsAgree) {
  auto m = outlier_model();
  const auto ids = tokens(40, 21);
  quant::Calibration c = quant::calibrate(*m, tokens(128, 22), 4, 32, "test");
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"rtn", {{"w", "int8"}, {"a", "int8"}}}, {"smoothquant", {{"alpha", 0.5}}}, {"crossquant", {{"alpha", 0.4}}}};
  for (auto& [method, o] : cases) {
    nlohmann::json fo = o, io = o;
    fo["kernel"] = "fake";
    io["kernel"] = "int8";
    auto mf = outlier_model(), mi = outlier_model();  // fresh copies: SmoothQuant folds into the norms
    quant::QuantResult rf = quant::quantize_model(*mf, method, fo, &c);
    const auto lf = all_logits(*mf, ids);
    quant::QuantResult ri = quant::quantize_model(*mi, method, io, &c);
    std::string fmt;
    mi->linears([&](const std::string& n, nn::Linear& l) {
      if (n == "model.layers.0.mlp.up_proj") fmt = l.packed->name();
    });
    EXPECT_EQ(fmt, method + ":w8a8");
    const auto li = all_logits(*mi, ids);
    double scale = 0;
    for (float v : lf) scale = std::max(scale, double(std::fabs(v)));
    EXPECT_LE(max_abs_diff(lf, li), 1e-4 * scale) << method;
    EXPECT_GT(rf.kernel(), 0.0);
    EXPECT_EQ(rf.kernel(), ri.kernel()) << method;  // the same elements rounded to zero
  }
  EXPECT_THROW(quant::quantize_model(*m, "rtn", {{"w", "int4"}, {"a", "int8"}, {"kernel", "int8"}}, nullptr), std::invalid_argument);
  EXPECT_THROW(quant::quantize_model(*m, "crossquant", {{"mode", "dynamic"}, {"kernel", "int8"}}, &c), std::invalid_argument);
}

// NVFP4 W4A4's products as Nvfp4Format runs them: E2M1 weight codes through the unsigned table
// (doubled values + 12) times doubled-E2M1 activations, blocks of 16, the offset taken out by
// -12·(sums of four), on every tier, one row and four interleaved, against a float64 truth of
// E2M1 values times their scales.
TEST(Nvfp4Kernels, BlockDotMatchesE2M1ValuesOnEveryTier) {
  const auto tiers = all_tiers();
  uint8_t lut[16];
  for (int c = 0; c < 16; ++c) lut[c] = uint8_t(kernels::kE2M1Doubled[c] + 12);
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(0.01f, 3.0f);
  for (int64_t n : {32, 64, 256, 1056}) {
    const int64_t rb = n / 2, nb = n / 16, ldws = nb + 5;
    std::vector<uint8_t> rows(size_t(4 * rb));
    std::vector<int8_t> x(static_cast<size_t>(n));
    std::vector<float> ws(size_t(4 * ldws)), xs(static_cast<size_t>(nb));
    std::vector<int32_t> xb(size_t(n / 4));
    for (auto& v : rows) v = uint8_t(rng());
    for (auto& v : x) v = kernels::kE2M1Doubled[rng() % 16];
    for (auto& v : ws) v = u(rng);
    for (auto& v : xs) v = u(rng);
    for (int64_t j = 0; j < n / 4; ++j) xb[size_t(j)] = -12 * (x[size_t(4 * j)] + x[size_t(4 * j + 1)] + x[size_t(4 * j + 2)] + x[size_t(4 * j + 3)]);
    std::vector<uint8_t> w4 = rows;
    kernels::interleave_quads(w4, 4, rb);
    for (int64_t r = 0; r < 4; ++r) {
      double truth = 0, mag = 0;  // float64: E2M1 value x (x / 2, the activation's E2M1 value) x both scales
      for (int64_t i = 0; i < n; ++i) {
        const double p = double(kE2M1.decode((rows[size_t(r * rb + i / 2)] >> (4 * (i % 2))) & 0xF)) * x[size_t(i)] / 2 *
                         ws[size_t(r * ldws + i / 16)] * xs[size_t(i / 16)];
        truth += p, mag += std::fabs(p);
      }
      for (auto* t : tiers) {
        float o[4];
        t->dot4_w4a8(w4.data(), lut, ws.data(), ldws, x.data(), xs.data(), xb.data(), n, 16, o);
        EXPECT_NEAR(o[r] * 0.25, truth, 1e-5 * (mag + 1)) << t->isa << " n=" << n << " row " << r << " (four rows)";
        const float one = t->dot_w4a8(rows.data() + r * rb, lut, ws.data() + r * ldws, x.data(), xs.data(), xb.data(), n, 16);
        EXPECT_NEAR(one * 0.25, truth, 1e-5 * (mag + 1)) << t->isa << " n=" << n << " row " << r;
      }
    }
  }
}

// NVFP4's activation codes as the kernels' int8 (doubled E2M1 values) on every tier, against
// e2m1_encode(x / d) through kE2M1Doubled: every midpoint and code value times d with both
// neighbours, saturation, signed zeros, random values; lengths with and without a vector tail.
// Block-scale bytes to f32, as the 4-bit kernels stream them: every code of unsigned E4M3 (the
// subnormals through an f32 denormal) and of E8M0 (2^-127 included), on every tier, at offsets
// that cross the vector widths, bit for bit against the number-format decoders.
TEST(Nvfp4Kernels, ScaleCodesDecodeExactlyOnEveryTier) {
  std::vector<uint8_t> e4, e8;
  for (int c = 0; c < 0x7F; ++c) e4.push_back(uint8_t(c));   // 0x7F: NaN
  for (int c = 0; c < 0xFF; ++c) e8.push_back(uint8_t(c));   // 0xFF: NaN
  for (int c = 0; c < 0x7F; ++c) ASSERT_EQ(kernels::decode_scale(uint8_t(c), kernels::ScaleCode::ue4m3), kUE4M3.decode(uint8_t(c))) << c;
  for (int c = 0; c < 0xFF; ++c) ASSERT_EQ(kernels::decode_scale(uint8_t(c), kernels::ScaleCode::e8m0), e8m0_decode(uint8_t(c))) << c;
  EXPECT_EQ(kernels::decode_scale(1, kernels::ScaleCode::ue4m3), 0x1p-9f);
  EXPECT_EQ(kernels::decode_scale(0, kernels::ScaleCode::e8m0), 0x1p-127f);
  for (auto* t : all_tiers())
    for (auto [codes, kind] : {std::pair{&e4, kernels::ScaleCode::ue4m3}, std::pair{&e8, kernels::ScaleCode::e8m0}})
      for (int64_t off : {0, 3}) {
        const int64_t n = int64_t(codes->size()) - off;
        std::vector<float> out(size_t(n), -1.0f);
        t->decode_scales(codes->data() + off, kind, out.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const float want = kernels::decode_scale((*codes)[size_t(i + off)], kind);
          ASSERT_EQ(std::memcmp(&out[size_t(i)], &want, 4), 0) << t->isa << " code " << int((*codes)[size_t(i + off)]) << " got " << out[size_t(i)];
        }
      }
}

TEST(Nvfp4Kernels, ActivationCodesMatchE2M1OnEveryTier) {
  const auto tiers = all_tiers();
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0, 3);
  for (float d : {1.0f, 0.375f, 3.0e-3f, 17.5f}) {
    std::vector<float> x;
    for (float v : {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 2.5f, 3.0f, 3.5f, 4.0f, 5.0f, 6.0f, 7.0f, 100.0f})
      for (float s : {1.0f, -1.0f}) {
        const float e = s * v * d;
        for (float y : {e, std::nextafter(e, 1e30f), std::nextafter(e, -1e30f)}) x.push_back(y);
      }
    x.push_back(-0.0f);
    while (x.size() < 203) x.push_back(nd(rng) * d);
    for (auto* t : tiers)
      for (int64_t n : {int64_t(x.size()), int64_t(16), int64_t(7)}) {
        std::vector<int8_t> q(size_t(n), 99);
        const int64_t zeroed = t->quantize_e2m1(x.data(), d, q.data(), n);
        int64_t want_zeroed = 0;
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(q[size_t(i)], kernels::kE2M1Doubled[e2m1_encode(x[size_t(i)] / d)]) << t->isa << " x " << x[size_t(i)] << " d " << d;
          want_zeroed += q[size_t(i)] == 0 && x[size_t(i)] != 0;
        }
        EXPECT_EQ(zeroed, want_zeroed) << t->isa << " n " << n << " d " << d;
        EXPECT_GT(want_zeroed, 0);  // the grid's ±0.25 d (ties to 0) and the values just below it
      }
  }
}

// Layer by layer on the same inputs (through a whole model, 4-bit codes can flip where summation
// order moves a value across a rounding boundary, and the flip then propagates).
TEST(Nvfp4Kernels, RealAndFakePathsAgreeForRtnAndArcQuant) {
  auto m = outlier_model();
  quant::Calibration c = quant::calibrate(*m, tokens(128, 42), 4, 32, "test");
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"rtn", {{"w", "nvfp4"}, {"a", "nvfp4"}}},
      {"arcquant", nlohmann::json::object()},
      {"arcquant", {{"thr", "signed"}, {"w_scale", "signed_max"}, {"residual", "bf16"}}},
      {"arcquant", {{"ke", 32}}}};
  auto formats = [&]() {
    std::vector<std::shared_ptr<const kernels::WeightFormat>> f;
    m->linears([&](const std::string&, nn::Linear& l) { f.push_back(l.packed); });
    return f;
  };
  std::mt19937 rng(43);
  std::normal_distribution<float> nd(0, 1);
  for (auto& [method, o] : cases) {
    nlohmann::json fo = o, io = o;
    fo["kernel"] = "fake";
    io["kernel"] = "nvfp4";
    quant::quantize_model(*m, method, fo, &c);
    const auto fake = formats();
    quant::quantize_model(*m, method, io, &c);
    const auto real = formats();
    ASSERT_EQ(fake.size(), real.size());
    int checked = 0;
    for (size_t i = 0; i < fake.size(); ++i) {
      if (!fake[i]) continue;  // the head
      ASSERT_NE(real[i]->name().find("w4a4-nvfp4"), std::string::npos) << real[i]->name();
      const int64_t n = 5, K = fake[i]->cols(), R = fake[i]->rows();
      std::vector<float> x(size_t(n * K)), yf(size_t(n * R)), yr(size_t(n * R));
      for (auto& v : x) v = nd(rng);
      for (int64_t t = 0; t < n; ++t) x[size_t(t * K + 3)] *= 20;
      fake[i]->matmul(x.data(), n, yf.data());
      real[i]->matmul(x.data(), n, yr.data());
      double scale = 0;
      for (float v : yf) scale = std::max(scale, double(std::fabs(v)));
      EXPECT_LE(max_abs_diff(yf, yr), 1e-5 * scale) << method << " " << o.dump() << " linear " << i;
      ++checked;
    }
    EXPECT_EQ(checked, 14);
  }
  EXPECT_THROW(quant::quantize_model(*m, "rtn", {{"w", "nvfp4"}, {"a", "int8"}, {"kernel", "nvfp4"}}, nullptr), std::invalid_argument);
}

// ---- weight-only kernels and quantized checkpoints ----

// The weight-only format holds fake_quant's values exactly (codes through a table, times the block
// scale), for every element format and granularity, at widths with short last blocks and odd
// lengths; its product is the f64 product of those values up to f32 summation.
TEST(WeightOnly, ValuesAreFakeQuantsAndProductsAgree) {
  std::mt19937 rng(51);
  std::normal_distribution<float> nd(0, 1);
  const std::vector<std::string> specs = {"int8",  "int8/g64", "int8/tensor", "int4",  "int4/g32", "int4/g128", "int4/tensor",
                                          "e4m3", "e5m2",     "e4m3/g32",    "mxfp4", "mxfp8",    "nvfp4"};
  for (int64_t K : {64, 100, 172, 33}) {
    const int64_t R = 7, n = 3;
    Tensor w = Tensor::empty({R, K});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng) * (i % 13 == 0 ? 8.0f : 1.0f);
    std::vector<float> x(size_t(n * K));
    for (auto& v : x) v = nd(rng);
    for (const auto& sp : specs) {
      const ElemSpec spec = ElemSpec::parse(sp);
      std::vector<float> ref(w.data<float>(), w.data<float>() + w.numel());
      fake_quant(spec, ref.data(), R, K);
      auto rep = std::make_shared<quant::LayerReport>();
      rep->in = rep->k_eff = K;
      quant::WeightOnlyFormat f(w, spec, rep, "t");
      std::vector<float> deq(size_t(R * K));
      f.dequantize(deq.data());
      for (size_t i = 0; i < deq.size(); ++i) ASSERT_EQ(deq[i], ref[i]) << sp << " K=" << K << " element " << i;
      // one token and two (the fused kernels), three (a decoded row per weight row), on every tier
      const auto tiers = all_tiers();
      for (auto* tier : tiers)
        for (int64_t nt : {int64_t(1), int64_t(2), n}) {
          kernels::set_vec(tier);
          std::vector<float> y(size_t(nt * R));
          f.matmul(x.data(), nt, y.data());
          kernels::set_vec(nullptr);
          for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < R; ++r) {
              double truth = 0, mag = 0;
              for (int64_t k = 0; k < K; ++k)
                truth += double(ref[size_t(r * K + k)]) * x[size_t(t * K + k)], mag += std::fabs(ref[size_t(r * K + k)] * x[size_t(t * K + k)]);
              EXPECT_NEAR(y[size_t(t * R + r)], truth, 1e-5 * (mag + 1)) << sp << " " << tier->isa << " n=" << nt;
            }
        }
      // storage: 4 or 8 bits per weight plus one scale per block (a byte for MX / NVFP4, else f32)
      const bool nib = spec.format == "int4" || spec.format == "mxfp4" || spec.format == "nvfp4";
      const bool byte_scale = spec.format == "mxfp4" || spec.format == "mxfp8" || spec.format == "nvfp4";
      const int64_t block = spec.block() > 0 ? spec.block() : K, nb = (K + block - 1) / block;
      EXPECT_EQ(f.bytes(), size_t(R * (nib ? (K + 1) / 2 : K) + R * nb * (byte_scale ? 1 : 4))) << sp;
    }
  }
}

// W4A8's block dot product: every tier against a float64 truth of vec.h's definition (any table of
// values in [0, 127], any offset term), blocks of 16 and 32, at lengths of 32, whole 64s and a last 32.
TEST(W4A8Kernels, BlockDotMatchesItsDefinitionOnEveryTier) {
  const auto tiers = all_tiers();
  std::mt19937 rng(61);
  std::uniform_real_distribution<float> u(0.01f, 3.0f);
  for (int64_t block : {16, 32})
  for (int64_t n : {32, 64, 96, 128, 160, 1056}) {
    std::vector<uint8_t> w(size_t(n / 2)), lut(16);
    std::vector<int8_t> x(static_cast<size_t>(n));
    std::vector<float> ws(size_t(n / block)), xs(size_t(n / block));
    std::vector<int32_t> xb(size_t(n / 4));
    for (auto& v : w) v = uint8_t(rng());
    for (auto& v : lut) v = uint8_t(rng() % 128);
    lut[0] = 127;  // the extremes: 127 x -127 in every pair must not saturate maddubs
    for (auto& v : x) v = int8_t(int(rng() % 255) - 127);
    for (auto& v : ws) v = u(rng);
    for (auto& v : xs) v = u(rng);
    for (auto& v : xb) v = int32_t(rng() % 4001) - 2000;
    double truth = 0, mag = 0;
    for (int64_t b = 0; b < n / block; ++b) {
      double s = 0;
      for (int64_t i = b * block; i < (b + 1) * block; ++i) s += double(lut[(w[size_t(i / 2)] >> (4 * (i % 2))) & 0xF]) * x[size_t(i)];
      for (int64_t j = b * block / 4; j < (b + 1) * block / 4; ++j) s += xb[size_t(j)];
      truth += s * ws[size_t(b)] * xs[size_t(b)], mag += std::fabs(s * ws[size_t(b)] * xs[size_t(b)]);
    }
    for (auto* t : tiers)
      EXPECT_NEAR(t->dot_w4a8(w.data(), lut.data(), ws.data(), x.data(), xs.data(), xb.data(), n, block), truth, 1e-5 * (mag + 1))
          << t->isa << " n=" << n << " block " << block;
    // four rows: the row above and three others, interleaved per 64 elements (a last 32: per 16
    // bytes), their scales at a stride; each is its own row's dot
    const int64_t rb = n / 2, ldws = n / block + 3;
    std::vector<uint8_t> rows(size_t(4 * rb)), w4(size_t(4 * rb));
    std::vector<float> ws4(size_t(4 * ldws));
    for (auto& v : rows) v = uint8_t(rng());
    for (auto& v : ws4) v = u(rng);
    std::copy(w.begin(), w.end(), rows.begin());
    std::copy(ws.begin(), ws.end(), ws4.begin());
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t j = 0; j < rb; ++j) {
        const int64_t c = j / 32, len = std::min<int64_t>(32, rb - 32 * c);
        w4[size_t(128 * c + len * r + j % 32)] = rows[size_t(r * rb + j)];
      }
    for (auto* t : tiers) {
      float o[4];
      t->dot4_w4a8(w4.data(), lut.data(), ws4.data(), ldws, x.data(), xs.data(), xb.data(), n, block, o);
      EXPECT_NEAR(o[0], truth, 1e-5 * (mag + 1)) << t->isa << " n=" << n << " block " << block;
      for (int r = 1; r < 4; ++r)
        EXPECT_NEAR(o[r], kernels::vec_scalar().dot_w4a8(rows.data() + r * rb, lut.data(), ws4.data() + r * ldws, x.data(), xs.data(), xb.data(), n, block),
                    1e-5 * (mag + 1))
            << t->isa << " n=" << n << " row " << r;
    }
    // four tokens (token 0 the one above, three more at strides): each row and token its own dot
    const int64_t ldx = n + 64, ldxs = n / block + 2, ldxb = n / 4 + 8;
    std::vector<int8_t> x4(size_t(4 * ldx));
    std::vector<float> xs4(size_t(4 * ldxs));
    std::vector<int32_t> xb4(size_t(4 * ldxb));
    for (auto& v : x4) v = int8_t(int(rng() % 255) - 127);
    for (auto& v : xs4) v = u(rng);
    for (auto& v : xb4) v = int32_t(rng() % 4001) - 2000;
    std::copy(x.begin(), x.end(), x4.begin());
    std::copy(xs.begin(), xs.end(), xs4.begin());
    std::copy(xb.begin(), xb.end(), xb4.begin());
    for (auto* t : tiers) {
      float o[16];
      t->gemm4x4_w4a8(w4.data(), lut.data(), ws4.data(), ldws, x4.data(), ldx, xs4.data(), ldxs, xb4.data(), ldxb, n, block, o);
      EXPECT_NEAR(o[0], truth, 1e-5 * (mag + 1)) << t->isa << " n=" << n << " (tile)";
      for (int tt = 0; tt < 4; ++tt)
        for (int r = 0; r < 4; ++r) {
          const float want = kernels::vec_scalar().dot_w4a8(rows.data() + r * rb, lut.data(), ws4.data() + r * ldws, x4.data() + tt * ldx,
                                                            xs4.data() + tt * ldxs, xb4.data() + tt * ldxb, n, block);
          EXPECT_NEAR(o[4 * tt + r], want, 1e-5 * (std::fabs(want) + mag + 1)) << t->isa << " n=" << n << " token " << tt << " row " << r;
        }
    }
  }
}

// W4A8 Linears (mxfp4 and int4/g32 weights, int8/g32 activations) compute the fake-quant product of
// the same codes on every tier at any number of inputs, count the activations rounded to zero as fake
// quant does, come back from storage exactly, and refuse what they cannot run.
TEST(W4A8Kernels, RealAndFakePathsAgree) {
  std::mt19937 rng(62);
  std::normal_distribution<float> nd(0, 1);
  const ElemSpec a = ElemSpec::parse("int8/g32");
  for (const char* sp : {"mxfp4", "int4/g32"})
    for (int64_t K : {32, 33, 48, 100, 160, 256}) {  // any K: rows padded to 32 in memory
      const ElemSpec spec = ElemSpec::parse(sp);
      const int64_t R = 9, n = 6;  // a tile of four tokens and two more
      Tensor w = Tensor::empty({R, K});
      for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng) * (i % 11 == 0 ? 6.0f : 1.0f);
      std::vector<float> x(size_t(n * K));
      for (size_t i = 0; i < x.size(); ++i) x[i] = i % 37 == 5 ? 0.0f : nd(rng) * (i % 29 == 0 ? 40.0f : 1.0f);
      std::vector<float> wq(w.data<float>(), w.data<float>() + w.numel()), xq = x;
      fake_quant(spec, wq.data(), R, K);
      const int64_t zeroed = quant::fake_quant_count_zeroed(a, xq.data(), n, K);
      auto rep = std::make_shared<quant::LayerReport>();
      rep->in = rep->k_eff = K;
      quant::WeightOnlyFormat f(w, spec, rep, "t", a);
      std::vector<float> deq(size_t(R * K));  // the interleaved codes read back in row order
      f.dequantize(deq.data());
      ASSERT_EQ(deq, wq) << sp << " K=" << K;
      const auto tiers = all_tiers();
      for (auto* tier : tiers) {
        kernels::set_vec(tier);
        std::vector<float> y(size_t(n * R));
        f.matmul(x.data(), n, y.data());
        kernels::set_vec(nullptr);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < R; ++r) {
            double truth = 0, mag = 0;
            for (int64_t k = 0; k < K; ++k) {
              const double p = double(wq[size_t(r * K + k)]) * xq[size_t(t * K + k)];
              truth += p, mag += std::fabs(p);
            }
            EXPECT_NEAR(y[size_t(t * R + r)], truth, 1e-5 * (mag + 1)) << sp << " K=" << K << " " << tier->isa;
          }
      }
      EXPECT_EQ(rep->zeroed.load(), zeroed * int64_t(tiers.size())) << sp;
      EXPECT_EQ(rep->elems.load(), n * K * int64_t(tiers.size()));
      std::vector<std::pair<std::string, Tensor>> out;
      nlohmann::json meta;
      ASSERT_TRUE(f.store("L.", out, meta));
      EXPECT_EQ(meta.at("act"), "int8/g32");
      EXPECT_EQ(out[0].second.shape(), (Shape{R, (K + 1) / 2}));  // stored: the canonical codes, unpadded
      auto back = kernels::StoredFormats::get().at("weight-only").restore(meta, [&](const std::string& name) -> const Tensor& {
        for (auto& [k, t] : out)
          if (k == "L." + name) return t;
        throw std::runtime_error("missing " + name);
      });
      std::vector<float> y0(size_t(n * R)), y1(size_t(n * R));
      f.matmul(x.data(), n, y0.data());
      back->matmul(x.data(), n, y1.data());
      EXPECT_EQ(y0, y1) << sp << " K=" << K;
    }
  auto rep = std::make_shared<quant::LayerReport>();
  EXPECT_THROW(quant::WeightOnlyFormat(Tensor::zeros({4, 64}), ElemSpec::parse("nvfp4"), rep, "t", a), std::invalid_argument);
  Tensor w64 = Tensor::zeros({4, 64});
  quant::WeightOnlyFormat ok(w64, ElemSpec::parse("mxfp4"), rep, "t", a);
  std::vector<float> xn(64, 1.0f), y(4);
  xn[7] = NAN;
  EXPECT_THROW(ok.matmul(xn.data(), 1, y.data()), std::invalid_argument);
}

// Through a whole model: rtn w=mxfp4 a=int8/g32 picks the W4A8 kernel where the inputs allow it, and
// its logits follow the fake-quant model's.
TEST(W4A8Kernels, ModelsFollowTheFakeQuantModel) {
  const auto ids = tokens(40, 63);
  auto mf = outlier_model(), mi = outlier_model();
  quant::quantize_model(*mf, "rtn", {{"w", "mxfp4"}, {"a", "int8/g32"}, {"kernel", "fake"}}, nullptr);
  quant::quantize_model(*mi, "rtn", {{"w", "mxfp4"}, {"a", "int8/g32"}}, nullptr);
  int w4a8 = 0;
  mi->linears([&](const std::string&, nn::Linear& l) { w4a8 += l.packed && l.packed->name() == "rtn:mxfp4-w4a8"; });
  EXPECT_EQ(w4a8, 14);
  const auto lf = all_logits(*mf, ids), li = all_logits(*mi, ids);
  double scale = 0;
  for (float v : lf) scale = std::max(scale, double(std::fabs(v)));
  // Both models quantize their activations, so a value whose last bit differs between the two paths
  // (OpenBLAS's SGEMM kernels differ by CPU in rounding) can put one code on the other side of a
  // rounding boundary, and this model's outlier channels amplify it: 1e-4 of the scale where nothing
  // flips, 0.84% measured on an Emerald Rapids Xeon with OpenBLAS's Haswell kernels. A wrong block
  // scale or code would cost far more.
  EXPECT_LE(max_abs_diff(lf, li), 2e-2 * scale);
  EXPECT_THROW(quant::quantize_model(*mi, "rtn", {{"w", "nvfp4"}, {"a", "int8/g32"}, {"kernel", "w4a8"}}, nullptr), std::invalid_argument);
}

namespace {
// store -> restore through the registry; `edit` may corrupt the stored tensors / meta first.
std::unique_ptr<kernels::WeightFormat> round_trip(const kernels::WeightFormat& f,
                                                  const std::function<void(std::map<std::string, Tensor>&, nlohmann::json&)>& edit = nullptr) {
  std::vector<std::pair<std::string, Tensor>> out;
  nlohmann::json meta;
  EXPECT_TRUE(f.store("L.", out, meta));
  std::map<std::string, Tensor> by;
  for (auto& [n, t] : out) by[n.substr(2)] = t;
  if (edit) edit(by, meta);
  return kernels::StoredFormats::get().at(meta.at("kind").get<std::string>()).restore(meta, [&](const std::string& s) -> const Tensor& {
    auto it = by.find(s);
    if (it == by.end()) throw std::runtime_error("missing tensor '" + s + "'");
    return it->second;
  });
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// Every format with a stored form comes back exactly: the same products, bit for bit; and each
// corrupt part is refused with a message naming it.
TEST(QuantCheckpoint, StoredFormatsRestoreExactlyAndRefuseCorruptParts) {
  auto m = outlier_model();
  quant::Calibration c = quant::calibrate(*m, tokens(128, 52), 4, 32, "test");
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"rtn", {{"w", "int8"}, {"a", "int8"}}}, {"smoothquant", nlohmann::json::object()}, {"crossquant", {{"alpha", 0.4}}},
      {"rtn", {{"w", "nvfp4"}, {"a", "nvfp4"}}}, {"arcquant", nlohmann::json::object()},   {"arcquant", {{"ke", 32}, {"residual", "bf16"}}},
      {"rtn", {{"w", "int4/g32"}}},            {"rtn", {{"w", "mxfp4"}}},                 {"rtn", {{"w", "nvfp4"}}},
      {"rtn", {{"w", "e5m2"}}},                {"rtn", {{"w", "mxfp4"}, {"a", "int8/g32"}}}};
  std::mt19937 rng(53);
  std::normal_distribution<float> nd(0, 1);
  for (auto& [method, o] : cases) {
    quant::quantize_model(*m, method, o, &c);
    int checked = 0;
    m->linears([&](const std::string& name, nn::Linear& l) {
      if (!l.packed) return;
      auto back = round_trip(*l.packed);
      ASSERT_EQ(back->name(), l.packed->name());
      ASSERT_EQ(back->rows(), l.packed->rows());
      ASSERT_EQ(back->cols(), l.packed->cols());
      const int64_t n = 3, K = l.packed->cols(), R = l.packed->rows();
      std::vector<float> x(size_t(n * K)), y0(size_t(n * R)), y1(size_t(n * R));
      for (auto& v : x) v = nd(rng);
      l.packed->matmul(x.data(), n, y0.data());
      back->matmul(x.data(), n, y1.data());
      EXPECT_EQ(y0, y1) << method << " " << o.dump() << " " << name;
      ++checked;
    });
    EXPECT_EQ(checked, 14) << method;
  }
  // corrupt parts, one at a time, on an ARCQuant Linear (codes, scales, order) and an INT8 one
  quant::quantize_model(*m, "arcquant", nlohmann::json::object(), &c);
  std::shared_ptr<const kernels::WeightFormat> arc, i8;
  m->linears([&](const std::string& name, nn::Linear& l) {
    if (name == "model.layers.0.mlp.up_proj") arc = l.packed;
  });
  quant::quantize_model(*m, "crossquant", nlohmann::json::object(), &c);
  m->linears([&](const std::string& name, nn::Linear& l) {
    if (name == "model.layers.0.mlp.up_proj") i8 = l.packed;
  });
  using Edit = std::function<void(std::map<std::string, Tensor>&, nlohmann::json&)>;
  const std::vector<std::tuple<const kernels::WeightFormat*, Edit, std::string>> bad = {
      {arc.get(), [](auto& t, auto&) { t["perm"].template data<int32_t>()[1] = t["perm"].template data<int32_t>()[0]; }, "perm is not a permutation"},
      {arc.get(), [](auto& t, auto&) { t["scales"].template data<uint8_t>()[2] = 0x7F; }, "block scale is NaN"},
      {arc.get(), [](auto& t, auto&) { t["scales"].template data<uint8_t>()[3] = 0x85; }, "sign bit set"},
      {arc.get(), [](auto& t, auto&) { t["codes"] = Tensor::zeros({3, 3}, DType::u8); }, "codes must be u8"},
      {arc.get(), [](auto&, auto& j) { j["ke"] = 17; }, "ke must be a multiple of 16"},
      {arc.get(), [](auto&, auto& j) { j["tensor_scale"] = -1.0; }, "tensor_scale"},
      {arc.get(), [](auto& t, auto&) { t.erase("perm"); }, "missing tensor 'perm'"},
      {i8.get(), [](auto& t, auto&) { t["q"].template data<int8_t>()[0] = -128; }, "-128"},
      {i8.get(), [](auto& t, auto&) { t["cw"].template data<float>()[0] = NAN; }, "cw holds a value"},
      {i8.get(), [](auto& t, auto&) { t["scales"] = Tensor::zeros({2}, DType::f32); }, "scales must be f32"},
      {i8.get(), [](auto&, auto& j) { j["alpha"] = 3; }, "alpha"},
      {i8.get(), [](auto&, auto& j) { j["kind"] = "int7"; }, "unknown stored weight format 'int7'"},
  };
  for (auto& [f, edit, want] : bad) {
    const std::string e = error_of([&] { round_trip(*f, edit); });
    EXPECT_NE(e.find(want), std::string::npos) << "wanted '" << want << "', got '" << e << "'";
  }
}

// quantize -> save -> load: the loaded model's logits equal the in-memory quantized model's, through
// the dense loader (the same head product) exactly and through the packed loader (an f32 panel head)
// within summation order; the folder refuses what it cannot do.
TEST(QuantCheckpoint, SavedModelsGiveTheInMemoryLogits) {
  auto m = outlier_model();
  quant::Calibration c = quant::calibrate(*m, tokens(128, 54), 4, 32, "test");
  const auto ids = tokens(24, 55);
  test::TempDir d;
  for (auto& [method, o] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"arcquant", nlohmann::json::object()}, {"crossquant", {{"alpha", 0.5}}}, {"rtn", {{"w", "int4/g32"}, {"head", true}}}}) {
    const quant::QuantResult q = quant::quantize_model(*m, method, o, &c);
    const auto want = all_logits(*m, ids);
    const std::string dir = d.path + "/" + method;
    quant::save_quantized(dir, *m, nullptr, q);
    LoadedModel dense = load_model(dir);
    ASSERT_FALSE(dense.quant.is_null());
    EXPECT_EQ(dense.quant["method"], method);
    EXPECT_EQ(all_logits(*dense.model, ids), want) << method;
    LoadedModel packed = load_model_for_inference(dir, "f32");
    EXPECT_LE(max_abs_diff(all_logits(*packed.model, ids), want), 1e-4) << method;
    const quant::QuantResult back = quant::loaded_quant_result(*dense.model, dense.quant);
    EXPECT_EQ(back.layers.size(), q.layers.size());
    EXPECT_DOUBLE_EQ(back.avg_w_bits, q.avg_w_bits);
    // what a quantized checkpoint cannot do
    EXPECT_NE(error_of([&] { quant::quantize_model(*dense.model, "rtn", nlohmann::json::object(), nullptr); }).find("already quantized"),
              std::string::npos);
    Tensor x = Tensor::zeros({4}, DType::i32);
    EXPECT_NE(error_of([&] { dense.model->forward(x, 1, 4); }).find("inference path only"), std::string::npos);
    EXPECT_NE(error_of([&] { refuse_quantized(dense, "convert"); }).find("is a quantized checkpoint"), std::string::npos);
  }
  // fake-quant formats have no stored form
  const quant::QuantResult f = quant::quantize_model(*m, "rtn", {{"w", "mxfp4"}, {"a", "mxfp4"}}, nullptr);
  EXPECT_NE(error_of([&] { quant::save_quantized(d.path + "/fake", *m, nullptr, f); }).find("fake-quant only"), std::string::npos);
  // a folder whose parts disagree
  const std::string dir = d.path + "/arcquant";
  const std::string qj = read_file(dir + "/quant.json");
  nlohmann::json j = nlohmann::json::parse(qj);
  j["layers"]["model.layers.9.mlp.up_proj"] = j["layers"]["model.layers.0.mlp.up_proj"];
  write_file_atomic(dir + "/quant.json", j.dump());
  EXPECT_NE(error_of([&] { load_model(dir); }).find("names 'model.layers.9.mlp.up_proj', which the model does not have"), std::string::npos);
  j = nlohmann::json::parse(qj);
  j["layers"].erase("model.layers.1.self_attn.o_proj");
  write_file_atomic(dir + "/quant.json", j.dump());
  EXPECT_NE(error_of([&] { load_model(dir); }).find("unexpected tensor 'model.layers.1.self_attn.o_proj."), std::string::npos);
  write_file_atomic(dir + "/quant.json", qj.substr(0, qj.size() / 2));
  EXPECT_NE(error_of([&] { load_model(dir); }).find("quant.json': bad JSON"), std::string::npos);
  write_file_atomic(dir + "/quant.json", qj);
  const std::string st = read_file(dir + "/quant.safetensors");
  write_file_atomic(dir + "/quant.safetensors", st.substr(0, st.size() - 100));
  EXPECT_NE(error_of([&] { load_model(dir); }).find("quant.safetensors"), std::string::npos);
  write_file_atomic(dir + "/quant.safetensors", st);
  EXPECT_NO_THROW(load_model(dir));
}
