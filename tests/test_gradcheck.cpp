// Every differentiable op, table-driven: (1) float64 analytic gradients against central finite
// differences; (2) float32 against float64 for the value and every gradient.
#include <functional>

#include "autograd/ops.h"
#include "common.h"
#include "util/rng.h"

using namespace clm;
using ag::Var;

namespace {

struct Case {
  std::string name;
  std::vector<Shape> inputs;
  std::function<Var(const std::vector<Var>&, DType)> f;
  double f32_tol = 2e-5;
};

Tensor ids_tensor(std::vector<int32_t> v) { return Tensor::from(v, {int64_t(v.size())}); }

Tensor table(int64_t T, int64_t half, bool is_sin, DType dt) {
  Tensor t = Tensor::empty({T, half}, DType::f64);
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < half; ++i) {
      double a = (p + 1) * std::pow(100.0, -double(i) / half);
      t.data<double>()[p * half + i] = is_sin ? std::sin(a) : std::cos(a);
    }
  return t.to(dt);
}

std::vector<Case> cases() {
  return {
      {"linear", {{3, 5}, {4, 5}, {4}}, [](auto& in, DType) { return ag::linear(in[0], in[1], in[2]); }},
      {"linear_nobias", {{2, 3, 5}, {4, 5}}, [](auto& in, DType) { return ag::linear(in[0], in[1]); }},
      {"add", {{3, 4}, {3, 4}}, [](auto& in, DType) { return ag::add(in[0], in[1]); }},
      {"mul", {{3, 4}, {3, 4}}, [](auto& in, DType) { return ag::mul(in[0], in[1]); }},
      {"scale", {{7}}, [](auto& in, DType) { return ag::scale(in[0], -1.7); }},
      {"sum", {{2, 3}}, [](auto& in, DType) { return ag::sum(in[0]); }},
      {"add_rows", {{6, 4}, {5, 4}}, [](auto& in, DType) { return ag::add_rows(in[0], in[1], 1, 3); }},
      {"columns", {{3, 7}}, [](auto& in, DType) { return ag::columns(in[0], 2, 5); }},
      {"rmsnorm", {{3, 6}, {6}}, [](auto& in, DType) { return ag::rmsnorm(in[0], in[1], 1e-5); }},
      {"rmsnorm_offset1", {{3, 6}, {6}}, [](auto& in, DType) { return ag::rmsnorm(in[0], in[1], 1e-5, 1.0); }},
      {"layernorm", {{3, 6}, {6}, {6}}, [](auto& in, DType) { return ag::layernorm(in[0], in[1], in[2], 1e-5); }},
      {"swiglu", {{4, 5}, {4, 5}}, [](auto& in, DType) { return ag::swiglu(in[0], in[1]); }},
      {"gelu", {{4, 5}}, [](auto& in, DType) { return ag::gelu(in[0], false); }},
      {"gelu_tanh", {{4, 5}}, [](auto& in, DType) { return ag::gelu(in[0], true); }},
      {"softmax", {{3, 7}}, [](auto& in, DType) { return ag::softmax(in[0]); }},
      {"rotary_half", {{2 * 3, 2 * 6}},
       [](auto& in, DType dt) { return ag::rotary(in[0], table(3, 3, false, dt), table(3, 3, true, dt), 2, 3, 2, 6, false); }},
      {"rotary_interleaved", {{2 * 3, 2 * 6}},
       [](auto& in, DType dt) { return ag::rotary(in[0], table(3, 3, false, dt), table(3, 3, true, dt), 2, 3, 2, 6, true); }},
      {"attention_gqa", {{2 * 4, 4 * 3}, {2 * 4, 2 * 3}, {2 * 4, 2 * 3}},
       [](auto& in, DType) { return ag::attention(in[0], in[1], in[2], 2, 4, 4, 2, 3, 0.577); }},
      {"attention_mha", {{1 * 5, 2 * 4}, {1 * 5, 2 * 4}, {1 * 5, 2 * 4}},
       [](auto& in, DType) { return ag::attention(in[0], in[1], in[2], 1, 5, 2, 2, 4, 0.5); }},
      {"attention_alibi", {{2 * 4, 4 * 3}, {2 * 4, 2 * 3}, {2 * 4, 2 * 3}},
       [](auto& in, DType) { return ag::attention(in[0], in[1], in[2], 2, 4, 4, 2, 3, 0.577, {0.5, 0.25, 0.125, 1.5}); }},
      {"attention_bidirectional_alibi", {{2 * 4, 2 * 3}, {2 * 4, 2 * 3}, {2 * 4, 2 * 3}},
       [](auto& in, DType) { return ag::attention(in[0], in[1], in[2], 2, 4, 2, 2, 3, 0.577, {0.5, 0.25}, false); }},
      {"dim_attention_causal_rows", {{2 * 4, 2 * 3}, {2 * 4, 1 * 3}, {2 * 4, 1 * 3}, {2, 3, 3}},
       [](auto& in, DType) { return ag::dim_attention(in[0], in[1], in[2], in[3], 2, 4, 2, 1, 3, true, true, false); }},
      {"dim_attention_causal_cols_count", {{1 * 5, 2 * 4}, {1 * 5, 2 * 4}, {1 * 5, 2 * 4}, {2, 4, 4}},
       [](auto& in, DType) { return ag::dim_attention(in[0], in[1], in[2], in[3], 1, 5, 2, 2, 4, true, false, true); }},
      {"dim_attention_bidirectional", {{2 * 3, 2 * 3}, {2 * 3, 2 * 3}, {2 * 3, 2 * 3}, {2, 3, 3}},
       [](auto& in, DType) { return ag::dim_attention(in[0], in[1], in[2], in[3], 2, 3, 2, 2, 3, false, true, false); }},
      {"diag_blocks", {{4, 3}, {2, 3}}, [](auto& in, DType) { return ag::diag_blocks(in[0], in[1]); }},
      {"btd_slices", {{2 * 3, 4}, {2 * 3, 4}, {2 * 3, 4}, {2, 4}},
       [](auto& in, DType) { return ag::btd_slices(in[0], in[1], in[2], in[3], 2, 3); }},
      {"block_mean", {{4, 6}}, [](auto& in, DType) { return ag::block_mean(in[0], 3); }},
      {"embedding", {{6, 3}}, [](auto& in, DType) { return ag::embedding(in[0], ids_tensor({1, 4, 1, 0, 5})); }},
      {"replace_rows", {{5, 3}, {2, 3}}, [](auto& in, DType) { return ag::replace_rows(in[0], in[1], {3, 1}); }},
      // SEE: a unit repeated inside one word (slots 0 and 2 of word 1), PAD rows, d < q^n (truncation)
      {"tensor_product_rows", {{2, 5, 3}},
       [](auto& in, DType) {
         return ag::tensor_product_rows(in[0], Tensor::from(std::vector<int32_t>{1, 2, 3, 4, 0, 4, 0, 0, 2, 3, 3, 1}, {4, 3}), 25);
       }},
      {"tensor_product_rows_order2", {{3, 4, 4}},
       [](auto& in, DType) { return ag::tensor_product_rows(in[0], Tensor::from(std::vector<int32_t>{1, 2, 3, 3, 0, 1}, {3, 2}), 13); }},
      // recurrent scans: B 2 x T 3, H 3, carried-in states that are not zero
      {"tslm_scan", {{2 * 3, 3}, {3, 3}, {3}},
       [](auto& in, DType dt) {
         return ag::tslm_scan(in[0], in[1], in[2], Tensor::from(std::vector<double>{0.3, -0.2, 0.5, 0.1, 0.4, -0.6}, {2, 3}).to(dt), 2, 3);
       }},
      {"lstm_scan", {{2 * 3, 4 * 2}, {4 * 2, 2}, {4 * 2}},
       [](auto& in, DType dt) {
         return ag::lstm_scan(in[0], in[1], in[2], Tensor::from(std::vector<double>{0.3, -0.2, 0.5, 0.1}, {2, 2}).to(dt),
                              Tensor::from(std::vector<double>{-0.4, 0.7, 0.2, -0.1}, {2, 2}).to(dt), 2, 3);
       }},
      {"weighted_rows", {{5, 4}, {3, 2}},
       [](auto& in, DType) { return ag::weighted_rows(in[0], Tensor::from(std::vector<int32_t>{1, 4, 2, 2, 0, 3}, {3, 2}), in[1]); }},
      {"soft_cross_entropy", {{3, 4}},
       [](auto& in, DType) {
         return ag::soft_cross_entropy(in[0], Tensor::from(std::vector<double>{0.1, 0.2, 0.3, 0.4, 1, 0, 0, 0, 0.25, 0.25, 0.25, 0.25}, {3, 4}));
       }},
      {"cross_entropy", {{5, 7}},
       [](auto& in, DType) { return ag::cross_entropy(in[0], ids_tensor({3, -1, 6, 0, 3})); }},
  };
}

// loss = sum(out * R) with a fixed random R, so every output element matters differently.
Var scalar_loss(const Var& out, uint64_t seed) {
  Tensor r = Tensor::empty(out->value.shape(), DType::f64);
  Rng rng(seed);
  for (int64_t i = 0; i < r.numel(); ++i) r.data<double>()[i] = rng.normal();
  return ag::sum(ag::mul(out, ag::leaf(r.to(out->value.dtype()))));
}

std::vector<Var> make_inputs(const Case& c, DType dt) {
  Rng rng(42);
  std::vector<Var> in;
  for (auto& s : c.inputs) {
    Tensor t = Tensor::empty(s, DType::f64);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = rng.normal();
    in.push_back(ag::leaf(t.to(dt), true));
  }
  return in;
}

class GradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(GradCheck, Float64FiniteDifferences) {
  const Case& c = GetParam();
  auto in = make_inputs(c, DType::f64);
  ag::backward(scalar_loss(c.f(in, DType::f64), 7));
  for (size_t k = 0; k < in.size(); ++k) {
    Tensor analytic = in[k]->grad.defined() ? in[k]->grad.clone() : Tensor::zeros(in[k]->value.shape(), DType::f64);
    Tensor numeric = Tensor::empty(in[k]->value.shape(), DType::f64);
    double* x = in[k]->value.data<double>();
    for (int64_t i = 0; i < numeric.numel(); ++i) {
      const double h = 1e-6, x0 = x[i];
      double lp, lm;
      {
        ag::NoGrad ng;
        x[i] = x0 + h;
        lp = scalar_loss(c.f(in, DType::f64), 7)->value.item();
        x[i] = x0 - h;
        lm = scalar_loss(c.f(in, DType::f64), 7)->value.item();
        x[i] = x0;
      }
      numeric.data<double>()[i] = (lp - lm) / (2 * h);
    }
    EXPECT_LT(test::rel_err(analytic, numeric), 1e-7) << c.name << " input " << k;
    double norm = 0;
    for (int64_t i = 0; i < numeric.numel(); ++i) norm += std::abs(numeric.at(i));
    EXPECT_GT(norm, 0.0) << c.name << " input " << k << ": gradient is identically zero";
  }
}

TEST_P(GradCheck, Float32AgreesWithFloat64) {
  const Case& c = GetParam();
  auto in64 = make_inputs(c, DType::f64);
  auto in32 = make_inputs(c, DType::f32);
  Var o64 = c.f(in64, DType::f64);
  ag::backward(scalar_loss(o64, 7));  // one tape per thread: finish one graph before the next
  Var o32 = c.f(in32, DType::f32);
  EXPECT_EQ(o32->value.dtype(), DType::f32);
  EXPECT_LT(test::rel_err(o32->value, o64->value), c.f32_tol) << c.name << " value";
  ag::backward(scalar_loss(o32, 7));
  for (size_t k = 0; k < in64.size(); ++k)
    EXPECT_LT(test::rel_err(in32[k]->grad, in64[k]->grad), c.f32_tol) << c.name << " grad " << k;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace

TEST(Autograd, TiedParameterAccumulatesBothUses) {
  Var w = ag::leaf(Tensor::from<double>({1, 2, 3, 4}, {2, 2}), true);
  Var x = ag::leaf(Tensor::from<double>({1, -1}, {1, 2}));
  // y = sum(W x) + sum(W x): gradient is twice that of a single use
  ag::backward(ag::add(ag::sum(ag::linear(x, w)), ag::sum(ag::linear(x, w))));
  EXPECT_EQ(w->grad.at(0), 2.0);
  EXPECT_EQ(w->grad.at(1), -2.0);
  EXPECT_EQ(ag::tape_size(), 0u);
}

TEST(Autograd, NoGradRecordsNothing) {
  Var w = ag::leaf(Tensor::from<double>({1, 2}, {1, 2}), true);
  ag::NoGrad ng;
  Var y = ag::sum(w);
  EXPECT_FALSE(y->requires_grad);
  EXPECT_EQ(ag::tape_size(), 0u);
}

TEST(Autograd, ShapeErrorsNameTheOp) {
  Var a = ag::leaf(Tensor::zeros({2, 3}), true), b = ag::leaf(Tensor::zeros({3, 2}), true);
  try {
    ag::add(a, b);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos);
  }
  EXPECT_THROW(ag::linear(a, ag::leaf(Tensor::zeros({4, 2}))), std::invalid_argument);
}
