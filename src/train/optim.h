// AdamW (decoupled weight decay, PyTorch semantics), the warmup + cosine schedule and global-norm
// gradient clipping.
#pragma once
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

class AdamW {
 public:
  AdamW(std::vector<ParamRef> params, AdamWConfig cfg);
  // One update with learning rate lr from the accumulated .grad of every parameter.
  void step(double lr);
  int64_t steps() const { return t_; }
  // Moments as named tensors ("m.<param>", "v.<param>") for checkpoints.
  std::vector<std::pair<std::string, Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file);
  const std::vector<ParamRef>& params() const { return params_; }

 private:
  bool decays(const ParamRef& p) const;
  std::vector<ParamRef> params_;
  std::vector<Tensor> m_, v_;
  AdamWConfig cfg_;
  int64_t t_ = 0;
};

// Linear warmup over `warmup` steps to lr, then cosine decay to lr*min_ratio at `total` steps.
double lr_at(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio);

// Global L2 norm of all gradients (missing grads count as zero); scales them down to max_norm if
// max_norm > 0 and the norm exceeds it. Returns the norm before clipping.
double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);
void zero_grads(const std::vector<ParamRef>& params);

}  // namespace clm
