#include "train/distill.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "train/optim.h"
#include "util/rng.h"

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
                     const std::vector<float>& row_weight, const HiddenFit& hid) {
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
  const bool use_hidden = hid.weight > 0;
  if (use_hidden) {
    if (!hid.teacher || !hid.tokens) throw std::invalid_argument("fit_embedding: the hidden-state term needs a teacher and tokens");
    if (hid.batch < 1 || hid.seq < 1 || int64_t(hid.tokens->size()) <= hid.seq)
      throw std::invalid_argument("fit_embedding: the hidden-state term needs a batch >= 1 and more than seq = " + std::to_string(hid.seq) +
                                  " tokens");
  }
  // The body stays frozen: no gradients for anything but the embedding's parameters; restored on
  // every way out, an exception included.
  std::vector<nn::Var> frozen;
  struct Thaw {
    std::vector<nn::Var>& vs;
    ~Thaw() {
      for (nn::Var& v : vs) v->requires_grad = true;
    }
  } thaw{frozen};
  if (use_hidden) {
    to.carry_state(false);  // random windows, not lanes
    to.visit([&](const std::string&, nn::Var& v, nn::ParamKind k) {
      if (k == nn::ParamKind::buffer || !v->requires_grad) return;
      for (const ParamRef& p : ps)
        if (p.var == v) return;
      v->requires_grad = false;
      frozen.push_back(v);
    });
  }
  Rng rng(hid.seed);
  // weight / (n · the teacher's mean square) times the squared difference of the two bodies' outputs
  auto hidden_term = [&]() -> nn::Var {
    const int64_t B = hid.batch, T = hid.seq, N = int64_t(hid.tokens->size());
    Tensor ids = Tensor::empty({B * T}, DType::i32);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t at = int64_t(rng.uniform() * double(N - T));
      std::copy_n(hid.tokens->data() + at, T, ids.data<int32_t>() + b * T);
    }
    Tensor want;
    {
      ag::NoGrad ng;
      want = hid.teacher->hidden(ids, B, T)->value.to(to.dtype());
    }
    const double ms = ag::sum(ag::mul(ag::leaf(want), ag::leaf(want)))->value.item() / double(want.numel());
    const nn::Var d = ag::add(to.hidden(ids, B, T), ag::scale(ag::leaf(want), -1.0));
    return ag::scale(ag::sum(ag::mul(d, d)), hid.weight / (double(want.numel()) * std::max(ms, 1e-30)));
  };
  auto error = [&] {  // the table's difference from the target, on the tape
    emb->forward(one_id);
    return ag::add(emb->forward_output_weight(), ag::scale(neg_target, -1.0));
  };
  for (int64_t s = 0; s < steps; ++s) {
    nn::Var d = error();
    nn::Var sq = ag::mul(d, d);
    nn::Var loss = ag::scale(ag::sum(weight ? ag::mul(sq, weight) : sq), inv);
    double lh = 0;
    if (use_hidden) {
      const nn::Var h = hidden_term();
      lh = h->value.item();
      loss = ag::add(loss, h);
    }
    const double l = loss->value.item();
    if (!std::isfinite(l)) throw std::runtime_error("fit_embedding: the error became non-finite at step " + std::to_string(s + 1));
    ag::backward(loss);
    opt.step(lr);
    zero_grads(ps);
    if (log_every > 0 && ((s + 1) % log_every == 0 || s + 1 == steps))
      std::fprintf(stderr, "fit embedding: step %lld/%lld | %s %.6g%s\n", (long long)(s + 1), (long long)steps,
                   weight ? "weighted mse" : "mse", l - lh, use_hidden ? (" | hidden term " + std::to_string(lh)).c_str() : "");
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
