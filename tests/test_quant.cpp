// Number formats (bit-exact against PyTorch / ml_dtypes casts made by tools/make_numfmt_fixtures.py
// and against the definitions), fake quantization, and the quantization methods.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>

#include "quant/numfmt.h"

using namespace clm;
using namespace clm::quant;

namespace {

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
  std::vector<float> bad(20, 1.0f);
  EXPECT_THROW(fake_quant(ElemSpec::parse("nvfp4"), bad.data(), 1, 20), std::invalid_argument);
  bad[0] = NAN;
  EXPECT_THROW(fake_quant(ElemSpec::parse("int8"), bad.data(), 1, 20), std::invalid_argument);
}
