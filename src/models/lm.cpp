#include "models/lm.h"

#include "util/memory.h"

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
    if (k != nn::ParamKind::buffer && p->value.defined()) n += p->value.numel();  // a quantized checkpoint's packed Linears: not here
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

// What the CUDA backend runs: a transformer built from slots that have GPU kernels. "" when it can.
std::string cuda_refusal(const ModelConfig& c, DType dt) {
  auto is = [](const std::string& v, std::initializer_list<const char*> ok) {
    for (const char* o : ok)
      if (v == o) return true;
    return false;
  };
  if (c.arch == "tslm" || c.arch == "lstm") {  // the recurrent scans (kernels/cuda/recurrent.cu)
    if (c.embedding != "standard") return "embedding '" + c.embedding + "'";
    if (dt != DType::f32) return std::string("dtype ") + dtype_name(dt);
    return "";
  }
  if (c.arch != "transformer") return "arch '" + c.arch + "'";
  if (c.attention != "causal") return "attention '" + c.attention + "'";
  if (!is(c.position, {"rope", "3d-rpe", "alibi", "learned", "none"})) return "position '" + c.position + "'";
  if (!is(c.mlp, {"swiglu", "gelu", "gelu_tanh", "geglu_tanh"})) return "mlp '" + c.mlp + "'";
  if (!is(c.norm, {"rmsnorm", "rmsnorm_1p", "layernorm"})) return "norm '" + c.norm + "'";
  if (c.embedding != "standard") return "embedding '" + c.embedding + "'";
  if (c.vision != "none") return "vision '" + c.vision + "'";
  if (c.hd() > 128) return "head dim " + std::to_string(c.hd()) + " (at most 128)";
  if (dt != DType::f32) return std::string("dtype ") + dtype_name(dt);
  return "";
}

void LanguageModel::to_device(Device d) {
  if (d == device_) return;
  if (d == Device::cuda) {
    gpu::require("--device cuda");
    if (const std::string why = cuda_refusal(config(), dtype()); !why.empty())
      throw std::invalid_argument("--device cuda: the CUDA backend has no kernels for " + why +
                                  " (it runs f32 transformers with softmax attention, every position encoding, swiglu/gelu/geglu, "
                                  "rmsnorm/layernorm, the standard embedding, and f32 TSLM / LSTM models); use --device cpu");
    if (!packed_.empty()) throw std::invalid_argument("--device cuda: packed weight formats run on the CPU only");
  }
  visit([&](const std::string&, nn::Var& v, nn::ParamKind) {
    v->value = v->value.to_device(d);
    if (v->grad.defined()) v->grad = v->grad.to_device(d);
  });
  device_ = d;
}

std::string describe_size(const ModelConfig& c) {
  return "vocab_size " + std::to_string(c.vocab_size) + ", d_model " + std::to_string(c.d_model) + ", n_layers " + std::to_string(c.n_layers) +
         ", d_ff " + std::to_string(c.d_ff) + ", n_heads " + std::to_string(c.n_heads) + ", head_dim " + std::to_string(c.hd());
}

std::unique_ptr<LanguageModel> make_model(const ModelConfig& cfg, uint64_t seed, DType dtype, bool init) {
  const std::string what = "a model of " + describe_size(cfg);
  check_memory(checked_mul({cfg.min_params(), int64_t(dtype_size(dtype))}), what);
  try {
    return ModelRegistry::get().create("arch", cfg.arch, cfg, nn::Init{Rng(seed), dtype, init});
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("out of memory building " + what);
  }
}

}  // namespace clm
