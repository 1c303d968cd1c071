// The OpenAI-compatible server: a real HTTP client (cpp-httplib) against Engine + Server on the
// loopback address, the byte-level tiny Llama of the task fixture as the model. Checks the API's
// shapes, that batched decoding gives each request what it gets alone, echo + logprobs against
// the scoring harness, streaming, stop strings, every refusal as a JSON 4xx, a slow client, a full
// queue, and the `openai` npm client when it is installed (scripts/setup.sh puts it in build/node).
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common.h"
#include "eval/tasks.h"
#include "models/io.h"
#include "quant/methods.h"
#include "serve/http.h"

using namespace clm;
using json = nlohmann::json;

namespace {

const std::string kDir = std::string(CLM_SOURCE_DIR) + "/tests/fixtures/tasks";

std::unique_ptr<LanguageModel> byte_llama() { return load_model(kDir + "/byte_llama").model; }

struct Running {
  std::unique_ptr<LanguageModel> model = byte_llama();
  ByteTokenizer tok;
  std::unique_ptr<serve::Engine> engine;
  std::unique_ptr<serve::Server> server;
  std::thread thread;
  int port = -1;
  explicit Running(int64_t slots = 4, int64_t queue = 16, int read_timeout = 10,
                   const std::function<void(LanguageModel&, serve::EngineConfig&)>& setup = nullptr) {
    serve::EngineConfig ec;
    ec.slots = slots;
    ec.ctx = 48;
    ec.max_queue = queue;
    ec.gen.vocab_limit = tok.vocab_size();
    if (setup) setup(*model, ec);
    engine = std::make_unique<serve::Engine>(*model, tok, ec);
    engine->start();
    serve::ApiConfig ac;
    ac.model_name = "byte-llama";
    ac.max_tokens_limit = 40;
    ac.max_body_bytes = 4096;
    ac.read_timeout_s = read_timeout;
    server = std::make_unique<serve::Server>(*engine, tok, ac);
    port = server->bind("127.0.0.1", 0);
    thread = std::thread([this] { server->run(); });
    httplib::Client c("127.0.0.1", port);
    for (int i = 0; i < 100 && !c.Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~Running() {
    server->stop();
    thread.join();
    engine->stop();
  }
  // A raw TCP connection to the server (requests httplib would not send); -1 if it fails.
  int raw_socket() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    close(fd);
    return -1;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    return c;
  }
  json post(const std::string& path, const json& body, int want = 200) const {
    auto c = client();
    auto r = c.Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, want) << r->body;
    return json::parse(r->body);
  }
};

}  // namespace

TEST(Serve, HealthAndModels) {
  Running s;
  auto c = s.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "byte-llama");
}

// Greedy completions equal the one-sequence Generator's output, alone and when 12 requests of
// different prompts run at once over 4 slots (continuous batching changes nothing but speed).
TEST(Serve, BatchedGreedyCompletionsEqualGeneratingAlone) {
  Running s(4);
  std::vector<std::string> prompts;
  std::vector<std::string> want;
  for (int i = 0; i < 12; ++i) {
    prompts.push_back("Once upon a time " + std::to_string(i * 7919));
    GenerateConfig g;
    g.max_new_tokens = 12;
    g.eos_id = s.tok.eos_id();
    g.vocab_limit = s.tok.vocab_size();
    Sampler greedy({0.0, 0, 1.0, 0});
    auto ids = generate(*s.model, s.tok.encode(prompts.back()), g, greedy);
    // as JSON carries it: invalid UTF-8 (a random byte model's output) becomes U+FFFD
    want.push_back(json::parse(json(s.tok.decode(ids)).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>());
  }
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> th;
  for (size_t i = 0; i < prompts.size(); ++i)
    th.emplace_back([&, i] {
      json r = s.post("/v1/completions", {{"model", "byte-llama"}, {"prompt", prompts[i]}, {"max_tokens", 12}, {"temperature", 0}});
      got[i] = r["choices"][0]["text"].get<std::string>();
    });
  for (auto& t : th) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << "prompt " << i;
  EXPECT_GE(s.engine->stats().served, 12);
}

// echo + logprobs + max_tokens 0 (lm-eval's local-completions scoring): the continuation's
// token log-probabilities sum to the harness's log-likelihood of the same request.
TEST(Serve, EchoLogprobsScoreLikeTheHarness) {
  Running s;
  const std::string ctx = "the cat sat on the", cont = " mat";
  json r = s.post("/v1/completions", {{"prompt", ctx + cont}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 2}});
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ctx.size() + cont.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_EQ(r["choices"][0]["text"], ctx + cont);
  double sum = 0;
  for (size_t i = ctx.size(); i < lp["token_logprobs"].size(); ++i) sum += lp["token_logprobs"][i].get<double>();
  ScoreOptions o;
  const auto ll = score_requests(*s.model, s.tok, {{ctx, cont}}, o);
  EXPECT_NEAR(sum, ll[0].logprob, 1e-4);
  EXPECT_EQ(lp["top_logprobs"][1].size(), 2u);
  EXPECT_EQ(lp["text_offset"][3], 3);
}

// lm-eval's local-completions loglikelihood: a batch of token-id prompts (context + continuation)
// with temperature 0, max_tokens 1, logprobs 1, echo; it sums token_logprobs[ctxlen:-1] and calls
// a request greedy when each of those equals the max of its top_logprobs. Parsed that way, the
// answers equal the harness's score_requests for the same requests.
TEST(Serve, LmEvalLocalCompletionsProtocol) {
  Running s;
  const std::vector<TaskRequest> reqs = {{"the cat sat on the", " mat"}, {"Once upon a", " time"}, {"abc", "d"}};
  json prompts = json::array();
  std::vector<size_t> ctxlens;
  for (const auto& r : reqs) {
    std::vector<int32_t> c, k;
    encode_request(s.tok, r, false, c, k);
    ctxlens.push_back(c.size());
    c.insert(c.end(), k.begin(), k.end());
    prompts.push_back(c);
  }
  json out = s.post("/v1/completions", {{"model", "byte-llama"}, {"prompt", prompts}, {"temperature", 0}, {"max_tokens", 1},
                                        {"logprobs", 1}, {"seed", 1234}, {"echo", true}});
  ScoreOptions o;
  const auto want = score_requests(*s.model, s.tok, reqs, o);
  ASSERT_EQ(out["choices"].size(), reqs.size());
  for (const json& ch : out["choices"]) {
    const size_t i = ch["index"].get<size_t>();
    const json& tl = ch["logprobs"]["token_logprobs"];
    const json& top = ch["logprobs"]["top_logprobs"];
    ASSERT_EQ(tl.size(), prompts[i].size() + 1) << "the prompt echoed and one generated token";
    double sum = 0;
    bool greedy = true;
    for (size_t t = ctxlens[i]; t + 1 < tl.size(); ++t) {
      sum += tl[t].get<double>();
      double best = -1e300;
      for (auto& [k, v] : top[t].items()) best = std::max(best, v.get<double>());
      greedy = greedy && tl[t].get<double>() == best;
    }
    EXPECT_NEAR(sum, want[i].logprob, 1e-4) << "request " << i;
    EXPECT_EQ(greedy, want[i].greedy) << "request " << i;
  }
}

// A quantized model and a KV policy are server options: the server's greedy completions equal
// the one-sequence Generator's with the same W8A8 weights and the same eviction (a 12-cell
// streaming cache over 30 tokens, so cells are evicted).
TEST(Serve, QuantizedModelAndKvPolicyServeLikeGenerate) {
  GenerateConfig g;
  g.kv_policy = "streaming";
  g.kv_opt = nlohmann::json::object({{"sinks", 2}});
  g.kv_budget.tokens = 12;
  Running s(3, 16, 10, [&](LanguageModel& m, serve::EngineConfig& ec) {
    quant::quantize_model(m, "rtn", {{"w", "int8"}, {"a", "int8"}}, nullptr);
    ec.gen.weights = m.packed_format();
    ec.gen.kv_policy = g.kv_policy;
    ec.gen.kv_opt = g.kv_opt;
    ec.gen.kv_budget = g.kv_budget;
  });
  g.weights = s.model->packed_format();
  g.max_new_tokens = 30;
  g.vocab_limit = s.tok.vocab_size();
  std::vector<std::thread> th;
  std::vector<std::string> got(3), want(3);
  for (int i = 0; i < 3; ++i) {
    const std::string prompt = "request " + std::to_string(i);
    Sampler greedy({0.0, 0, 1.0, 0});
    want[size_t(i)] = json::parse(json(s.tok.decode(generate(*s.model, s.tok.encode(prompt), g, greedy))).dump(-1, ' ', false,
                                  json::error_handler_t::replace)).get<std::string>();
  }
  for (int i = 0; i < 3; ++i)
    th.emplace_back([&, i] {
      got[size_t(i)] = s.post("/v1/completions", {{"prompt", "request " + std::to_string(i)}, {"max_tokens", 30}, {"temperature", 0},
                                                 {"ignore_eos", true}})["choices"][0]["text"];
    });
  for (auto& t : th) t.join();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << "request " << i;
  // and the options changed something: the plain model (f32, every cell kept) answers otherwise
  auto plain = byte_llama();
  GenerateConfig p;
  p.max_new_tokens = 30;
  p.vocab_limit = s.tok.vocab_size();
  int differ = 0;
  for (int i = 0; i < 3; ++i) {
    Sampler greedy({0.0, 0, 1.0, 0});
    const std::string txt = json::parse(json(s.tok.decode(generate(*plain, s.tok.encode("request " + std::to_string(i)), p, greedy)))
                                            .dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
    differ += txt != want[size_t(i)];
  }
  EXPECT_GT(differ, 0);
}

TEST(Serve, StreamingGivesTheSameTextAsOneResponse) {
  Running s;
  const json body = {{"prompt", "Hello"}, {"max_tokens", 10}, {"temperature", 0.8}, {"seed", 7}};
  const std::string whole = s.post("/v1/completions", body)["choices"][0]["text"];
  auto c = s.client();
  json sb = body;
  sb["stream"] = true;
  std::string raw;
  auto r = c.Post("/v1/completions", sb.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  raw = r->body;
  std::string text, finish;
  size_t at = 0, chunks = 0;
  while ((at = raw.find("data: ", at)) != std::string::npos) {
    const size_t end = raw.find("\n\n", at);
    const std::string d = raw.substr(at + 6, end - at - 6);
    at = end;
    if (d == "[DONE]") break;
    json j = json::parse(d);
    text += j["choices"][0]["text"].get<std::string>();
    if (!j["choices"][0]["finish_reason"].is_null()) finish = j["choices"][0]["finish_reason"];
    ++chunks;
  }
  EXPECT_EQ(text, whole);
  EXPECT_EQ(finish, "length");
  EXPECT_GE(chunks, 2u);
  EXPECT_NE(raw.find("data: [DONE]"), std::string::npos);
}

TEST(Serve, StopStringsCutTheOutput) {
  Running s;
  const std::string full = s.post("/v1/completions", {{"prompt", "abc"}, {"max_tokens", 20}, {"temperature", 0}})["choices"][0]["text"];
  ASSERT_GE(full.size(), 6u);
  const std::string stop = full.substr(3, 2);
  json r = s.post("/v1/completions", {{"prompt", "abc"}, {"max_tokens", 20}, {"temperature", 0}, {"stop", stop}});
  EXPECT_EQ(r["choices"][0]["text"], full.substr(0, full.find(stop)));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
}

TEST(Serve, ChatCompletionWithThePlainTemplate) {
  Running s;
  json r = s.post("/v1/chat/completions", {{"model", "byte-llama"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                           {"max_tokens", 8}, {"logprobs", true}, {"top_logprobs", 1}, {"temperature", 0}});
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(r["choices"][0]["message"]["content"].is_string());
  EXPECT_LE(r["choices"][0]["logprobs"]["content"].size(), 8u);
  EXPECT_EQ(r["usage"]["prompt_tokens"], int64_t(std::string("User: hi\nAssistant:").size()));
}

// Every malformed request is a JSON error with a 4xx, and the server keeps answering.
TEST(Serve, MalformedRequestsGetJsonErrors) {
  Running s;
  auto c = s.client();
  auto expect = [&](const std::string& path, const std::string& body, int status, const std::string& part) {
    auto r = c.Post(path, body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    json j = json::parse(r->body);
    EXPECT_NE(j["error"]["message"].get<std::string>().find(part), std::string::npos) << r->body;
  };
  expect("/v1/completions", "{not json", 400, "invalid JSON");
  expect("/v1/completions", "[1, 2]", 400, "JSON object");
  expect("/v1/completions", R"({"prompt": 5})", 400, "'prompt'");
  expect("/v1/completions", R"({"prompt": "x", "max_tokens": "ten"})", 400, "'max_tokens'");
  expect("/v1/completions", R"({"prompt": "x", "max_tokens": 1000000})", 400, "'max_tokens'");
  expect("/v1/completions", R"({"prompt": "x", "temperature": -1})", 400, "'temperature'");
  expect("/v1/completions", R"({"prompt": "x", "model": "gpt-4"})", 404, "not served here");
  expect("/v1/completions", R"({"prompt": [1, 2, 99999]})", 400, "outside the vocabulary");
  expect("/v1/completions", R"({"prompt": "x", "stop": [1]})", 400, "'stop'");
  expect("/v1/completions", R"({"prompt": "x", "n": 3})", 400, "'n'");
  expect("/v1/completions", json{{"prompt", std::string(60, 'a')}}.dump(), 400, "context holds");
  expect("/v1/chat/completions", R"({"messages": []})", 400, "'messages'");
  expect("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "x"}]})", 400, "unknown role");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", 400, "'content'");
  expect("/v1/completions", "{\"prompt\": \"\xff\xfe\", \"max_tokens\": 2}", 400, "invalid JSON");  // broken UTF-8
  auto big = c.Post("/v1/completions", std::string(10000, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  auto nf = c.Get("/v2/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(json::parse(nf->body).contains("error"));
  EXPECT_EQ(s.post("/v1/completions", {{"prompt", "still here"}, {"max_tokens", 3}})["choices"][0]["finish_reason"], "length");
}

// A client that sends half a request and stalls does not hold up the others; it is dropped
// after the read timeout.
TEST(Serve, SlowClientDoesNotBlockOthers) {
  Running s(4, 16, 1);
  std::thread staller([&] {
    const int fd = s.raw_socket();
    if (fd < 0) return;
    const char* part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"";
    (void)!write(fd, part, strlen(part));
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    close(fd);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s.post("/v1/completions", {{"prompt", "fast"}, {"max_tokens", 2}})["choices"].size(), 1u);
  staller.join();
  EXPECT_EQ(s.post("/v1/completions", {{"prompt", "after"}, {"max_tokens", 2}})["choices"].size(), 1u);
}

TEST(Serve, FullQueueIs503) {
  Running s(1, 0);
  std::thread busy([&] { s.post("/v1/completions", {{"prompt", "a"}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}}); });
  for (int i = 0; i < 500 && s.engine->stats().active == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  bool saw503 = false;
  for (int i = 0; i < 200 && !saw503; ++i) {
    auto c = s.client();
    auto r = c.Post("/v1/completions", json{{"prompt", "b"}, {"max_tokens", 1}}.dump(), "application/json");
    ASSERT_TRUE(r);
    saw503 = r->status == 503;
    if (saw503) {
      EXPECT_NE(r->body.find("server busy"), std::string::npos);
    }
  }
  busy.join();
  EXPECT_TRUE(saw503);
}

// The `openai` npm package (tests/node/openai_client.cjs): models.list, a chat completion, a
// streamed chat completion, logprobs, an echo-scored completion and the error for a wrong model.
TEST(Serve, OpenAiNpmClient) {
  const std::string modules = std::string(CLM_BUILD_DIR) + "/node/node_modules";
  CLM_NEED_ASSET(std::system("node --version > /dev/null 2>&1") == 0, "node is not installed");
  CLM_NEED_ASSET(std::filesystem::exists(modules + "/openai"), "no openai npm package in " << modules << " (scripts/setup.sh installs it)");
  Running s;
  const std::string cmd = "NODE_PATH=" + modules + " node " + std::string(CLM_SOURCE_DIR) + "/tests/node/openai_client.cjs http://127.0.0.1:" +
                          std::to_string(s.port) + "/v1 byte-llama";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// clm serve as a process: answers, then exits 0 on SIGTERM.
TEST(Serve, CliServesAndStopsOnSigterm) {
  test::TempDir d;
  const std::string log = d.path + "/log";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    execl(CLM_BIN, CLM_BIN, "serve", "--model", (kDir + "/byte_llama").c_str(), "--port", "0", "--slots", "2", "--threads", "1", nullptr);
    _exit(127);
  }
  int port = -1;
  for (int i = 0; i < 300 && port < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f(log);
    std::string s((std::istreambuf_iterator<char>(f)), {});
    const size_t at = s.find("http://127.0.0.1:");
    if (at != std::string::npos && s.find(' ', at) != std::string::npos) port = std::atoi(s.c_str() + at + 17);
  }
  ASSERT_GT(port, 0) << "server did not start";
  httplib::Client c("127.0.0.1", port);
  auto r = c.Post("/v1/completions", json{{"model", "byte_llama"}, {"prompt", "hi"}, {"max_tokens", 3}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  if (std::system("curl --version > /dev/null 2>&1") == 0) {  // and with curl, streaming
    const std::string out = d.path + "/curl";
    const std::string cmd = "curl -sfN http://127.0.0.1:" + std::to_string(port) +
                            "/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 4, "
                            "\"stream\": true}' > " + out;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(out);
    const std::string body((std::istreambuf_iterator<char>(f)), {});
    EXPECT_NE(body.find("chat.completion.chunk"), std::string::npos) << body;
    EXPECT_NE(body.find("data: [DONE]"), std::string::npos) << body;
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

// A bounded fuzz of the HTTP API: mutated JSON bodies (flipped, cut, duplicated bytes, wrong
// types, huge fields, broken UTF-8), raw truncated requests; every answer is a status with a
// body, and afterwards a well-formed request is served. CLM_FUZZ_ITERS sets the count (300).
TEST(Serve, FuzzedRequestsNeverBreakTheServer) {
  Running s(4, 16, 1);
  const int iters = std::getenv("CLM_FUZZ_ITERS") ? std::atoi(std::getenv("CLM_FUZZ_ITERS")) : 300;
  std::mt19937_64 rng(12345);
  const std::vector<std::string> seeds = {
      R"({"prompt": "hello", "max_tokens": 4, "temperature": 0.5, "stop": ["\n"], "logprobs": 2, "echo": true})",
      R"({"model": "byte-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": true})",
      R"({"prompt": [1, 2, 3], "max_tokens": 2, "top_k": 5, "top_p": 0.9, "seed": 3})",
      R"({"messages": [{"role": "system", "content": [{"type": "text", "text": "x"}]}, {"role": "user", "content": "y"}], "logprobs": true, "top_logprobs": 2, "max_tokens": 2})"};
  const std::vector<std::string> junk = {"null", "-1", "1e308", "\"\xff\xfe\"", "[]", "{}", "true", std::string(3000, 'x'), "\"" + std::string(2000, 'a') + "\"", "[[[[[[[["};
  int answered = 0;
  for (int i = 0; i < iters; ++i) {
    std::string b = seeds[rng() % seeds.size()];
    switch (rng() % 6) {
      case 0: for (int k = 0; k < 3; ++k) b[rng() % b.size()] = char(rng() % 256); break;
      case 1: b.resize(rng() % b.size()); break;
      case 2: { const size_t at = rng() % b.size(); b.insert(at, b.substr(at, rng() % 20)); break; }
      case 3: {  // a value replaced by junk
        const size_t at = b.find(':', rng() % b.size());
        if (at != std::string::npos) b = b.substr(0, at + 1) + junk[rng() % junk.size()] + b.substr(std::min(b.size(), b.find_first_of(",}", at + 1)));
        break;
      }
      case 4: b = junk[rng() % junk.size()]; break;
      default: break;
    }
    const bool chat = b.find("messages") != std::string::npos;
    if (rng() % 8 == 0) {  // raw and truncated on the wire
      const int fd = s.raw_socket();
      if (fd >= 0) {
        std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(b.size() + rng() % 3) + "\r\n\r\n" + b;
        req.resize(rng() % (req.size() + 1));
        (void)!write(fd, req.data(), req.size());
        shutdown(fd, SHUT_WR);
        char buf[256];
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
      }
      continue;
    }
    auto c = s.client();
    auto r = c.Post(chat ? "/v1/chat/completions" : "/v1/completions", b, "application/json");
    ASSERT_TRUE(r) << "no answer to: " << b;
    EXPECT_TRUE(r->status == 200 || (r->status >= 400 && r->status < 600)) << r->status;
    if (r->status != 200) {
      EXPECT_TRUE(json::parse(r->body, nullptr, false).contains("error")) << b << " -> " << r->body;
    }
    EXPECT_NE(r->status, 500) << b << " -> " << r->body;
    ++answered;
  }
  EXPECT_GT(answered, iters / 2);
  EXPECT_EQ(s.post("/v1/completions", {{"prompt", "after the fuzz"}, {"max_tokens", 3}})["choices"][0]["finish_reason"], "length");
}
