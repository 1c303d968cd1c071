// The OpenAI-compatible HTTP API over the serving engine (cpp-httplib):
//   GET  /health               status and the engine's counters
//   GET  /v1/models            the one model served
//   POST /v1/completions       prompt (string, token ids, or a list of either), max_tokens,
//                              temperature, top_p, top_k, seed, stop, stream, logprobs, echo
//                              (and add_bos, ignore_eos: not OpenAI's, as in llama.cpp's server)
//   POST /v1/chat/completions  messages through the chat template, stream, logprobs/top_logprobs
// Every error is a JSON body {"error": {"message", "type", "code"}} with a 4xx/5xx status;
// a handler never throws out of the server.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "serve/engine.h"

namespace httplib {
class Server;
}

namespace clm::serve {

struct ApiConfig {
  std::string model_name = "compactlm";
  std::string chat_template = "plain";
  int64_t max_tokens_limit = 1024;   // a request asking more is refused
  int64_t default_max_tokens = 16;   // completions without max_tokens (chat: up to the context)
  size_t max_body_bytes = 1 << 20;
  int read_timeout_s = 10;           // a client that sends too slowly is dropped
  int threads = 0;                   // HTTP worker threads (0: slots + 8)
};

class Server {
 public:
  Server(Engine& engine, const Tokenizer& tok, ApiConfig cfg);
  ~Server();
  // Binds host:port (port 0: any free port) and returns the port, or -1.
  int bind(const std::string& host, int port);
  void run();   // serves until stop()
  void stop();

 private:
  void routes();
  Engine& engine_;
  const Tokenizer& tok_;
  ApiConfig cfg_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<int64_t> next_id_{0};
};

}  // namespace clm::serve
