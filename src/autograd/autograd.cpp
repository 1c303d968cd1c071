#include "autograd/autograd.h"

namespace clm::ag {

namespace {
thread_local std::vector<Var> g_tape;
thread_local bool g_grad_enabled = true;
}  // namespace

Tensor& Node::grad_ref() {
  if (!grad.defined()) grad = Tensor::zeros(value.shape(), value.dtype(), value.device());
  return grad;
}

Var leaf(Tensor value, bool requires_grad) {
  auto n = std::make_shared<Node>();
  n->value = std::move(value);
  n->requires_grad = requires_grad;
  return n;
}

Var make_result(Tensor value, std::initializer_list<const Var*> inputs, BackwardFn fn) {
  auto n = std::make_shared<Node>();
  n->value = std::move(value);
  n->is_leaf = false;
  if (!g_grad_enabled) return n;
  for (const Var* in : inputs)
    if (*in && (*in)->requires_grad) n->requires_grad = true;
  if (n->requires_grad) {
    n->backward_fn = std::move(fn);
    g_tape.push_back(n);
  }
  return n;
}

void backward(const Var& loss) {
  if (loss->value.numel() != 1) throw std::logic_error("backward: loss must be a scalar");
  if (!loss->requires_grad) throw std::logic_error("backward: loss does not depend on any parameter");
  loss->grad_ref().fill_(1.0);
  for (auto it = g_tape.rbegin(); it != g_tape.rend(); ++it) {
    Node& n = **it;
    if (n.grad.defined() && n.backward_fn) n.backward_fn(n.grad);
    n.backward_fn = nullptr;  // releases the saved inputs
    n.grad = Tensor();
  }
  g_tape.clear();
}

void clear_tape() {
  for (auto& n : g_tape) n->backward_fn = nullptr;
  g_tape.clear();
}
size_t tape_size() { return g_tape.size(); }

bool grad_enabled() { return g_grad_enabled; }
NoGrad::NoGrad() : prev(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = prev; }

}  // namespace clm::ag
