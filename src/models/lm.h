// LanguageModel: what every consumer (trainer, optimizer, checkpoints, perplexity, generation,
// importers and exporters) sees of a model. Implementations are registered by `arch`
// (config.json): TransformerLM is "transformer"; a recurrent model is another entry.
//
// Two entry points, one per regime:
//   forward  whole sequences on the tape (training) or not (evaluation), batched;
//   infer    one sequence's tokens appended to an InferState, no tape, f32: batched prefill
//            (many tokens) and decoding (one token) run the same code, each Linear through its
//            packed weight format when one was made (pack).
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace clm {

// One sequence's inference state: a LayerState per layer (KV cells, running state, ...), the
// position of the next token (the true length of the sequence, whatever a cache has evicted),
// and reusable scratch memory.
struct InferState {
  std::vector<std::unique_ptr<nn::LayerState>> layers;
  int64_t next_pos = 0;
  uint8_t tag = 0;                 // tag given to the cells the next call appends (0 text, 1 image)
  std::vector<uint8_t> tags;       // or a tag per token of the next call (consumed by it)
  // Optional, between layers: after layer `layer` ran over the call's T tokens (positions pos),
  // set keep[t] = 0 for tokens that leave the hidden states, so later layers never see them
  // (FastV-style pruning); return false to keep all. The last token always stays. Not with all_logits.
  std::function<bool(int64_t layer, int64_t T, const int32_t* pos, uint8_t* keep)> token_filter;
  // Optional, around each call: at its start (positions and tags known) and at its end (next_pos
  // advanced). A KV policy installs both (infer/kv_policy.h).
  std::function<void(InferState&, int64_t T)> on_call_start;
  std::function<void(InferState&)> on_call_end;
  nn::AttnObserver on_attention;   // optional: every attention row computed during infer
  nn::Workspace ws;
  std::vector<float> logits;       // [vocab], or [tokens of the call, vocab] with all_logits
  bool all_logits = false;         // infer computes the logits of every token (scoring), not only the last
  std::vector<int32_t> pos;  // positions of the current call

  size_t bytes() const;  // memory held by the layer states
  void reset();
  // Forget positions >= n. False (and the state reset) when a layer cannot: feed the prefix again.
  bool truncate(int64_t n);
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual DType dtype() const = 0;  // of the parameters: f32 (training, inference) or f64 (checks)
  virtual void visit(const nn::ParamVisitor& f) = 0;      // every parameter, by Hugging Face name
  virtual void linears(const nn::LinearVisitor& f) = 0;   // every Linear (packing, observers)

  // ids i32 [B*T] (row-major [B, T]) -> logits [B*T, vocab], positions 0..T-1 in each row.
  virtual nn::Var forward(const Tensor& ids, int64_t B, int64_t T) = 0;
  // The final hidden states [B*T, d_model] that forward's output head reads (after the final norm);
  // SEE's stage 1 fits a new embedding to them (train/distill.h).
  virtual nn::Var hidden(const Tensor& /*ids*/, int64_t /*B*/, int64_t /*T*/) {
    throw std::invalid_argument("this model does not expose its hidden states");
  }

  // A fresh state for up to `capacity` positions.
  virtual InferState make_state(int64_t capacity) = 0;
  // Appends ids at positions next_pos.. and returns the logits [vocab] after the last one (valid
  // until the next call; with state.all_logits, state.logits holds every token's). Throws std::length_error when the state is full, std::out_of_range for
  // an id outside the vocabulary (the state is then unusable: reset it).
  virtual const float* infer(InferState& state, std::span<const int32_t> ids) = 0;
  // Several sequences at once: appends ids[i] to *states[i] exactly as infer would, leaving each
  // state's logits in its `logits`. By default one infer per sequence; TransformerLM runs every
  // Linear, norm and MLP once over all the sequences' rows (continuous batching in the server,
  // batched task scoring). On an error the states of this call are unusable: reset them.
  virtual void infer_batch(std::span<InferState* const> states, std::span<const std::span<const int32_t>> ids) {
    if (states.size() != ids.size()) throw std::invalid_argument("infer_batch: one id list per state");
    for (size_t i = 0; i < states.size(); ++i) infer(*states[i], ids[i]);
  }
  virtual size_t state_bytes_per_token() const = 0;  // 0 for a constant-size state
  // The vocabulary's words (id order), given once before training from scratch: variants that
  // derive structure from words (SEE's semantic units, hash embeddings) take it here.
  virtual void bind_vocabulary(const std::vector<std::string>& /*words*/) {}
  // Training batches whose rows continue the previous batch's rows (the trainer's lanes): a
  // recurrent model then starts each row from the state the last one ended in (truncated BPTT).
  virtual void carry_state(bool /*on*/) {}
  // Images for the next forward / infer (a vision-language model): f32 [N, height, width,
  // channels]; the call's image placeholder tokens take their vectors in order. Models without a
  // vision slot refuse.
  virtual void set_images(const Tensor& /*images*/) {
    throw std::invalid_argument("this model takes no images (its config has no vision slot)");
  }
  virtual int64_t image_tokens() const { return 0; }  // placeholder tokens per image (0: no vision slot)
  // The token-embedding slot (compressing an embedding, fitting it to another model's), if any.
  virtual nn::TokenEmbedding* embedding() { return nullptr; }
  // Whether the Linears `group` (by name) read a norm's output that nothing else reads, and dividing
  // that output per channel by `div` (by rescaling the norm's weights; SmoothQuant's fold). The
  // division returns false, changing nothing, where input_is_norm_output is false.
  virtual bool input_is_norm_output(const std::vector<std::string>& /*group*/) const { return false; }
  virtual bool divide_norm_output(const std::vector<std::string>& /*group*/, const std::vector<float>& /*div*/) { return false; }

  // Moves every parameter to `d` (training and evaluation on a GPU: models/lm.cpp lists the slot
  // variants the CUDA backend runs; any other refuses with a one-line error before anything moves).
  void to_device(Device d);
  Device device() const { return device_; }

  // Through visit / linears:
  std::vector<std::pair<std::string, Tensor>> named_weights();  // values share storage
  int64_t num_params();
  // Packs every Linear's weight into a registered format for inference ("" drops the copies).
  // after_each (optional) runs once per Linear right after it is packed.
  void pack(const std::string& format, const std::function<void(nn::Linear&)>& after_each = nullptr);
  const std::string& packed_format() const { return packed_; }
  size_t packed_bytes();  // weight bytes one decoded token reads through the Linears

 protected:
  void set_device(Device d) { device_ = d; }  // a model that runs elsewhere by construction (the GPU decoder)

 private:
  std::string packed_;
  Device device_ = Device::cpu;
};

using ModelRegistry = nn::Registry<LanguageModel, const ModelConfig&, const nn::Init&>;
// Builds the model registered under cfg.arch, initialised from `seed` (init = false: weights
// allocated, not initialised, for a loader that fills them).
// The memory the parameters need at least (ModelConfig::min_params) is checked first: a model that
// cannot fit is refused in one line naming its sizes, as is a std::bad_alloc while building it.
std::unique_ptr<LanguageModel> make_model(const ModelConfig& cfg, uint64_t seed = 0, DType dtype = DType::f32, bool init = true);
// What the CUDA backend cannot run in this model ("attention 'tensorcoder'", ...), "" when it can.
std::string cuda_refusal(const ModelConfig& c, DType dt);
// "vocab_size V, d_model D, n_layers L, d_ff F": the sizes a message about memory names.
std::string describe_size(const ModelConfig& c);

}  // namespace clm
