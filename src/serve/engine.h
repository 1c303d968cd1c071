// The serving engine: continuous batching over LanguageModel::infer_batch.
//
// One scheduler thread owns the model: the caller's (run(), what clm serve does: the thread that
// loaded and packed the model keeps its OpenMP team, and a second team in another thread would
// make both sleep and wake on every parallel region, 4x slower on 2 cores), or its own (start()). Requests wait in a bounded queue; each step it admits
// waiting requests into free slots (a slot = one InferState; a new prompt reuses the longest prefix
// the slot still caches), then runs ONE infer_batch over every active slot: the prompts of the
// newly admitted requests and one token for each request already decoding. Each slot samples
// from its own logits with its own sampler, reports the token (with log-probabilities when asked)
// to its request's callback and finishes on a stop token, a stop string, max_tokens or a full
// context; its slot takes the next waiting request at the following step.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/generate.h"
#include "tokenizers/tokenizer.h"

namespace clm::serve {

struct TopLogprob {
  int32_t id;
  double logprob;
};

// One token reported to a request: its text piece (held back while it might begin a stop string
// or an unfinished UTF-8 character, so `text` may be empty and a later event carries it),
// and, with logprobs, its log-probability under the model (raw logits, before temperature).
struct TokenEvent {
  int32_t id = -1;
  std::string piece;             // this token's own text (logprobs' token strings)
  std::string text;              // output text released by this token
  double logprob = 0;
  bool has_logprob = false;      // false for the first echoed prompt token
  std::vector<TopLogprob> top;   // the top_logprobs most likely ids at this position
  bool prompt = false;           // an echoed prompt token
};

struct Finish {
  std::string reason;  // "stop" | "length" | "error" | "cancelled"
  std::string error;   // with reason "error"
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

struct Request {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplerConfig sampling;
  std::vector<std::string> stop;   // stop strings (not included in the output)
  std::vector<int32_t> stop_ids;   // stop tokens (EOS, a chat template's end of turn)
  int top_logprobs = -1;           // -1: no log-probabilities; 0..20: the token's and this many alternatives
  bool echo = false;               // report the prompt's tokens first (with logprobs: scoring)
  // Called on the engine thread; return false to cancel (a client that went away).
  std::function<bool(const TokenEvent&)> on_token;
  std::function<void(const Finish&)> on_finish;
};

// How many bytes of generated `text` may be shown while generation goes on: all but a trailing
// unfinished UTF-8 character and a tail that may still grow into one of the `stop` strings. (The
// server's streams and the Python module's generate iterator release text through it.)
size_t releasable(const std::string& text, const std::vector<std::string>& stop);

struct EngineConfig {
  int64_t slots = 16;       // sequences decoded together
  int64_t ctx = 2048;       // positions per slot (prompt + completion)
  int64_t max_queue = 64;   // waiting requests beyond the slots; more are refused
  GenerateConfig gen;       // weights format, vocab_limit, KV policy
};

struct EngineStats {
  int64_t active = 0, queued = 0, served = 0, steps = 0, tokens = 0;
};

class Engine {
 public:
  Engine(LanguageModel& model, const Tokenizer& tok, EngineConfig cfg);
  ~Engine();
  void run();    // schedules on the calling thread until stop(); then cancels what is left
  void start();  // run() on a thread of its own
  // Queues a request. Returns "" or the reason it was refused (queue full, prompt too long, ...).
  std::string submit(std::shared_ptr<Request> r);
  void stop();  // from any thread: run() returns (every unfinished request "cancelled"); joins start()'s thread
  EngineStats stats() const;
  const EngineConfig& config() const { return cfg_; }
  int64_t vocab() const { return cfg_.gen.vocab_limit > 0 ? cfg_.gen.vocab_limit : model_.config().vocab_size; }

 private:
  struct Slot;
  void loop();
  void drain();
  void admit(Slot& s, std::shared_ptr<Request> r);
  bool emit(Slot& s, int32_t id, const float* logits, bool prompt_token, bool first);
  void finish(Slot& s, const std::string& reason, const std::string& error = "");
  std::string flush_text(Slot& s, bool all);

  LanguageModel& model_;
  const Tokenizer& tok_;
  EngineConfig cfg_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<std::shared_ptr<Request>> queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int64_t served_ = 0, steps_ = 0, tokens_ = 0;
  std::thread thread_;
};

}  // namespace clm::serve
