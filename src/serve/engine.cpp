// The serving engine's scheduler (engine.h).
#include "serve/engine.h"

#include <algorithm>
#include <cmath>

namespace clm::serve {

struct Engine::Slot {
  InferState state;
  std::unique_ptr<KVPolicy> policy;
  std::vector<int32_t> cached;  // the tokens whose keys and values the state holds
  std::shared_ptr<Request> req;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> feed;    // ids of the next step
  int64_t from = 0;             // prompt tokens reused from the cache
  bool prefill = false;
  int32_t prev = -1;
  std::string text;             // generated text
  size_t sent = 0;              // bytes of text already reported
  int64_t generated = 0;
};

Engine::Engine(LanguageModel& model, const Tokenizer& tok, EngineConfig cfg) : model_(model), tok_(tok), cfg_(std::move(cfg)) {
  if (cfg_.slots <= 0 || cfg_.ctx <= 1 || cfg_.max_queue < 0) throw std::invalid_argument("serve: slots > 0, ctx > 1, queue >= 0");
  if (model.dtype() != DType::f32) throw std::invalid_argument("serve: the model must be f32");
  if (model.packed_format() != cfg_.gen.weights) model.pack(cfg_.gen.weights);
  for (int64_t i = 0; i < cfg_.slots; ++i) {
    auto s = std::make_unique<Slot>();
    s->state = model.make_state(cfg_.ctx);
    if (!cfg_.gen.kv_policy.empty()) {
      s->policy = make_kv_policy(cfg_.gen.kv_policy, cfg_.gen.kv_opt, cfg_.gen.kv_budget);
      s->policy->attach(s->state);
    }
    slots_.push_back(std::move(s));
  }
}

void Engine::start() { thread_ = std::thread([this] { run(); }); }

void Engine::run() {
  loop();
  drain();
}

Engine::~Engine() { stop(); }

std::string Engine::submit(std::shared_ptr<Request> r) {
  const int64_t V = model_.config().vocab_size, n = int64_t(r->prompt.size());
  if (n == 0) return "the prompt is empty";
  if (r->max_tokens < 0) return "max_tokens must be >= 0";
  if (r->max_tokens == 0 && !r->echo) return "max_tokens 0 needs echo (scoring the prompt)";
  if (n + (r->max_tokens > 0) > cfg_.ctx)
    return "the prompt has " + std::to_string(n) + " tokens; the context holds " + std::to_string(cfg_.ctx) + " (prompt and completion)";
  for (int32_t id : r->prompt)
    if (id < 0 || id >= V) return "token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(V);
  if (r->top_logprobs > 20) return "top_logprobs must be at most 20";
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_) return "the server is shutting down";
  int64_t active = 0;
  for (auto& s : slots_) active += s->req != nullptr;
  if (int64_t(queue_.size()) + active >= cfg_.max_queue + cfg_.slots)
    return "server busy: " + std::to_string(queue_.size()) + " requests waiting";
  queue_.push_back(std::move(r));
  cv_.notify_one();
  return "";
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::drain() {
  for (auto& s : slots_)
    if (s->req) finish(*s, "cancelled");
  std::deque<std::shared_ptr<Request>> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    left.swap(queue_);
  }
  for (auto& r : left)
    if (r->on_finish) r->on_finish({"cancelled", "", int64_t(r->prompt.size()), 0});
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  EngineStats st{0, int64_t(queue_.size()), served_, steps_, tokens_};
  for (auto& s : slots_) st.active += s->req != nullptr;
  return st;
}

void Engine::admit(Slot& s, std::shared_ptr<Request> r) {
  const auto& p = r->prompt;
  size_t reuse = 0;
  if (!s.policy && !(r->echo && r->top_logprobs >= 0)) {  // scoring the prompt needs every row's logits
    while (reuse < s.cached.size() && reuse + 1 < p.size() && s.cached[reuse] == p[reuse]) ++reuse;
  }
  if (!s.state.truncate(int64_t(reuse))) reuse = 0;
  if (s.policy) {
    s.state.reset();
    s.policy->attach(s.state);
  }
  s.cached.assign(p.begin(), p.begin() + ptrdiff_t(reuse));
  s.feed.assign(p.begin() + ptrdiff_t(reuse), p.end());
  s.from = int64_t(reuse);
  s.prefill = true;
  s.prev = p.back();
  s.text.clear();
  s.sent = 0;
  s.generated = 0;
  s.sampler = std::make_unique<Sampler>(r->sampling);
  s.req = std::move(r);
}

// The output that can be released: not a trailing unfinished UTF-8 character, not a tail that
// may still become a stop string (all = true at the end).
size_t releasable(const std::string& text, const std::vector<std::string>& stop) {
  size_t end = text.size(), k = 0;  // k: continuation bytes of a trailing UTF-8 sequence
  while (k < 4 && k < end && (uint8_t(text[end - 1 - k]) & 0xC0) == 0x80) ++k;
  if (k < end) {
    const uint8_t lead = uint8_t(text[end - 1 - k]);
    const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > k + 1) end -= k + 1;
  }
  for (const auto& st : stop)  // the longest tail of text that begins a stop string
    for (size_t n = std::min(st.size() - 1, text.size()); n > 0; --n)
      if (text.compare(text.size() - n, n, st, 0, n) == 0) {
        end = std::min(end, text.size() - n);
        break;
      }
  return end;
}

std::string Engine::flush_text(Slot& s, bool all) {
  const size_t end = all ? s.text.size() : releasable(s.text, s.req->stop);
  if (end <= s.sent) return "";
  std::string out = s.text.substr(s.sent, end - s.sent);
  s.sent = end;
  return out;
}

static void fill_logprobs(const float* lg, int64_t V, int32_t id, int top, TokenEvent& e) {
  float mx = *std::max_element(lg, lg + V);
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(double(lg[v]) - mx);
  const double lz = double(mx) + std::log(z);
  e.has_logprob = true;
  e.logprob = double(lg[id]) - lz;
  if (top <= 0) return;
  std::vector<int32_t> idx(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) idx[size_t(v)] = int32_t(v);
  const int64_t k = std::min<int64_t>(top, V);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return lg[a] != lg[b] ? lg[a] > lg[b] : a < b; });
  for (int64_t i = 0; i < k; ++i) e.top.push_back({idx[size_t(i)], double(lg[idx[size_t(i)]]) - lz});
}

// Reports one token; false when the request ended (cancelled by its client or a stop string).
bool Engine::emit(Slot& s, int32_t id, const float* logits, bool prompt_token, bool first) {
  Request& r = *s.req;
  const int64_t V = cfg_.gen.vocab_limit > 0 ? cfg_.gen.vocab_limit : model_.config().vocab_size;
  TokenEvent e;
  e.id = id;
  e.prompt = prompt_token;
  e.piece = first ? tok_.decode({id}) : tok_.decode_next(s.prev, id);
  if (r.top_logprobs >= 0 && logits) fill_logprobs(logits, V, id, r.top_logprobs, e);
  s.prev = id;
  bool stopped = false;
  if (prompt_token) {
    e.text = e.piece;
  } else {
    s.text += e.piece;
    for (const auto& st : r.stop) {
      const size_t at = s.text.find(st, s.sent > st.size() ? s.sent - st.size() : 0);
      if (!st.empty() && at != std::string::npos) {
        s.text.resize(at);
        stopped = true;
      }
    }
    e.text = flush_text(s, stopped);
  }
  if (r.on_token && !r.on_token(e)) {
    finish(s, "cancelled");
    return false;
  }
  if (stopped) finish(s, "stop");
  return !stopped;
}

void Engine::finish(Slot& s, const std::string& reason, const std::string& error) {
  auto r = std::move(s.req);
  s.req.reset();
  s.sampler.reset();
  if (reason == "error" || reason == "cancelled") {  // a half-fed state is not worth keeping
    s.state.reset();
    s.cached.clear();
    if (s.policy) s.policy->attach(s.state);
  }
  if (r->on_token && reason != "error" && reason != "cancelled") {
    TokenEvent tail;
    s.req = r;  // flush_text reads the stop strings
    tail.text = flush_text(s, true);
    s.req.reset();
    if (!tail.text.empty()) r->on_token(tail);
  }
  {  // counted before the client hears of it: a client that reads stats after its reply sees itself
    std::lock_guard<std::mutex> g(mu_);
    ++served_;
  }
  if (r->on_finish) r->on_finish({reason, error, int64_t(r->prompt.size()), s.generated});
}

void Engine::loop() {
  const int64_t V = model_.config().vocab_size;
  const int64_t Vs = cfg_.gen.vocab_limit > 0 ? cfg_.gen.vocab_limit : V;
  std::vector<Slot*> run;
  std::vector<InferState*> states;
  std::vector<std::span<const int32_t>> ids;
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        if (stopping_ || !queue_.empty()) return true;
        for (auto& s : slots_)
          if (s->req) return true;
        return false;
      });
      if (stopping_) return;
      for (auto& s : slots_)
        if (!s->req && !queue_.empty()) {
          auto r = std::move(queue_.front());
          queue_.pop_front();
          admit(*s, std::move(r));  // under the lock: submit never sees it in neither place
        }
    }
    run.clear(), states.clear(), ids.clear();
    for (auto& s : slots_)
      if (s->req) {
        s->state.all_logits = s->prefill && s->req->echo && s->req->top_logprobs >= 0;
        run.push_back(s.get());
        states.push_back(&s->state);
        ids.emplace_back(s->feed.data(), s->feed.size());
      }
    try {
      model_.infer_batch(states, ids);
    } catch (const std::exception& e) {  // the whole batch's states are unusable
      for (Slot* s : run) finish(*s, "error", e.what());
      continue;
    }
    int64_t fed = 0;
    for (Slot* sp : run) {
      Slot& s = *sp;
      Request& r = *s.req;
      fed += int64_t(s.feed.size());
      s.cached.insert(s.cached.end(), s.feed.begin(), s.feed.end());
      const float* last = s.state.logits.data() + (s.state.all_logits ? int64_t(s.feed.size() - 1) * V : 0);
      if (s.prefill && r.echo) {  // the prompt's tokens, each scored by the row before it
        bool alive = true;
        for (size_t t = 0; t < r.prompt.size() && alive; ++t) {
          const float* lg = s.state.all_logits && t > 0 ? s.state.logits.data() + int64_t(t - 1) * V : nullptr;
          alive = emit(s, r.prompt[t], lg, true, t == 0);
        }
        if (!alive) continue;
      }
      s.prefill = false;
      if (s.generated >= r.max_tokens) {
        finish(s, "length");
        continue;
      }
      const int32_t id = s.sampler->sample(last, Vs);
      if (std::find(r.stop_ids.begin(), r.stop_ids.end(), id) != r.stop_ids.end()) {
        finish(s, "stop");
        continue;
      }
      ++s.generated;
      if (!emit(s, id, last, false, false)) continue;
      if (s.generated >= r.max_tokens || s.state.next_pos + 1 > cfg_.ctx) {
        finish(s, "length");
        continue;
      }
      s.feed.assign(1, id);
    }
    std::lock_guard<std::mutex> g(mu_);
    ++steps_;
    tokens_ += fed;
  }
}

}  // namespace clm::serve
