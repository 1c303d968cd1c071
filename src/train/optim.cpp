#include "train/optim.h"

#include <cmath>
#include <stdexcept>

#ifdef CLM_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace clm {

std::vector<ParamRef> collect_params(LanguageModel& m) {
  std::vector<ParamRef> ps;
  m.visit([&](const std::string& n, nn::Var& v, nn::ParamKind k) {
    if (k != nn::ParamKind::buffer) ps.push_back({n, v, k});
  });
  return ps;
}

AdamW::AdamW(std::vector<ParamRef> params, AdamWConfig cfg) : Optimizer(std::move(params)), cfg_(cfg) {
  for (auto& p : params_) {
    m_.push_back(Tensor::zeros(p.var->value.shape(), p.var->value.dtype(), p.var->value.device()));
    v_.push_back(Tensor::zeros(p.var->value.shape(), p.var->value.dtype(), p.var->value.device()));
  }
}

bool AdamW::decays(const ParamRef& p) const {
  switch (p.kind) {
    case nn::ParamKind::weight: return true;
    case nn::ParamKind::embedding: return cfg_.decay_embeddings;
    case nn::ParamKind::norm:
    case nn::ParamKind::bias: return cfg_.decay_norms_and_biases;
    case nn::ParamKind::buffer: return false;
  }
  return true;
}

void AdamW::step(double lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_)), bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (!p.var->grad.defined()) continue;
    const double wd = decays(p) ? cfg_.weight_decay : 0.0;
#ifdef CLM_CUDA
    if (p.var->value.is_cuda()) {
      cuda::adamw(p.var->value.data<float>(), p.var->grad.data<float>(), m_[i].data<float>(), v_[i].data<float>(),
                  p.var->value.numel(), float(cfg_.beta1), float(cfg_.beta2), float(lr / bc1), float(1.0 / std::sqrt(bc2)),
                  float(cfg_.eps), float(1.0 - lr * wd));
      continue;
    }
#endif
    ag::dispatch_float(p.var->value.dtype(), [&]<class T>() {
      T* w = p.var->value.data<T>();
      const T* g = p.var->grad.data<T>();
      T *m = m_[i].data<T>(), *v = v_[i].data<T>();
      const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), step_size = T(lr / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2)),
              eps = T(cfg_.eps), decay = T(1.0 - lr * wd);
      const int64_t n = p.var->value.numel();
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < n; ++j) {
        m[j] = b1 * m[j] + (T(1) - b1) * g[j];
        v[j] = b2 * v[j] + (T(1) - b2) * g[j] * g[j];
        w[j] = w[j] * decay - step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + eps);
      }
    });
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, Tensor>> s;
  for (size_t i = 0; i < params_.size(); ++i) {
    s.push_back({"m." + params_[i].name, m_[i]});
    s.push_back({"v." + params_[i].name, v_[i]});
  }
  return s;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file) {
  auto find = [&](const std::string& n) -> const Tensor& {
    for (auto& [k, t] : tensors)
      if (k == n) return t;
    throw std::runtime_error("'" + file + "': missing optimizer tensor '" + n + "'");
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto* dst : {&m_[i], &v_[i]}) {
      const Tensor& src = find((dst == &m_[i] ? "m." : "v.") + params_[i].name);
      if (src.shape() != dst->shape() || src.dtype() != dst->dtype())
        throw std::runtime_error("'" + file + "': optimizer tensor for '" + params_[i].name + "' has shape " +
                                 shape_str(src.shape()) + ", expected " + shape_str(dst->shape()));
      dst->copy_(src);
    }
  }
  t_ = steps;
}

void SGD::step(double lr) {
  ++t_;
  for (auto& p : params_) {
    if (!p.var->grad.defined()) continue;
    const int64_t n = p.var->value.numel();
#ifdef CLM_CUDA
    if (p.var->value.is_cuda()) {
      cuda::axpy(p.var->value.data<float>(), float(-lr), p.var->grad.data<float>(), n);
      continue;
    }
#endif
    ag::dispatch_float(p.var->value.dtype(), [&]<class T>() {
      T* w = p.var->value.data<T>();
      const T* g = p.var->grad.data<T>();
      const T a = T(lr);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t j = 0; j < n; ++j) w[j] -= a * g[j];
    });
  }
}

void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps, const std::string& file) {
  if (!tensors.empty())
    throw std::runtime_error("'" + file + "': holds " + std::to_string(tensors.size()) +
                             " optimizer tensors; SGD keeps none (a checkpoint of another optimizer?)");
  t_ = steps;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamRef> params, const AdamWConfig& adam) {
  if (name == "adamw") return std::make_unique<AdamW>(std::move(params), adam);
  if (name == "sgd") return std::make_unique<SGD>(std::move(params));
  throw std::invalid_argument("unknown optimizer '" + name + "' (known: adamw, sgd)");
}

double lr_step_at(int64_t step, int64_t warmup, double lr, double start, double every, double decay) {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  if (double(step) < start) return lr;
  return lr * std::pow(decay, 1.0 + std::floor((double(step) - start) / every));
}

double lr_at(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio) {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  if (total <= warmup) return lr;
  double progress = std::min(1.0, double(step - warmup) / double(total - warmup));
  return lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  double ss = 0;
#ifdef CLM_CUDA
  // Device gradients: one f64 sum per tensor into a device slot, one download for all.
  std::vector<const ParamRef*> dev;
  for (auto& p : params)
    if (p.var->grad.defined() && p.var->grad.is_cuda()) dev.push_back(&p);
  if (!dev.empty()) {
    Tensor sums = Tensor::empty({int64_t(dev.size())}, DType::f64, Device::cuda);
    for (size_t i = 0; i < dev.size(); ++i)
      cuda::sum_squares(sums.data<double>() + i, dev[i]->var->grad.data<float>(), dev[i]->var->grad.numel());
    Tensor h = sums.cpu();
    for (size_t i = 0; i < dev.size(); ++i) ss += h.data<double>()[i];
  }
#endif
  for (auto& p : params) {
    if (!p.var->grad.defined() || p.var->grad.is_cuda()) continue;
    ag::dispatch_float(p.var->grad.dtype(), [&]<class T>() {
      const T* g = p.var->grad.data<T>();
      double s = 0;
      for (int64_t j = 0, n = p.var->grad.numel(); j < n; ++j) s += double(g[j]) * double(g[j]);
      ss += s;
    });
  }
  double norm = std::sqrt(ss);
  const double c = max_norm / (norm + 1e-6);  // PyTorch's clip_grad_norm_ rule
  if (max_norm > 0 && c < 1.0 && std::isfinite(norm)) {
    for (auto& p : params) {
      if (!p.var->grad.defined()) continue;
#ifdef CLM_CUDA
      if (p.var->grad.is_cuda()) {
        float* g = p.var->grad.data<float>();
        cuda::scale(g, float(c), g, p.var->grad.numel());
        continue;
      }
#endif
      ag::dispatch_float(p.var->grad.dtype(), [&]<class T>() {
        T* g = p.var->grad.data<T>();
        for (int64_t j = 0, n = p.var->grad.numel(); j < n; ++j) g[j] *= T(c);
      });
    }
  }
  return norm;
}

void zero_grads(const std::vector<ParamRef>& params) {
  for (auto& p : params)
    if (p.var->grad.defined()) p.var->grad.zero_();
}

}  // namespace clm
