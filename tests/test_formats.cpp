// The kernel cross-check harness: every weight format x every SIMD tier the CPU has x a set of
// shapes, against a float64 reference over the format's own dequantized weights, by normalised
// error (in the spirit of llama.cpp's test-backend-ops). A new format gets its coverage from one
// row in kFormats; a registered format without a row fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "kernels/cpu/vec.h"
#include "kernels/format.h"
#include "kernels/kernels.h"
#include "randv.h"

using namespace clm;
using namespace clm::kernels;

namespace {
struct FormatRow {
  double dequant_tol;  // max |dequantize(pack(W)) - W| / max|W|: the format's own rounding
  double matmul_tol;   // max |matmul - reference over dequantized W| / max|reference|: accumulation only
};
const std::map<std::string, FormatRow> kFormats = {
    {"f32", {0.0, 1e-5}},
    {"bf16", {1.0 / 256, 1e-5}},
};

std::vector<const VecKernels*> tiers() {
  std::vector<const VecKernels*> t{&vec_scalar()};
  if (vec_avx2()) t.push_back(vec_avx2());
  if (vec_avx512()) t.push_back(vec_avx512());
  return t;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace

TEST(Formats, EveryFormatTierAndShapeMatchesTheReference) {
  for (const std::string& name : FormatRegistry::get().names())
    ASSERT_TRUE(kFormats.count(name)) << "format '" << name << "' has no row in kFormats";
  Rng r(7);
  int cases = 0;
  for (const VecKernels* tier : tiers()) {
    set_vec(tier);
    for (auto& [name, row] : kFormats) {
      for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 8}, {4, 16}, {7, 13}, {33, 72}, {130, 64}, {64, 260}, {12, 2000}}) {
        std::vector<float> w = test::randv(r, rows * cols, 1.0);
        auto f = pack_weight(name, Tensor::from(w, {rows, cols}));
        ASSERT_EQ(f->rows(), rows);
        ASSERT_EQ(f->name(), name);
        std::vector<float> dq(size_t(rows * cols));
        f->dequantize(dq.data());
        double wmax = 0, derr = 0;
        for (int64_t i = 0; i < rows * cols; ++i) wmax = std::max(wmax, std::abs(double(w[i]))), derr = std::max(derr, std::abs(double(dq[i]) - w[i]));
        EXPECT_LE(derr / wmax, row.dequant_tol) << name << " " << rows << "x" << cols;
        for (int64_t n : {1, 3, 17, 40, 131, 300}) {
          std::vector<float> x = test::randv(r, n * cols, 2.0), y(size_t(n * rows), NAN);
          f->matmul(x.data(), n, y.data());
          std::vector<double> ref(size_t(n * rows)), diff(size_t(n * rows));
          for (int64_t i = 0; i < n; ++i)
            for (int64_t o = 0; o < rows; ++o) {
              double s = 0;
              for (int64_t k = 0; k < cols; ++k) s += double(x[i * cols + k]) * dq[o * cols + k];
              ref[i * rows + o] = s;
              diff[i * rows + o] = s - y[i * rows + o];
            }
          EXPECT_LE(max_abs(diff) / max_abs(ref), row.matmul_tol)
              << name << " tier " << tier->isa << " " << rows << "x" << cols << " n=" << n;
          ++cases;
        }
      }
    }
  }
  set_vec(nullptr);
  EXPECT_EQ(cases, int(tiers().size() * kFormats.size() * 7 * 6));
}

// attend_cells, the inference attention routine, against a float64 softmax with the position mask,
// on every tier: cells out of position order (as after eviction and re-insertion: the rows mask
// cell by cell), in order (the rows find their mask by binary search), in order with hidden cells
// at the end (KVCells::kHidden), each without and with an ALiBi slope.
TEST(Formats, AttendCellsMatchesMaskedSoftmaxOnEveryTier) {
  Rng r(3);
  const int32_t kHidden = 0x7fffffff;
  for (const VecKernels* tier : tiers()) {
    set_vec(tier);
    for (int64_t hd : {8, 12, 64})
      for (int layout : {0, 1, 2})
        for (float slope : {0.0f, 0.1f}) {
          const int64_t n = 37;
          std::vector<float> q = test::randv(r, hd, 1.0), K = test::randv(r, n * hd, 1.0), V = test::randv(r, n * hd, 1.0);
          std::vector<int32_t> pos(n);
          for (int64_t i = 0; i < n; ++i) pos[i] = layout == 0 ? int32_t((i * 17) % n) : int32_t(i);
          if (layout == 2) pos[n - 1] = pos[n - 2] = pos[n - 3] = kHidden;
          const std::string what = std::string(tier->isa) + " hd " + std::to_string(hd) + " layout " + std::to_string(layout) +
                                   " slope " + std::to_string(slope);
          // one query alone (decode) and the same query as row 1 of three (prefill: the GEMM path)
          for (int32_t qpos : {0, 10, 36}) for (int64_t T : {1, 3}) {
            std::vector<float> qs(size_t(T * (hd + 5))), outs(size_t(T * (hd + 2))), ss(size_t(T * n));
            std::vector<int32_t> qp(size_t(T), 36);
            const int64_t row = T == 1 ? 0 : 1;
            for (int64_t t = 0; t < T; ++t) std::copy(q.begin(), q.end(), qs.begin() + t * (hd + 5));
            qp[size_t(row)] = qpos;
            attend_cells(outs.data(), hd + 2, ss.data(), qs.data(), hd + 5, qp.data(), T, K.data(), V.data(), pos.data(), n, hd, 0.3f, slope);
            std::vector<float> out(outs.begin() + row * (hd + 2), outs.begin() + row * (hd + 2) + hd);
            std::vector<float> s(ss.begin() + row * n, ss.begin() + (row + 1) * n);
            std::vector<double> p(n, 0.0), ref(hd, 0.0);
            double m = -1e300, z = 0;
            for (int64_t i = 0; i < n; ++i)
              if (pos[i] <= qpos) {
                double d = 0;
                for (int64_t j = 0; j < hd; ++j) d += double(q[j]) * K[i * hd + j];
                p[i] = 0.3 * d - double(slope) * double(qpos - pos[i]), m = std::max(m, p[i]);
              }
            for (int64_t i = 0; i < n; ++i) z += pos[i] <= qpos ? (p[i] = std::exp(p[i] - m)) : (p[i] = 0);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t j = 0; j < hd; ++j) ref[j] += p[i] / z * V[i * hd + j];
            for (int64_t j = 0; j < hd; ++j) EXPECT_NEAR(out[j], ref[j], 1e-5) << what << " qpos " << qpos << " T " << T;
            for (int64_t i = 0; i < n; ++i) {
              EXPECT_NEAR(s[i], p[i] / z, 1e-6) << what << " qpos " << qpos << " T " << T;
              if (pos[i] > qpos) {
                EXPECT_EQ(s[i], 0.0f) << what << ": a masked cell's probability is exactly 0";
              }
            }
          }
        }
  }
  set_vec(nullptr);
}
