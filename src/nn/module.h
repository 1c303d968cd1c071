// Modules, parameters and the slot registry.
// Every module lists its parameters through visit(): serialisation, zeroing gradients and optimizer
// updates all go through it, so adding a parameter is one line in one module.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "kernels/format.h"
#include "nn/config.h"
#include "nn/options.h"
#include "util/rng.h"

namespace clm::nn {

using ag::Var;

enum class ParamKind { weight, embedding, norm, bias, buffer };  // decides weight decay; buffer: saved, never trained
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
  bool random = true;  // false: allocate only (the weights are about to be loaded)
  Var normal(const Shape& s, double stddev);
  Var constant(const Shape& s, double v);
};

// Per-call context of a training / evaluation forward pass (whole sequences, positions 0..T-1).
struct Ctx {
  int64_t B = 1, T = 1;
  int64_t pos0 = 0;
};

// ---- inference (no tape): one code path for batched prefill (T > 1) and decoding (T = 1) ----

// Scratch memory reused across inference calls, handed out as a stack: take() returns a buffer
// that stays valid until the stack is released below it (release(mark) or reset()). Chunks are
// kept between calls, so steady decoding allocates nothing.
class Workspace {
 public:
  struct Mark {
    size_t chunk = 0, used = 0;
  };
  float* take(size_t n);
  Mark mark() const { return {cur_, chunks_.empty() ? 0 : chunks_[cur_].used}; }
  void release(Mark m);
  void reset() { release({}); }

 private:
  struct Chunk {
    std::unique_ptr<float[]> p;
    size_t size = 0, used = 0;
  };
  std::vector<Chunk> chunks_;
  size_t cur_ = 0;
};

// What an attention layer hands to an observer for each query (KV policies, analysis): the
// probabilities over the cells of one KV head's cache, in cell order, and the query itself (a
// policy may score cells attention did not see: hidden ones). Observers are called concurrently
// for different KV heads of a layer, serially (query heads in order, then queries) within one.
struct AttnEvent {
  int64_t layer, head, kv_head;
  int32_t query_pos;
  const float* probs;     // [n]
  const int32_t* cell_pos;  // [n] the cells' positions as attention saw them (KVCells::kHidden: hidden)
  int64_t n;
  const float* q = nullptr;  // [head_dim] the rotated query
  float scale = 1;           // scores are scale * q.k (before any position bias)
};
using AttnObserver = std::function<void(const AttnEvent&)>;

struct InferCtx {
  int64_t T = 1;               // tokens in this call (one sequence)
  const int32_t* pos = nullptr;  // [T] absolute position of each token
  uint8_t tag = 0;             // tag stored with this call's cache cells (0 text; e.g. 1 image)
  const uint8_t* tags = nullptr;  // [T] a tag per token instead (a prompt mixing image and text)
  int64_t layer = 0;
  Workspace* ws = nullptr;
  const AttnObserver* on_attention = nullptr;
};

// A layer's inference state for one sequence: a KV cache, a d x d running state, a recurrent
// hidden vector. The model keeps one per layer (models/lm.h InferState).
class LayerState {
 public:
  virtual ~LayerState() = default;
  virtual size_t bytes() const = 0;  // memory held
  virtual void reset() = 0;
  // Forget every position >= pos (reusing a shared prompt prefix). False when the state cannot
  // (a recurrent state): the caller then resets and feeds the prefix again.
  virtual bool truncate(int64_t pos) = 0;
};

// ---- slots ----
class PositionEncoding : public Module {
 public:
  // Applied to the token embeddings (learned absolute positions add here).
  virtual Var embed(const Var& x, const Ctx&) { return x; }
  // Applied to queries and keys [B*T, H*hd] (rotary variants act here).
  virtual Var rotate(const Var& x, int64_t /*n_heads*/, const Ctx&) { return x; }
  // Inference: x [T, D] in place; q/k [T, heads*hd] in place, at positions ctx.pos.
  virtual void infer_embed(float* /*x*/, const InferCtx&) {}
  virtual void infer_rotate(float* /*x*/, int64_t /*n_heads*/, const InferCtx&) {}
  virtual void reserve(int64_t /*positions*/) {}  // prepare tables for positions 0..n-1 (no allocation later)
  // A linear bias on attention scores: head h of n adds -slope * (query pos - key pos) (ALiBi); 0: none.
  virtual double alibi_slope(int64_t /*head*/, int64_t /*n_heads*/) const { return 0.0; }
  void visit(const std::string&, const ParamVisitor&) override {}
};

struct Linear;
using LinearVisitor = std::function<void(const std::string& name, Linear& l)>;

class Attention : public Module {
 public:
  // x [B*T, d_model] -> [B*T, d_model], causal over each sequence (training, evaluation).
  virtual Var forward(const Var& x, PositionEncoding& pe, const Ctx& ctx) = 0;
  // Inference: appends this call's T tokens to `state` and writes y [T, d_model].
  virtual void infer(const float* x, float* y, PositionEncoding& pe, LayerState& state, const InferCtx& ctx) = 0;
  // Several sequences in one call (continuous batching, batched scoring): x and y hold their rows
  // of width D one sequence after another, ctx[i].T rows for states[i]. By default each sequence's rows go
  // through infer; softmax attention shares its projections' GEMMs across the sequences.
  virtual void infer_batch(const float* x, float* y, int64_t D, PositionEncoding& pe, std::span<LayerState* const> states,
                           std::span<const InferCtx> ctx);
  virtual std::unique_ptr<LayerState> make_state(int64_t capacity) const = 0;
  virtual size_t state_bytes_per_token() const = 0;  // 0 for constant-size states
  virtual void linears(const std::string& prefix, const LinearVisitor& f) = 0;
};

class Mlp : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
  virtual void infer(const float* x, float* y, const InferCtx& ctx) = 0;  // [T, D] -> [T, D]
  virtual void linears(const std::string& prefix, const LinearVisitor& f) = 0;
};

class Norm : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
  virtual void infer(const float* x, float* y, int64_t T) const = 0;  // [T, dim]
  // Rescales the weights (and bias) so that the output comes out divided by div[j] per channel
  // (each div > 0); false, changing nothing, for a norm that cannot.
  virtual bool divide_output(const std::vector<float>& /*div*/) { return false; }
};

class TokenEmbedding : public Module {
 public:
  virtual Var forward(const Tensor& ids) = 0;  // ids i32 [N] -> [N, d_model]
  virtual void infer(const int32_t* ids, int64_t T, float* out) const = 0;
  virtual Var output_weight() = 0;             // [vocab, d_model], for tied output projections (inference)
  // The table on the tape of the last forward (a variant that builds its table from smaller
  // parameters returns that build, so a tied head trains the same parameters).
  virtual Var forward_output_weight() { return output_weight(); }
  // Rebuilds the inference table (output_weight) when the parameters changed since the last
  // refresh; true when it did. Variants that store their table as a parameter have nothing to do.
  virtual bool refresh() { return false; }
  // The vocabulary's words in id order, given before training from scratch (SEE maps each word to
  // its semantic units, hash embeddings hash the word).
  virtual void bind_vocabulary(const std::vector<std::string>& /*words*/) {}
};

// Images in front of the decoder (a vision-language model): each image becomes `tokens()` vectors
// of d_model that replace the rows of the sequence's image placeholder tokens (`token_id()`), in
// order, as LLaVA and Fuyu splice them. Images are f32 [N, height, width, channels] in [0, 1].
class VisionEncoder : public Module {
 public:
  virtual int64_t tokens() const = 0;        // vectors per image
  virtual int32_t token_id() const = 0;      // the placeholder id in the vocabulary
  virtual std::vector<int64_t> image_shape() const = 0;  // {height, width, channels}
  virtual Var forward(const Tensor& images) = 0;          // -> [N * tokens, d_model]
  virtual void infer(const float* images, int64_t N, float* out, Workspace& ws) const = 0;
  virtual void linears(const std::string& prefix, const LinearVisitor& f) = 0;
};

// Name -> factory for one slot. Registration is one line in the variant's own file; a variant with
// options declares them there and receives them resolved (nn/options.h).
template <class Base, class... Args> class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Base>(Args...)>;
  using OptFactory = std::function<std::unique_ptr<Base>(const Options&, Args...)>;
  struct Entry {
    std::vector<OptionSpec> specs;
    OptFactory make;
  };
  static Registry& get() {
    static Registry r;
    return r;
  }
  bool add(const std::string& name, Factory f) {
    return add(name, {}, [f](const Options&, Args... a) { return f(a...); });
  }
  bool add(const std::string& name, std::vector<OptionSpec> specs, OptFactory f) {
    entries_[name] = {std::move(specs), std::move(f)};
    return true;
  }
  const Entry& entry(const std::string& slot, const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (auto& [k, _] : entries_) known += (known.empty() ? "" : ", ") + k;
      throw std::invalid_argument("unknown " + slot + " '" + name + "' (known: " + known + ")");
    }
    return it->second;
  }
  // opts: the variant's options as given (a JSON object or null), checked against its specs.
  std::unique_ptr<Base> create(const std::string& slot, const std::string& name, const nlohmann::json& opts,
                               Args... args) const {
    const Entry& e = entry(slot, name);
    return e.make(Options(opts, e.specs, slot + " '" + name + "'"), args...);
  }
  std::unique_ptr<Base> create(const std::string& slot, const std::string& name, Args... args) const {
    return create(slot, name, nlohmann::json(), args...);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (auto& [k, _] : entries_) v.push_back(k);
    return v;
  }
  // "name (opt=default, ...) | name | ..." for --help
  std::string describe() const {
    std::string s;
    for (auto& [k, e] : entries_)
      s += (s.empty() ? "" : " | ") + k + (e.specs.empty() ? "" : " (" + describe_options(e.specs) + ")");
    return s;
  }

 private:
  std::map<std::string, Entry> entries_;
};

using PositionRegistry = Registry<PositionEncoding, const ModelConfig&, Init&>;
using AttentionRegistry = Registry<Attention, const ModelConfig&, Init&>;
using MlpRegistry = Registry<Mlp, const ModelConfig&, Init&>;
using NormRegistry = Registry<Norm, int64_t /*dim*/, const ModelConfig&, Init&>;
using EmbeddingRegistry = Registry<TokenEmbedding, const ModelConfig&, Init&>;
using VisionRegistry = Registry<VisionEncoder, const ModelConfig&, Init&>;

// ---- basic layers shared by variants ----
// y = x Wᵀ + b. Training uses the dense master weight w; inference uses the packed copy when one
// was made (pack), in any registered weight format, else w itself.
struct Linear : Module {
  Var w, b;  // w [out, in], b [out] or null
  std::shared_ptr<const kernels::WeightFormat> packed;
  // packed holds a quantized checkpoint's weights and w is empty: inference only, and pack() keeps it
  bool quantized = false;
  // Called with every inference input x [n, in] before the product (calibration statistics).
  std::function<void(const float* x, int64_t n, int64_t in)> observer;

  Linear() = default;
  Linear(int64_t in, int64_t out, bool bias, Init& init, double stddev);
  static Linear wrap(const Var& w);  // around an existing weight (a tied output projection)
  Var operator()(const Var& x) const;
  void infer(const float* x, int64_t n, float* y) const;  // y [n, out]
  void pack(const std::string& format);                   // "" drops the packed copy
  int64_t in() const { return packed ? packed->cols() : w->value.dim(1); }
  int64_t out() const { return packed ? packed->rows() : w->value.dim(0); }
  void visit(const std::string& prefix, const ParamVisitor& f) override;
};

}  // namespace clm::nn
