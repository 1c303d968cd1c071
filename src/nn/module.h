// Modules, parameters and the slot registry.
// Every module lists its parameters through visit(): serialisation, zeroing gradients and optimizer
// updates all go through it, so adding a parameter is one line in one module.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "autograd/autograd.h"
#include "nn/config.h"
#include "util/rng.h"

namespace clm::nn {

using ag::Var;

enum class ParamKind { weight, embedding, norm, bias };  // decides weight decay
using ParamVisitor = std::function<void(const std::string& name, Var& param, ParamKind kind)>;

class Module {
 public:
  virtual ~Module() = default;
  virtual void visit(const std::string& prefix, const ParamVisitor& f) = 0;
};

// Creates parameters (initialised from one seeded stream, in construction order).
struct Init {
  Rng rng;
  DType dtype = DType::f32;
  Var normal(const Shape& s, double stddev);
  Var constant(const Shape& s, double v);
};

// Per-call context of a forward pass.
struct Ctx {
  int64_t B = 1, T = 1;
  int64_t pos0 = 0;  // absolute position of the first token (> 0 when decoding with a KV cache)
};

// Keys and values of one layer for incremental decoding: [B, capacity, Hkv*hd], `len` filled.
struct LayerKV {
  Tensor k, v;
  int64_t len = 0;
};

// ---- slots ----
class PositionEncoding : public Module {
 public:
  // Applied to the token embeddings (learned absolute positions add here).
  virtual Var embed(const Var& x, const Ctx&) { return x; }
  // Applied to queries and keys [B*T, H*hd] (rotary variants act here).
  virtual Var rotate(const Var& x, int64_t /*n_heads*/, const Ctx&) { return x; }
  void visit(const std::string&, const ParamVisitor&) override {}
};

// RoPE's cos/sin tables [T, hd/2] for positions pos0..pos0+T-1, angle p * theta^(-2i/hd), computed
// in f64 and stored in `dt`. Shared by the rope variant and the decode session.
void rope_table(int64_t pos0, int64_t T, int64_t hd, double theta, DType dt, Tensor& cos, Tensor& sin);

class Attention : public Module {
 public:
  // x [B*T, d_model] -> [B*T, d_model]. With kv != null, appends this call's keys/values to the cache
  // and attends over everything cached (inference only).
  virtual Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx, LayerKV* kv) = 0;
  // Bytes of KV state per token (for memory reports and cache allocation).
  virtual int64_t kv_width() const = 0;  // elements per token in each of k and v
};

class Mlp : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
};

class Norm : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
};

class TokenEmbedding : public Module {
 public:
  virtual Var forward(const Tensor& ids) = 0;  // ids i32 [N] -> [N, d_model]
  virtual Var output_weight() = 0;             // [vocab, d_model], for tied output projections
};

// Name -> factory for one slot. Registration is one line in the variant's own file.
template <class Base, class... Args> class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Base>(Args...)>;
  static Registry& get() {
    static Registry r;
    return r;
  }
  bool add(const std::string& name, Factory f) {
    factories_[name] = std::move(f);
    return true;
  }
  std::unique_ptr<Base> create(const std::string& slot, const std::string& name, Args... args) const {
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::string known;
      for (auto& [k, _] : factories_) known += (known.empty() ? "" : ", ") + k;
      throw std::invalid_argument("unknown " + slot + " '" + name + "' (known: " + known + ")");
    }
    return it->second(args...);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (auto& [k, _] : factories_) v.push_back(k);
    return v;
  }

 private:
  std::map<std::string, Factory> factories_;
};

using PositionRegistry = Registry<PositionEncoding, const ModelConfig&, Init&>;
using AttentionRegistry = Registry<Attention, const ModelConfig&, Init&>;
using MlpRegistry = Registry<Mlp, const ModelConfig&, Init&>;
using NormRegistry = Registry<Norm, int64_t /*dim*/, const ModelConfig&, Init&>;
using EmbeddingRegistry = Registry<TokenEmbedding, const ModelConfig&, Init&>;

// ---- basic layers shared by variants ----
struct Linear : Module {
  Var w, b;  // w [out, in], b [out] or null
  Linear() = default;
  Linear(int64_t in, int64_t out, bool bias, Init& init, double stddev);
  Var operator()(const Var& x) const;
  void visit(const std::string& prefix, const ParamVisitor& f) override;
};

}  // namespace clm::nn
