#include "nn/module.h"

#include <stdexcept>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"

namespace clm::nn {

Var Init::normal(const Shape& s, double stddev) {
  if (!random) return ag::leaf(Tensor::empty(s, dtype), true);
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

Var Linear::operator()(const Var& x) const {
  if (quantized) throw std::invalid_argument("a quantized checkpoint runs the inference path only (its dense weights are not stored)");
  return ag::linear(x, w, b);
}

void Linear::visit(const std::string& prefix, const ParamVisitor& f) {
  f(prefix + ".weight", w, ParamKind::weight);
  if (b) f(prefix + ".bias", b, ParamKind::bias);
}

}  // namespace clm::nn

namespace clm::nn {

float* Workspace::take(size_t n) {
  n = (n + 15) / 16 * 16;  // every buffer starts 64 bytes after the previous one's start
  for (; cur_ < chunks_.size(); ++cur_) {
    Chunk& c = chunks_[cur_];
    if (c.size - c.used >= n) {
      float* p = c.p.get() + c.used;
      c.used += n;
      return p;
    }
    if (cur_ + 1 < chunks_.size()) chunks_[cur_ + 1].used = 0;
  }
  const size_t size = std::max<size_t>(n, size_t(1) << 18);  // 1 MiB or the request
  chunks_.push_back({std::unique_ptr<float[]>(new float[size]), size, n});
  cur_ = chunks_.size() - 1;
  return chunks_.back().p.get();
}

void Workspace::release(Mark m) {
  if (chunks_.empty()) return;
  for (size_t i = m.chunk + 1; i < chunks_.size(); ++i) chunks_[i].used = 0;
  cur_ = m.chunk;
  chunks_[cur_].used = m.used;
}

Linear Linear::wrap(const Var& w) {
  Linear l;
  l.w = w;
  return l;
}

void Linear::infer(const float* x, int64_t n, float* y) const {
  if (observer) observer(x, n, in());
  if (packed) {
    packed->matmul(x, n, y);
  } else {
    if (w->value.dtype() != DType::f32) throw std::invalid_argument("inference needs f32 weights");
    kernels::gemm<float>(false, true, int(n), int(out()), int(in()), 1.0f, x, int(in()), w->value.data<float>(),
                         int(in()), 0.0f, y, int(out()));
  }
  if (b) {
    const float* bb = b->value.data<float>();
    const int64_t M = out();
    for (int64_t r = 0; r < n; ++r) kernels::vec().axpy(1.0f, bb, y + r * M, M);
  }
}

void Linear::pack(const std::string& format) {
  if (quantized) return;
  if (format.empty()) {
    packed.reset();
    return;
  }
  packed = kernels::pack_weight(format, w->value);
}

void Attention::infer_batch(const float* x, float* y, int64_t D, PositionEncoding& pe, std::span<LayerState* const> states,
                            std::span<const InferCtx> ctx) {
  int64_t row = 0;
  for (size_t i = 0; i < states.size(); ++i) {
    infer(x + row * D, y + row * D, pe, *states[i], ctx[i]);
    row += ctx[i].T;
  }
}

}  // namespace clm::nn
