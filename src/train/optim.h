// The optimizers (AdamW with decoupled weight decay, PyTorch semantics; plain SGD), the learning-rate
// schedules (warmup + cosine; warmup + step decay) and global-norm gradient clipping.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/lm.h"

namespace clm {

struct ParamRef {
  std::string name;
  nn::Var var;
  nn::ParamKind kind;
};
std::vector<ParamRef> collect_params(LanguageModel& m);

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  bool decay_norms_and_biases = false;  // PyTorch-style param groups: off by default
  bool decay_embeddings = true;
};

// What the trainer and the checkpoints need of an optimizer.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr from the accumulated .grad of every parameter.
  virtual void step(double lr) = 0;
  int64_t steps() const { return t_; }
  // Its state as named tensors, for checkpoints (none for SGD).
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file) = 0;
  const std::vector<ParamRef>& params() const { return params_; }

 protected:
  explicit Optimizer(std::vector<ParamRef> params) : params_(std::move(params)) {}
  std::vector<ParamRef> params_;
  int64_t t_ = 0;
};

class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamRef> params, AdamWConfig cfg);
  void step(double lr) override;
  // Moments as named tensors ("m.<param>", "v.<param>").
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file) override;

 private:
  bool decays(const ParamRef& p) const;
  std::vector<Tensor> m_, v_;
  AdamWConfig cfg_;
};

// Plain stochastic gradient descent, w -= lr · g: no momentum, no weight decay (the recurrent LM
// papers' optimizer: Zaremba et al.'s LSTMs, TSLM).
class SGD final : public Optimizer {
 public:
  explicit SGD(std::vector<ParamRef> params) : Optimizer(std::move(params)) {}
  void step(double lr) override;
  std::vector<std::pair<std::string, Tensor>> state() const override { return {}; }
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file) override;
};

// "adamw" or "sgd" (std::invalid_argument otherwise).
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamRef> params, const AdamWConfig& adam);

// Linear warmup over `warmup` steps to lr, then cosine decay to lr*min_ratio at `total` steps.
double lr_at(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio);
// Linear warmup, then lr · decay^k: k = 0 before step `start`, 1 + floor((step - start) / every)
// from it (start and every in steps, fractions allowed): Zaremba et al.'s schedule, the rate halved
// every epoch after the fourth, is start = 4 epochs, every = 1 epoch, decay = 0.5.
double lr_step_at(int64_t step, int64_t warmup, double lr, double start, double every, double decay);

// Global L2 norm of all gradients (missing grads count as zero); scales them down to max_norm if
// max_norm > 0 and the norm exceeds it. Returns the norm before clipping.
double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);
void zero_grads(const std::vector<ParamRef>& params);

}  // namespace clm
