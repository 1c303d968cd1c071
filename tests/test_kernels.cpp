// Kernels against scalar / naive references: every SIMD table against the scalar one, attention
// (GQA, KV-cache offsets and strides) against a direct float64 implementation.
#include <vector>

#include "common.h"
#include "kernels/cpu/panel.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "randv.h"

using namespace clm;
using namespace clm::kernels;

using test::randv;

TEST(Gemm, MatchesNaiveAllTransposes) {
  Rng r(2);
  const int M = 5, N = 7, K = 9;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto A = randv(r, M * K), B = randv(r, K * N), C = randv(r, M * N);
      auto C0 = C;
      gemm<float>(ta, tb, M, N, K, 0.5f, A.data(), ta ? M : K, B.data(), tb ? K : N, 2.0f, C.data(), N);
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          double s = 0;
          for (int k = 0; k < K; ++k) s += double(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
          ASSERT_NEAR(C[i * N + j], 0.5 * s + 2.0 * C0[i * N + j], 1e-4);
        }
    }
}

// Direct float64 attention: q [B,Tq,H,hd], k/v read through strides.
static std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                           const std::vector<float>& v, const AttnShape& s, double scale) {
  std::vector<double> out(s.B * s.Tq * s.H * s.hd, 0.0);
  const int64_t off = s.Tk - s.Tq, g = s.H / s.Hkv;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.Tq; ++i) {
        std::vector<double> sc(s.Tk, -1e300);
        double mx = -1e300;
        for (int64_t j = 0; j <= i + off; ++j) {
          double d = 0;
          for (int64_t e = 0; e < s.hd; ++e)
            d += double(q[b * s.q_batch + i * s.q_row + h * s.hd + e]) * k[b * s.kv_batch + j * s.kv_row + (h / g) * s.hd + e];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        double z = 0;
        for (int64_t j = 0; j <= i + off; ++j) z += (sc[j] = std::exp(sc[j] - mx));
        for (int64_t j = 0; j <= i + off; ++j)
          for (int64_t e = 0; e < s.hd; ++e)
            out[((b * s.Tq + i) * s.H + h) * s.hd + e] += sc[j] / z * v[b * s.kv_batch + j * s.kv_row + (h / g) * s.hd + e];
      }
  return out;
}

// Packing and padding (rows not a multiple of 4, columns not a multiple of 8) against a float64
// product with the same (bf16-rounded) weights.
TEST(PanelMatrix, MatvecMatchesNaiveForOddShapes) {
  Rng r(5);
  for (auto type : {PanelMatrix::Type::f32, PanelMatrix::Type::bf16})
    for (int64_t rows : {1, 3, 4, 5, 13, 64})
      for (int64_t cols : {1, 7, 8, 9, 33, 96}) {
        auto W = randv(r, rows * cols), x = randv(r, cols);
        PanelMatrix P(W.data(), rows, cols, type);
        std::vector<float> y(rows + 1, 123.0f);  // the guard element must stay untouched
        P.matvec(x.data(), y.data());
        EXPECT_EQ(y[rows], 123.0f);
        for (int64_t i = 0; i < rows; ++i) {
          double s = 0, a = 0;
          for (int64_t j = 0; j < cols; ++j) {
            const double w = P.at(i, j);
            ASSERT_NEAR(w, W[i * cols + j], type == PanelMatrix::Type::f32 ? 0.0 : 8e-3 * std::abs(W[i * cols + j]));
            s += w * x[j], a += std::abs(w * x[j]);
          }
          ASSERT_NEAR(y[i], s, 1e-5 * (a + 1)) << rows << "x" << cols;
        }
      }
}

TEST(Attention, CausalGqaAndCacheStridesMatchNaive) {
  Rng r(3);
  struct Case { int64_t B, Tq, Tk, H, Hkv, hd, cap; };
  for (Case c : {Case{2, 6, 6, 4, 2, 8, 6}, Case{1, 1, 9, 4, 1, 16, 12}, Case{2, 3, 7, 2, 2, 4, 10}}) {
    AttnShape s{c.B, c.Tq, c.Tk, c.H, c.Hkv, c.hd, c.H * c.hd, c.Tq * c.H * c.hd, c.Hkv * c.hd, c.cap * c.Hkv * c.hd};
    auto q = randv(r, c.B * c.Tq * c.H * c.hd), k = randv(r, c.B * c.cap * c.Hkv * c.hd),
         v = randv(r, c.B * c.cap * c.Hkv * c.hd);
    std::vector<float> out(c.B * c.Tq * c.H * c.hd);
    std::vector<float> probs(c.B * c.H * c.Tq * c.Tk);
    attention_forward<float>(out.data(), probs.data(), q.data(), k.data(), v.data(), s, 0.3f);
    auto ref = naive_attention(q, k, v, s, 0.3);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5) << i;
    // probabilities of each row sum to one and vanish beyond the causal limit
    for (int64_t row = 0; row < c.B * c.H * c.Tq; ++row) {
      int64_t i = row % c.Tq;
      double sum = 0;
      for (int64_t j = 0; j < c.Tk; ++j) {
        sum += probs[row * c.Tk + j];
        if (j > i + c.Tk - c.Tq) {
          ASSERT_EQ(probs[row * c.Tk + j], 0.0f);
        }
      }
      ASSERT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(CrossEntropy, MatchesLogSoftmaxAndIgnoresNegativeTargets) {
  Rng r(4);
  const int64_t N = 5, V = 1000;
  auto logits = randv(r, N * V, 4.0);
  std::vector<int32_t> t{3, -1, 999, 0, 512};
  std::vector<float> lse(N);
  int64_t cnt = 0;
  double total = cross_entropy_forward<float>(lse.data(), logits.data(), t.data(), N, V, &cnt);
  EXPECT_EQ(cnt, 4);
  double ref = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] < 0) continue;
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(logits[i * V + j]));
    for (int64_t j = 0; j < V; ++j) z += std::exp(logits[i * V + j] - mx);
    ref += mx + std::log(z) - logits[i * V + t[i]];
  }
  EXPECT_NEAR(total, ref, 1e-4);
  std::vector<int32_t> bad{3, 1000, 0, 0, 0};
  EXPECT_THROW(cross_entropy_forward<float>(lse.data(), logits.data(), bad.data(), N, V, &cnt), std::out_of_range);
}

// TensorCoder's causal backward keeps the running sum only before each chunk and recomputes the
// chunk's S_t: every chunk length (1, uneven, the default, one chunk for the whole sequence) gives the
// same floats, forward and backward, across GQA, both softmax directions and both scales.
TEST(DimAttention, ChunkedRecomputationGivesTheSameFloats) {
  Rng r(9);
  const int64_t B = 2, T = 150, H = 2, Hkv = 1, hd = 19;  // past the SIMD width; the default chunk (64) ends short
  const auto q = randv(r, B * T * H * hd), k = randv(r, B * T * Hkv * hd), v = randv(r, B * T * Hkv * hd);
  const auto W = randv(r, H * hd * hd), dout = randv(r, B * T * H * hd);
  for (bool rows : {true, false})
    for (bool by_count : {false, true}) {
      auto run = [&](int64_t chunk) {
        DimAttnShape s{B, T, H, Hkv, hd, true, rows, by_count, chunk};
        std::vector<float> out(q.size()), S(size_t(B * H * dim_saved(s) * hd * hd));
        std::vector<float> dq(q.size()), dk(k.size()), dv(v.size()), dW(W.size());
        dim_attention_forward<float>(out.data(), S.data(), q.data(), k.data(), v.data(), W.data(), s);
        dim_attention_backward<float>(dq.data(), dk.data(), dv.data(), dW.data(), dout.data(), S.data(), q.data(), k.data(),
                                      v.data(), W.data(), s);
        return std::vector<std::vector<float>>{out, dq, dk, dv, dW};
      };
      const auto whole = run(T);
      EXPECT_EQ(dim_saved(DimAttnShape{B, T, H, Hkv, hd, true, rows, by_count, 0}), 3);
      for (int64_t chunk : {1, 7, 64, 0})
        EXPECT_EQ(run(chunk), whole) << "chunk " << chunk << " rows " << rows << " by_count " << by_count;
    }
}
