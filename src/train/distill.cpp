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

std::vector<float> frequency_weights(const std::vector<int32_t>& tokens, int64_t vocab, double power) {
  std::vector<double> c(size_t(vocab), 1.0);
  for (int32_t t : tokens)
    if (t >= 0 && t < vocab) c[size_t(t)] += 1;
  double mean = 0;
  for (double& v : c) mean += (v = std::pow(v, power));
  mean /= double(vocab);
  std::vector<float> w(static_cast<size_t>(vocab));
  for (size_t v = 0; v < w.size(); ++v) w[v] = float(c[v] / mean);
  return w;
}

double fit_embedding(LanguageModel& to, const Tensor& target, int64_t steps, double lr, int64_t log_every,
                     const std::vector<float>& row_weight) {
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
  nn::Var weight;  // [V, d]: row v's weight on each of its elements
  if (!row_weight.empty()) {
    if (int64_t(row_weight.size()) != c.vocab_size) throw std::invalid_argument("fit_embedding: one weight per vocabulary row expected");
    Tensor w = Tensor::empty({c.vocab_size, c.d_model}, DType::f32);
    for (int64_t v = 0; v < c.vocab_size; ++v) std::fill_n(w.data<float>() + v * c.d_model, c.d_model, row_weight[size_t(v)]);
    weight = ag::leaf(w.to(to.dtype()));
  }
  auto error = [&] {  // the table's difference from the target, on the tape
    emb->forward(one_id);
    return ag::add(emb->forward_output_weight(), ag::scale(neg_target, -1.0));
  };
  for (int64_t s = 0; s < steps; ++s) {
    nn::Var d = error();
    nn::Var sq = ag::mul(d, d);
    nn::Var loss = ag::scale(ag::sum(weight ? ag::mul(sq, weight) : sq), inv);
    const double l = loss->value.item();
    if (!std::isfinite(l)) throw std::runtime_error("fit_embedding: the error became non-finite at step " + std::to_string(s + 1));
    ag::backward(loss);
    opt.step(lr);
    zero_grads(ps);
    if (log_every > 0 && ((s + 1) % log_every == 0 || s + 1 == steps))
      std::fprintf(stderr, "fit embedding: step %lld/%lld | %s %.6g\n", (long long)(s + 1), (long long)steps, weight ? "weighted mse" : "mse", l);
  }
  ag::NoGrad ng;
  const nn::Var d = error();
  return ag::sum(ag::mul(d, d))->value.item() * inv;
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
