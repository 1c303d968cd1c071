#include "train/distill.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "train/optim.h"

namespace clm {

std::vector<std::string> copy_matching_params(LanguageModel& from, LanguageModel& to, bool copy_buffers) {
  std::map<std::string, Tensor> src;
  from.visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { src[n] = v->value; });
  std::vector<std::string> unmatched;
  to.visit([&](const std::string& n, nn::Var& v, nn::ParamKind k) {
    if (k == nn::ParamKind::buffer && !copy_buffers) return;
    auto it = src.find(n);
    if (it != src.end() && it->second.shape() == v->value.shape()) v->value.copy_(it->second);
    else unmatched.push_back(n);
  });
  return unmatched;
}

double fit_embedding(LanguageModel& to, const Tensor& target, int64_t steps, double lr, int64_t log_every) {
  nn::TokenEmbedding* emb = to.embedding();
  if (!emb) throw std::invalid_argument("fit_embedding: the model has no embedding slot");
  const ModelConfig& c = to.config();
  if (target.shape() != Shape{c.vocab_size, c.d_model})
    throw std::invalid_argument("fit_embedding: target " + shape_str(target.shape()) + ", expected [" +
                                std::to_string(c.vocab_size) + ", " + std::to_string(c.d_model) + "]");
  std::vector<ParamRef> ps;
  emb->visit("embedding", [&](const std::string& n, nn::Var& v, nn::ParamKind k) {
    if (k != nn::ParamKind::buffer) ps.push_back({n, v, k});
  });
  AdamWConfig ac;
  ac.weight_decay = 0;
  AdamW opt(ps, ac);
  const nn::Var neg_target = ag::leaf(target.to(to.dtype()).contiguous());
  const Tensor one_id = Tensor::from(std::vector<int32_t>{0}, {1});
  const double inv = 1.0 / double(target.numel());
  double mse = 0;
  for (int64_t s = 0; s < steps; ++s) {
    emb->forward(one_id);  // builds the table on the tape
    nn::Var d = ag::add(emb->forward_output_weight(), ag::scale(neg_target, -1.0));
    nn::Var loss = ag::scale(ag::sum(ag::mul(d, d)), inv);
    mse = loss->value.item();
    if (!std::isfinite(mse)) throw std::runtime_error("fit_embedding: the error became non-finite at step " + std::to_string(s + 1));
    ag::backward(loss);
    opt.step(lr);
    zero_grads(ps);
    if (log_every > 0 && ((s + 1) % log_every == 0 || s + 1 == steps))
      std::fprintf(stderr, "fit embedding: step %lld/%lld | mse %.6g\n", (long long)(s + 1), (long long)steps, mse);
  }
  return mse;
}

nn::Var distill_loss(LanguageModel& student, LanguageModel& teacher, const Tensor& x, const Tensor& y, int64_t B,
                     int64_t T, double alpha) {
  nn::Var logits = student.forward(x, B, T);
  nn::Var ce = ag::cross_entropy(logits, y);
  if (alpha <= 0) return ce;
  Tensor probs;
  {
    ag::NoGrad ng;
    probs = teacher.forward(x, B, T)->value.to(DType::f32).contiguous();
  }
  const int64_t V = probs.dim(-1), N = probs.numel() / V;
  probs = probs.reshape({N, V});
  kernels::softmax_forward<float>(probs.data<float>(), probs.data<float>(), N, V);  // in place, row by row
  nn::Var soft = ag::soft_cross_entropy(logits, probs);
  return ag::add(ag::scale(ce, 1.0 - alpha), ag::scale(soft, alpha));
}

}  // namespace clm
