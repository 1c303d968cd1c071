#include "nn/module.h"

#include "autograd/ops.h"

namespace clm::nn {

Var Init::normal(const Shape& s, double stddev) {
  Tensor t = Tensor::empty(s, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal() * stddev;
  return ag::leaf(t.to(dtype), true);
}

Var Init::constant(const Shape& s, double v) {
  Tensor t = Tensor::empty(s, dtype);
  t.fill_(v);
  return ag::leaf(t, true);
}

Linear::Linear(int64_t in, int64_t out, bool bias, Init& init, double stddev) {
  w = init.normal({out, in}, stddev);
  if (bias) b = init.constant({out}, 0.0);
}

Var Linear::operator()(const Var& x) const { return ag::linear(x, w, b); }

void Linear::visit(const std::string& prefix, const ParamVisitor& f) {
  f(prefix + ".weight", w, ParamKind::weight);
  if (b) f(prefix + ".bias", b, ParamKind::bias);
}

}  // namespace clm::nn
