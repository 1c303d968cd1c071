#include "models/lm.h"

namespace clm {

size_t InferState::bytes() const {
  size_t n = 0;
  for (auto& l : layers) n += l->bytes();
  return n;
}

void InferState::reset() {
  for (auto& l : layers) l->reset();
  next_pos = 0;
}

bool InferState::truncate(int64_t n) {
  if (n < 0 || n > next_pos) throw std::out_of_range("truncate: " + std::to_string(n) + " outside 0.." + std::to_string(next_pos));
  for (auto& l : layers)
    if (!l->truncate(n)) {
      reset();
      return false;
    }
  next_pos = n;
  return true;
}

std::vector<std::pair<std::string, Tensor>> LanguageModel::named_weights() {
  std::vector<std::pair<std::string, Tensor>> w;
  visit([&](const std::string& n, nn::Var& v, nn::ParamKind) { w.push_back({n, v->value}); });
  return w;
}

int64_t LanguageModel::num_params() {
  int64_t n = 0;
  visit([&](const std::string&, nn::Var& p, nn::ParamKind k) {
    if (k != nn::ParamKind::buffer) n += p->value.numel();
  });
  return n;
}

void LanguageModel::pack(const std::string& format, const std::function<void(nn::Linear&)>& after_each) {
  if (!format.empty()) kernels::FormatRegistry::get().at(format);  // unknown name: error before any work
  linears([&](const std::string&, nn::Linear& l) {
    l.pack(format);
    if (after_each) after_each(l);
  });
  packed_ = format;
}

size_t LanguageModel::packed_bytes() {
  size_t n = 0;
  linears([&](const std::string&, nn::Linear& l) { n += l.packed ? l.packed->bytes() : l.w->value.nbytes(); });
  return n;
}

std::unique_ptr<LanguageModel> make_model(const ModelConfig& cfg, uint64_t seed, DType dtype, bool init) {
  return ModelRegistry::get().create("arch", cfg.arch, cfg, nn::Init{Rng(seed), dtype, init});
}

}  // namespace clm
