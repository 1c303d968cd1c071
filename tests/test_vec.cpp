// Every SIMD table against the scalar reference (no BLAS: this test also builds as a static binary
// to run on machines with other ISAs, e.g. AVX-512).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/cpu/vec.h"
#include "randv.h"

using namespace clm;
using namespace clm::kernels;

using test::randv;

TEST(Vec, EveryIsaMatchesScalar) {
  std::vector<const VecKernels*> tables{vec_avx2(), vec_avx512()};
  const VecKernels& ref = vec_scalar();
  int tested = 0;
  Rng r(1);
  for (const VecKernels* k : tables) {
    if (!k) continue;  // CPU lacks it
    ++tested;
    for (int64_t n : {1, 3, 7, 8, 15, 16, 17, 24, 31, 33, 64, 100, 1000, 1024}) {
      auto x = randv(r, n, 3.0), y = randv(r, n, 3.0);
      EXPECT_NEAR(k->dot(x.data(), y.data(), n), ref.dot(x.data(), y.data(), n), 1e-4 * n) << k->isa << " n=" << n;
      EXPECT_NEAR(k->sumsq(x.data(), n), ref.sumsq(x.data(), n), 1e-4 * n) << k->isa;
      EXPECT_EQ(k->max(x.data(), n), ref.max(x.data(), n)) << k->isa;
      auto y1 = y, y2 = y;
      k->axpy(0.5f, x.data(), y1.data(), n);
      ref.axpy(0.5f, x.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y1[i], y2[i], 1e-6);
      k->scale(-1.5f, y1.data(), n);
      ref.scale(-1.5f, y2.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y1[i], y2[i], 1e-5);
      std::vector<uint16_t> wb(n);
      for (int64_t i = 0; i < n; ++i) wb[i] = uint16_t(r.next() & 0x3fff) | uint16_t((r.next() & 1) << 15);  // |w| < 2
      EXPECT_NEAR(k->dot_bf16(wb.data(), x.data(), n), ref.dot_bf16(wb.data(), x.data(), n), 1e-4 * n) << k->isa;
      std::vector<float> wide(n), wide_ref(n);
      k->widen_bf16(wb.data(), wide.data(), n);
      ref.widen_bf16(wb.data(), wide_ref.data(), n);
      EXPECT_EQ(wide, wide_ref) << k->isa;  // exact: bf16 is the high half of the f32
      if (n % 8 == 0) {  // one panel (four rows, 8-column chunks) against the scalar table
        std::vector<float> p4 = randv(r, 4 * n);
        std::vector<uint16_t> b4(4 * n);
        for (auto& h : b4) h = uint16_t(r.next() & 0x3fff) | uint16_t((r.next() & 1) << 15);
        float o1[4], o2[4], e1[4], e2[4];
        k->panel4_f32(p4.data(), x.data(), n, o1);
        k->panel4_bf16(b4.data(), x.data(), n, o2);
        ref.panel4_f32(p4.data(), x.data(), n, e1);
        ref.panel4_bf16(b4.data(), x.data(), n, e2);
        for (int q = 0; q < 4; ++q) {
          EXPECT_NEAR(o1[q], e1[q], 1e-4 * n) << k->isa;
          EXPECT_NEAR(o2[q], e2[q], 1e-4 * n) << k->isa;
        }
        // four vectors (ldx > n: rows of a padded batch) against four single products
        const int64_t ldx = n + 8;
        std::vector<float> xs = randv(r, 4 * ldx);
        float q1[16], q2[16];
        k->panel4x4_f32(p4.data(), xs.data(), ldx, n, q1);
        k->panel4x4_bf16(b4.data(), xs.data(), ldx, n, q2);
        for (int v = 0; v < 4; ++v) {
          ref.panel4_f32(p4.data(), xs.data() + v * ldx, n, e1);
          ref.panel4_bf16(b4.data(), xs.data() + v * ldx, n, e2);
          for (int q = 0; q < 4; ++q) {
            EXPECT_NEAR(q1[4 * v + q], e1[q], 1e-4 * n) << k->isa << " vector " << v;
            EXPECT_NEAR(q2[4 * v + q], e2[q], 1e-4 * n) << k->isa << " vector " << v;
          }
        }
        // many vectors (a full tile and a narrower one) times two panels, against a direct sum
        const int64_t nt = k->gemm_tile + k->lanes, ldo = nt + 3;
        std::vector<float> p8 = randv(r, 8 * n), xp = randv(r, n * nt), g1(8 * ldo, NAN);
        k->panel_gemm(p8.data(), 2, xp.data(), n, nt, g1.data(), ldo);
        for (int q = 0; q < 8; ++q)
          for (int64_t t = 0; t < nt; ++t) {
            const int64_t t0 = t / k->gemm_tile * k->gemm_tile, w = std::min(k->gemm_tile, nt - t0);
            double s = 0;
            for (int64_t i = 0; i < n; ++i) s += double(p8[(q / 4) * 4 * n + (i / 8) * 32 + 8 * (q % 4) + i % 8]) * xp[t0 * n + i * w + t - t0];
            EXPECT_NEAR(g1[q * ldo + t], s, 1e-4 * n) << k->isa << " row " << q << " vector " << t;
          }
      }
      std::vector<float> e1(n), e2(n);
      float m = ref.max(x.data(), n);
      float s1 = k->exp_sum(x.data(), m, e1.data(), n), s2 = ref.exp_sum(x.data(), m, e2.data(), n);
      EXPECT_NEAR(s1, s2, 1e-6 * s2) << k->isa;
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(e1[i], e2[i], 2e-7 * std::max(1.0f, e2[i])) << k->isa;
    }
    // exp over its whole useful range, including underflow to 0.
    std::vector<float> x, e1, e2;
    for (float v = -120.f; v <= 0.f; v += 0.37f) x.push_back(v);
    e1.resize(x.size()), e2.resize(x.size());
    k->exp_sum(x.data(), 0.f, e1.data(), int64_t(x.size()));
    ref.exp_sum(x.data(), 0.f, e2.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(e1[i], e2[i], 3e-7 * e2[i] + 1e-37) << "x=" << x[i];
  }
  std::printf("tested %d SIMD tables; active: %s\n", tested, vec().isa);
  EXPECT_EQ(tested, int(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) +
                        int(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")))
      << "a table the CPU supports was not tested";
}

