// The OpenAI-compatible HTTP API (http.h).
#include "serve/http.h"

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "infer/chat.h"

namespace clm::serve {

namespace {

using json = nlohmann::json;

struct ApiError : std::runtime_error {
  int status;
  std::string type;
  ApiError(int s, const std::string& msg, std::string t = "invalid_request_error") : std::runtime_error(msg), status(s), type(std::move(t)) {}
};

json error_body(const std::string& msg, const std::string& type, int status) {
  return {{"error", {{"message", msg}, {"type", type}, {"code", status}}}};
}

void send_error(httplib::Response& res, int status, const std::string& msg, const std::string& type) {
  res.status = status;
  res.set_content(error_body(msg, type, status).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// ---- typed fields: a wrong type or range is a 400 naming the field ----
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}
double number(const json& j, const char* key, double def, double lo, double hi) {
  const json* v = field(j, key);
  if (!v) return def;
  if (!v->is_number()) throw ApiError(400, std::string("'") + key + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) throw ApiError(400, std::string("'") + key + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}
int64_t integer(const json& j, const char* key, int64_t def, int64_t lo, int64_t hi) {
  const json* v = field(j, key);
  if (!v) return def;
  if (!v->is_number_integer()) throw ApiError(400, std::string("'") + key + "' must be an integer");
  const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
  if (x < lo || x > hi) throw ApiError(400, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}
bool boolean(const json& j, const char* key, bool def) {
  const json* v = field(j, key);
  if (!v) return def;
  if (!v->is_boolean()) throw ApiError(400, std::string("'") + key + "' must be true or false");
  return v->get<bool>();
}

// What one HTTP request waits on: the engine's events for each of its prompts.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> chunks;  // streaming: SSE payloads ready to send
  std::vector<TokenEvent> events;  // not streaming
  std::optional<Finish> fin;
  std::atomic<bool> gone{false};   // the client went away: cancel
};

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

}  // namespace

Server::Server(Engine& engine, const Tokenizer& tok, ApiConfig cfg) : engine_(engine), tok_(tok), cfg_(std::move(cfg)) {
  render_chat(cfg_.chat_template, {});  // an unknown template fails at start
  http_ = std::make_unique<httplib::Server>();
  const size_t threads = cfg_.threads > 0 ? size_t(cfg_.threads) : size_t(engine.config().slots + 8);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(cfg_.max_body_bytes);
  http_->set_read_timeout(cfg_.read_timeout_s, 0);
  http_->set_write_timeout(cfg_.read_timeout_s, 0);
  routes();
}

Server::~Server() { stop(); }

int Server::bind(const std::string& host, int port) {
  if (port == 0) return http_->bind_to_any_port(host);
  return http_->bind_to_port(host, port) ? port : -1;
}
void Server::run() { http_->listen_after_bind(); }
void Server::stop() {
  if (http_) http_->stop();
}

void Server::routes() {
  auto& h = *http_;
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string msg = res.status == 404   ? "no route " + req.method + " " + req.path
                            : res.status == 413 ? "request body too large"
                                                : "bad request";
    send_error(res, res.status, msg, res.status == 404 ? "not_found_error" : "invalid_request_error");
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    send_error(res, 500, msg, "server_error");
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats st = engine_.stats();
    res.set_content(json{{"status", "ok"}, {"model", cfg_.model_name}, {"slots", engine_.config().slots}, {"active", st.active},
                         {"queued", st.queued}, {"served", st.served}, {"steps", st.steps}, {"tokens", st.tokens}}
                        .dump(),
                    "application/json");
  });
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", cfg_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "compactlm"}};
    res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
  });

  // Both generation routes: parse and check the body, submit one engine request per prompt, then
  // answer at once (JSON) or as server-sent events.
  auto generate = [this](const httplib::Request& req, httplib::Response& res, bool chat) {
    try {
      json body;
      try {
        body = json::parse(req.body);
      } catch (const std::exception& e) {
        throw ApiError(400, std::string("invalid JSON body: ") + e.what());
      }
      if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");
      if (const json* m = field(body, "model")) {
        if (!m->is_string()) throw ApiError(400, "'model' must be a string");
        if (*m != cfg_.model_name)
          throw ApiError(404, "model '" + m->get<std::string>() + "' is not served here (this server serves '" + cfg_.model_name + "')",
                         "model_not_found");
      }
      if (integer(body, "n", 1, 1, 1) != 1) throw ApiError(400, "'n' must be 1");
      const int64_t ctx = engine_.config().ctx;
      auto base = std::make_shared<Request>();
      base->sampling.temperature = number(body, "temperature", 1.0, 0.0, 100.0);
      base->sampling.top_p = number(body, "top_p", 1.0, 0.0, 1.0);
      if (base->sampling.top_p <= 0) throw ApiError(400, "'top_p' must be in (0, 1]");
      base->sampling.top_k = integer(body, "top_k", 0, 0, 1 << 20);
      base->sampling.seed = uint64_t(integer(body, "seed", next_id_.load(), 0, INT64_MAX));
      const int64_t max_key = field(body, "max_completion_tokens") ? integer(body, "max_completion_tokens", 0, 0, cfg_.max_tokens_limit) : -1;
      base->max_tokens = max_key >= 0 ? max_key : integer(body, "max_tokens", chat ? cfg_.max_tokens_limit : cfg_.default_max_tokens, 0, cfg_.max_tokens_limit);
      if (const json* st = field(body, "stop")) {
        if (st->is_string()) base->stop.push_back(st->get<std::string>());
        else if (st->is_array() && st->size() <= 4) {
          for (const json& s : *st) {
            if (!s.is_string()) throw ApiError(400, "'stop' must be a string or a list of at most 4 strings");
            base->stop.push_back(s.get<std::string>());
          }
        } else {
          throw ApiError(400, "'stop' must be a string or a list of at most 4 strings");
        }
        for (const auto& s : base->stop)
          if (s.empty() || s.size() > 256) throw ApiError(400, "each stop string must have 1 to 256 bytes");
      }
      const bool stream = boolean(body, "stream", false);
      if (chat) {
        if (boolean(body, "logprobs", false)) base->top_logprobs = int(integer(body, "top_logprobs", 0, 0, 20));
        else if (field(body, "top_logprobs")) throw ApiError(400, "'top_logprobs' needs 'logprobs': true");
      } else {
        base->top_logprobs = int(integer(body, "logprobs", -1, 0, 20));
        base->echo = boolean(body, "echo", false);
      }
      // ignore_eos: benchmarks; echo (scoring, lm-eval's local-completions reads token_logprobs[ctxlen:-1]):
      // always max_tokens tokens after the prompt, EOS included
      if (!boolean(body, "ignore_eos", false) && !base->echo) base->stop_ids.push_back(tok_.eos_id());
      std::vector<std::vector<int32_t>> prompts;
      const int32_t bos = boolean(body, "add_bos", true) ? tok_.bos_id() : -1;
      auto text_prompt = [&](const std::string& s) {
        std::vector<int32_t> ids;
        if (bos >= 0) ids.push_back(bos);
        const auto enc = tok_.encode(s);
        ids.insert(ids.end(), enc.begin(), enc.end());
        return ids;
      };
      auto id_prompt = [&](const json& a) {
        std::vector<int32_t> ids;
        for (const json& x : a) {
          if (!x.is_number_integer()) throw ApiError(400, "a token-id prompt must hold integers only");
          const int64_t id = x.get<int64_t>();
          if (id < 0 || id >= engine_.vocab())
            throw ApiError(400, "token id " + std::to_string(id) + " outside the vocabulary");
          ids.push_back(int32_t(id));
        }
        return ids;
      };
      if (chat) {
        const json* msgs = field(body, "messages");
        if (!msgs || !msgs->is_array() || msgs->empty()) throw ApiError(400, "'messages' must be a non-empty list");
        std::vector<ChatMessage> m;
        for (const json& x : *msgs) {
          if (!x.is_object() || !x.contains("role") || !x["role"].is_string()) throw ApiError(400, "each message needs a string 'role'");
          std::string content;
          const json* c = field(x, "content");
          if (c && c->is_string()) content = c->get<std::string>();
          else if (c && c->is_array()) {
            for (const json& part : *c) {
              if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
                throw ApiError(400, "message content parts must be {\"type\": \"text\", \"text\": ...}");
              content += part["text"].get<std::string>();
            }
          } else if (c) {
            throw ApiError(400, "message 'content' must be a string or a list of text parts");
          }
          m.push_back({x["role"].get<std::string>(), content});
        }
        try {
          prompts.push_back(encode_chat(tok_, render_chat(cfg_.chat_template, m)));
        } catch (const std::invalid_argument& e) {
          throw ApiError(400, e.what());
        }
        for (int32_t id : chat_stop_ids(tok_, cfg_.chat_template)) base->stop_ids.push_back(id);
        for (const auto& s : chat_stop_strings(cfg_.chat_template)) base->stop.push_back(s);
      } else {
        const json* p = field(body, "prompt");
        if (!p) throw ApiError(400, "'prompt' is required");
        if (p->is_string()) prompts.push_back(text_prompt(p->get<std::string>()));
        else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) prompts.push_back(id_prompt(*p));
        else if (p->is_array() && !p->empty() && p->size() <= 64) {
          for (const json& x : *p) {
            if (x.is_string()) prompts.push_back(text_prompt(x.get<std::string>()));
            else if (x.is_array() && !x.empty()) prompts.push_back(id_prompt(x));
            else throw ApiError(400, "'prompt' lists must hold strings or non-empty token-id lists");
          }
        } else {
          throw ApiError(400, "'prompt' must be a string, a token-id list, or a list of at most 64 of either");
        }
        if (stream && prompts.size() > 1) throw ApiError(400, "streaming takes one prompt");
      }
      for (auto& p : prompts) {
        if (chat && max_key < 0 && !field(body, "max_tokens"))
          base->max_tokens = std::max<int64_t>(1, std::min<int64_t>(cfg_.max_tokens_limit, ctx - int64_t(p.size())));
        if (int64_t(p.size()) + (base->max_tokens > 0) > ctx)
          throw ApiError(400, "the prompt has " + std::to_string(p.size()) + " tokens; the context holds " + std::to_string(ctx));
      }

      const int64_t id = next_id_++;
      const std::string rid = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(id);
      const int64_t created = int64_t(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
      const std::string object = chat ? "chat.completion" : "text_completion";
      auto token_str = [this](int32_t t) { return t >= 0 && t < tok_.vocab_size() ? tok_.token_text(t) : std::string(); };
      auto bytes_of = [](const std::string& s) {
        json b = json::array();
        for (unsigned char c : s) b.push_back(int(c));
        return b;
      };
      // The logprobs of a run of events, in each route's shape; offset: completions' text_offset.
      // (by value: the streaming callbacks outlive this handler)
      auto logprobs_json = [chat, token_str, bytes_of](const std::vector<TokenEvent>& evs, int64_t& offset) {
        json lp;
        if (chat) {
          lp = {{"content", json::array()}};
          for (const auto& e : evs) {
            if (e.id < 0 || !e.has_logprob) continue;
            json tops = json::array();
            for (const auto& t : e.top) tops.push_back({{"token", token_str(t.id)}, {"logprob", t.logprob}, {"bytes", bytes_of(token_str(t.id))}});
            lp["content"].push_back({{"token", e.piece}, {"logprob", e.logprob}, {"bytes", bytes_of(e.piece)}, {"top_logprobs", tops}});
          }
        } else {
          lp = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()}, {"text_offset", json::array()}};
          for (const auto& e : evs) {
            if (e.id < 0) continue;
            lp["tokens"].push_back(e.piece);
            lp["token_logprobs"].push_back(e.has_logprob ? json(e.logprob) : json(nullptr));
            json tops = json::object();
            for (const auto& t : e.top) tops[token_str(t.id)] = t.logprob;
            lp["top_logprobs"].push_back(e.has_logprob ? tops : json(nullptr));
            lp["text_offset"].push_back(offset);
            offset += int64_t(e.piece.size());
          }
        }
        return lp;
      };
      auto usage = [](int64_t p, int64_t c) { return json{{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}; };

      std::vector<std::shared_ptr<Channel>> chans;
      for (auto& p : prompts) {
        auto ch = std::make_shared<Channel>();
        auto r = std::make_shared<Request>(*base);
        r->prompt = std::move(p);
        const bool want_lp = r->top_logprobs >= 0;
        if (stream) {
          auto first = std::make_shared<bool>(true);
          auto offset = std::make_shared<int64_t>(0);
          r->on_token = [=, this](const TokenEvent& e) {
            if (ch->gone) return false;
            if (e.text.empty() && !(want_lp && e.id >= 0)) return true;
            json choice = {{"index", 0}, {"finish_reason", nullptr}};
            if (chat) {
              json delta = {{"content", e.text}};
              if (*first) delta["role"] = "assistant", *first = false;
              choice["delta"] = delta;
            } else {
              choice["text"] = e.text;
            }
            if (want_lp) choice["logprobs"] = logprobs_json({e}, *offset);
            else choice["logprobs"] = nullptr;
            json chunk = {{"id", rid}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                          {"model", cfg_.model_name}, {"choices", json::array({choice})}};
            std::lock_guard<std::mutex> g(ch->mu);
            ch->chunks.push_back(sse(chunk));
            ch->cv.notify_all();
            return true;
          };
          r->on_finish = [=, this](const Finish& f) {
            std::string out;
            if (f.reason == "error") {
              out = sse(error_body(f.error, "server_error", 500));
            } else {
              json choice = {{"index", 0}, {"finish_reason", f.reason}, {"logprobs", nullptr}};
              if (chat) choice["delta"] = json::object();
              else choice["text"] = "";
              out = sse({{"id", rid}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                         {"model", cfg_.model_name}, {"choices", json::array({choice})}, {"usage", usage(f.prompt_tokens, f.completion_tokens)}});
            }
            std::lock_guard<std::mutex> g(ch->mu);
            ch->chunks.push_back(out + "data: [DONE]\n\n");
            ch->fin = f;
            ch->cv.notify_all();
          };
        } else {
          r->on_token = [ch](const TokenEvent& e) {
            std::lock_guard<std::mutex> g(ch->mu);
            ch->events.push_back(e);
            return !ch->gone;
          };
          r->on_finish = [ch](const Finish& f) {
            std::lock_guard<std::mutex> g(ch->mu);
            ch->fin = f;
            ch->cv.notify_all();
          };
        }
        const std::string refused = engine_.submit(r);
        if (!refused.empty()) {
          for (auto& c : chans) c->gone = true;
          throw ApiError(refused.rfind("server busy", 0) == 0 || refused.rfind("the server is shutting", 0) == 0 ? 503 : 400, refused,
                         "server_error");
        }
        chans.push_back(ch);
      }

      if (stream) {
        auto ch = chans[0];
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [ch](size_t, httplib::DataSink& sink) {
              std::unique_lock<std::mutex> lk(ch->mu);
              ch->cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !ch->chunks.empty() || ch->fin; });
              while (!ch->chunks.empty()) {
                std::string c = std::move(ch->chunks.front());
                ch->chunks.pop_front();
                lk.unlock();
                if (!sink.write(c.data(), c.size())) {
                  ch->gone = true;
                  return false;
                }
                lk.lock();
              }
              if (ch->fin) sink.done();
              else if (sink.is_writable && !sink.is_writable()) {
                ch->gone = true;
                return false;
              }
              return true;
            },
            [ch](bool) { ch->gone = true; });
        return;
      }
      json choices = json::array();
      int64_t ptok = 0, ctok = 0;
      for (size_t i = 0; i < chans.size(); ++i) {
        auto& ch = chans[i];
        std::unique_lock<std::mutex> lk(ch->mu);
        ch->cv.wait(lk, [&] { return bool(ch->fin); });
        if (ch->fin->reason == "error") throw ApiError(500, ch->fin->error, "server_error");
        if (ch->fin->reason == "cancelled") throw ApiError(503, "the request was cancelled (server shutting down)", "server_error");
        std::string text;
        for (const auto& e : ch->events) text += e.text;
        int64_t offset = 0;
        json choice = {{"index", int64_t(i)}, {"finish_reason", ch->fin->reason}};
        choice["logprobs"] = base->top_logprobs >= 0 ? logprobs_json(ch->events, offset) : json(nullptr);
        if (chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
        else choice["text"] = text;
        choices.push_back(choice);
        ptok += ch->fin->prompt_tokens;
        ctok += ch->fin->completion_tokens;
      }
      res.set_content(json{{"id", rid}, {"object", object}, {"created", created}, {"model", cfg_.model_name}, {"choices", choices},
                           {"usage", usage(ptok, ctok)}}
                          .dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.type);
    } catch (const std::exception& e) {
      send_error(res, 400, e.what(), "invalid_request_error");
    }
  };
  h.Post("/v1/completions", [generate](const httplib::Request& q, httplib::Response& r) { generate(q, r, false); });
  h.Post("/v1/chat/completions", [generate](const httplib::Request& q, httplib::Response& r) { generate(q, r, true); });
}

}  // namespace clm::serve
