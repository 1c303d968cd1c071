// Reverse-mode autograd on a tape.
// A Var is a node holding a value (Tensor) and, once backward reaches it, a gradient. Every
// differentiable op (ops.h) computes its value with a kernel and, when grad mode is on and an input
// requires a gradient, records a backward closure on the thread's tape. backward(loss) walks the tape
// in reverse; gradients accumulate, so parameters used twice (tied embeddings) just work, and so does
// gradient accumulation over micro-batches.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace clm::ag {

struct Node {
  Tensor value;
  Tensor grad;  // undefined until something flows into it
  bool requires_grad = false;
  bool is_leaf = true;
  std::function<void(const Tensor& grad_out)> backward_fn;
  Tensor& grad_ref();  // allocates zeros on first use
};
using Var = std::shared_ptr<Node>;

Var leaf(Tensor value, bool requires_grad = false);

// Records `fn` on the tape if grad mode is on and any input requires a gradient.
using BackwardFn = std::function<void(const Tensor& grad_out)>;
Var make_result(Tensor value, std::initializer_list<const Var*> inputs, BackwardFn fn);

// Runs the tape backwards from a scalar loss (seed gradient 1), then clears the tape.
// Intermediate gradients are freed as soon as they have been propagated.
void backward(const Var& loss);
void clear_tape();  // drop recorded ops without running them (e.g. after an eval forward)
size_t tape_size();

bool grad_enabled();
struct NoGrad {
  NoGrad();
  ~NoGrad();
  bool prev;
};

// Calls f.template operator()<T>() with T = float or double according to dtype.
template <class F> decltype(auto) dispatch_float(DType d, F&& f) {
  if (d == DType::f32) return f.template operator()<float>();
  if (d == DType::f64) return f.template operator()<double>();
  throw std::invalid_argument(std::string("op needs f32 or f64, got ") + dtype_name(d));
}

}  // namespace clm::ag
