// clm serve: the OpenAI-compatible HTTP server (serve/http.h) over the continuous-batching engine.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "cli/cli.h"
#include "serve/http.h"

namespace clm::cli {

namespace {
struct ServeArgs {
  std::string model_path, tok_path, weights = "f32", host = "127.0.0.1", name, device = "cpu";
  int port = 8080;
  int threads = 0, http_threads = 0;
  serve::EngineConfig engine;
  serve::ApiConfig api;
  QuantArgs quant;
  PositionOverride position;
  KVArgs kv;
};

int run_serve(ServeArgs& a) {
  if (a.port < 0 || a.port > 65535) throw std::invalid_argument("--port must be in [0, 65535]");
  if (a.engine.slots <= 0 || a.engine.max_queue < 0 || a.engine.ctx < 0 || a.api.max_tokens_limit <= 0)
    throw std::invalid_argument("--slots and --max-tokens must be > 0, --queue and --ctx >= 0");
  // SIGTERM / SIGINT are taken by one thread (sigwait) that stops the server: every thread
  // started from here on inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Compute threads: all cores but two on a larger machine. OpenMP threads spin between parallel
  // regions; with one on every core the HTTP and client threads preempt them mid-step, and each
  // region then waits for a descheduled thread (measured on 16 cores: 5.9 tokens/s at 4 clients
  // with 16 threads, 313 tokens/s with 14).
  const int hw = int(std::thread::hardware_concurrency());
  const int threads = a.threads > 0 ? a.threads : hw > 4 ? hw - 2 : 0;
  LoadedModel lm = load_for_decoding(a.model_path, a.tok_path, a.weights, threads, a.quant, a.position, a.kv, a.device);
  const Tokenizer& tok = *lm.tokenizer;
  a.engine.ctx = resolve_ctx(a.engine.ctx, *lm.model, 2048, a.engine.slots);
  a.engine.gen = decode_config(tok, 1, tok.eos_id(), a.weights);
  a.kv.apply(a.engine.gen);
  a.api.model_name = !a.name.empty() ? a.name : std::filesystem::path(lm.dir).filename().string();
  if (a.api.model_name.empty()) a.api.model_name = "compactlm";
  a.api.threads = a.http_threads;

  serve::Engine engine(*lm.model, tok, a.engine);
  serve::Server server(engine, tok, a.api);
  const int port = server.bind(a.host, a.port);
  if (port < 0) throw std::runtime_error("cannot listen on " + a.host + ":" + std::to_string(a.port) + " (in use, or not an address here)");
  std::fprintf(stderr, "serving '%s' on http://%s:%d (%lld slots x %lld positions, weights %s, template %s)\n",
               a.api.model_name.c_str(), a.host.c_str(), port, (long long)a.engine.slots, (long long)a.engine.ctx,
               a.weights.c_str(), a.api.chat_template.c_str());
  std::fflush(stderr);
  std::thread http([&] {
    server.run();
    engine.stop();  // the server stopped: so does the engine
  });
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGUSR1) return;  // the server stopped on its own
    std::fprintf(stderr, "signal %d: shutting down\n", sig);
    engine.stop();
    server.stop();
  });
  engine.run();  // the model's work stays on this thread (the one that loaded and packed it)
  server.stop();
  http.join();
  pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  std::fprintf(stderr, "stopped after %lld requests\n", (long long)engine.stats().served);
  return 0;
}
}  // namespace

void add_serve(CLI::App& app, Commands& cmds) {
  auto a = std::make_shared<ServeArgs>();
  a->engine.ctx = 0;
  auto* s = app.add_subcommand("serve", "OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (continuous batching)");
  s->add_option("--model", a->model_path, "Checkpoint: CompactLM or Hugging Face folder, or a llama2.c .bin")->required();
  s->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  s->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  s->add_option("--port", a->port, "Port (0: any free port, printed at start)")->capture_default_str();
  s->add_option("--name", a->name, "Model id clients ask for (default: the checkpoint folder's name)");
  s->add_option("--template", a->api.chat_template, "Chat template of /v1/chat/completions: llama2 | llama3 | chatml | phi3 | plain")
      ->capture_default_str();
  s->add_option("--slots", a->engine.slots, "Sequences decoded together (continuous batching)")->capture_default_str();
  s->add_option("--ctx", a->engine.ctx, "Positions per sequence, prompt and completion (default: the model's, at most 2048)");
  s->add_option("--queue", a->engine.max_queue, "Requests waiting beyond the slots; more get 503")->capture_default_str();
  s->add_option("--max-tokens", a->api.max_tokens_limit, "Largest max_tokens a request may ask")->capture_default_str();
  s->add_option("--max-body", a->api.max_body_bytes, "Largest request body in bytes (413 above)")->capture_default_str();
  s->add_option("--read-timeout", a->api.read_timeout_s, "Seconds a client may take to send its request")->capture_default_str();
  s->add_option("--http-threads", a->http_threads, "HTTP worker threads (0: slots + 8)");
  s->add_option("--threads", a->threads, "Compute threads (0 = all cores, but two left to the HTTP side above 4 cores)");
  s->add_option("--weights", a->weights, "Weight format for inference: f32 | bf16 | ... | generic")->capture_default_str();
  s->add_option("--device", a->device, "cpu | cuda (requests decoded on a GPU, one at a time; --weights bf16 or f32)")->capture_default_str();
  a->quant.add(s);
  a->position.add(s);
  a->kv.add(s);
  cmds.push_back({s, [a] { return run_serve(*a); }});
}

}  // namespace clm::cli
