// Load test of a running `clm serve`: for each concurrency C, C clients on the loopback address
// each send `requests` streaming completions one after another (a bounded loop); reports
// requests/s, generated tokens/s, and latency percentiles (whole request, and time to first
// token), errors, and the ratio of throughput to the one-client run. One JSON line per C.
//
//   clm serve --model M --port 8090 --slots 16 &
//   clm_bench_serve --port 8090 --clients 1,4,16 --requests 8 --max-tokens 64
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "guarded_main.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p / 100.0 * double(v.size() - 1) + 0.5))];
}

struct Result {
  std::vector<double> latency, ttft;
  int64_t tokens = 0, errors = 0;
  std::mutex mu;
};

// One streamed completion: time to the first chunk, the whole time, and the completion tokens of
// the final chunk's usage (text pieces held back, e.g. half a UTF-8 character, send no chunk).
void one_request(const std::string& host, int port, const json& body, Result& r) {
  httplib::Client c(host, port);
  c.set_read_timeout(300, 0);
  const auto t0 = Clock::now();
  double ttft = -1;
  int64_t tokens = 0;
  std::string buf;
  bool done = false;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
                      buf.append(data, n);
                      for (size_t at; (at = buf.find("\n\n")) != std::string::npos; buf.erase(0, at + 2)) {
                        const std::string ev = buf.substr(0, at);
                        if (ev.rfind("data: ", 0) != 0) continue;
                        if (ev == "data: [DONE]") {
                          done = true;
                          continue;
                        }
                        json j = json::parse(ev.substr(6), nullptr, false);
                        if (j.is_discarded() || j.contains("error")) continue;
                        if (!j["choices"][0]["finish_reason"].is_null()) {  // the last chunk: usage counts every token
                          if (j.contains("usage")) tokens = j["usage"].value("completion_tokens", int64_t(0));
                          continue;
                        }
                        if (ttft < 0) ttft = std::chrono::duration<double>(Clock::now() - t0).count();
                      }
                      return true;
  };
  auto res = c.send(req);
  const double lat = std::chrono::duration<double>(Clock::now() - t0).count();
  std::lock_guard<std::mutex> g(r.mu);
  if (!res || res->status != 200 || !done) {
    ++r.errors;
    return;
  }
  r.latency.push_back(lat);
  r.ttft.push_back(ttft);
  r.tokens += tokens;
}

}  // namespace

static int bench_main(int argc, char** argv) {
  CLI::App app{"Load test of clm serve (streamed completions at several concurrencies)"};
  std::string host = "127.0.0.1", clients = "1,4,16", prompt = "Once upon a time", out, label;
  int port = 8080;
  int64_t requests = 8, max_tokens = 64;
  app.add_option("--host", host)->capture_default_str();
  app.add_option("--port", port)->capture_default_str();
  app.add_option("--clients", clients, "Concurrencies, comma-separated")->capture_default_str();
  app.add_option("--requests", requests, "Requests per client")->capture_default_str();
  app.add_option("--max-tokens", max_tokens)->capture_default_str();
  app.add_option("--prompt", prompt)->capture_default_str();
  app.add_option("--label", label, "Recorded in each JSON line (model, machine)");
  app.add_option("--out", out, "Append the JSON lines to this file");
  CLI11_PARSE(app, argc, argv);
  if (requests <= 0 || max_tokens <= 0) {
    std::fprintf(stderr, "--requests and --max-tokens must be > 0\n");
    return 2;
  }
  httplib::Client probe(host, port);
  if (!probe.Get("/health")) {
    std::fprintf(stderr, "no server at %s:%d (start clm serve first)\n", host.c_str(), port);
    return 1;
  }
  double base = 0;
  std::stringstream ss(clients);
  for (std::string tok; std::getline(ss, tok, ',');) {
    const int C = std::stoi(tok);
    Result r;
    std::vector<std::thread> th;
    const auto t0 = Clock::now();
    for (int c = 0; c < C; ++c)
      th.emplace_back([&, c] {
        for (int64_t i = 0; i < requests; ++i) {
          json body = {{"prompt", prompt + " " + std::to_string(c * 1000 + i)}, {"max_tokens", max_tokens}, {"temperature", 0.8},
                       {"seed", c * 1000 + i}, {"stream", true}, {"ignore_eos", true}};
          one_request(host, port, body, r);
        }
      });
    for (auto& t : th) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rps = double(r.latency.size()) / wall, tps = double(r.tokens) / wall;
    if (C == 1 || base == 0) base = tps;
    json j = {{"bench", "serve"}, {"label", label}, {"clients", C}, {"requests", int64_t(r.latency.size())}, {"errors", r.errors},
              {"max_tokens", max_tokens}, {"wall_s", wall}, {"requests_per_s", rps}, {"tokens_per_s", tps},
              {"speedup_vs_first", tps / base}, {"latency_p50_s", pct(r.latency, 50)}, {"latency_p90_s", pct(r.latency, 90)},
              {"latency_p99_s", pct(r.latency, 99)}, {"ttft_p50_s", pct(r.ttft, 50)}, {"ttft_p99_s", pct(r.ttft, 99)}};
    std::printf("clients %3d: %6.2f req/s %8.1f tok/s (x%.2f) | latency p50 %.3f p90 %.3f p99 %.3f s | ttft p50 %.3f s | errors %lld\n", C,
                rps, tps, tps / base, pct(r.latency, 50), pct(r.latency, 90), pct(r.latency, 99), pct(r.ttft, 50), (long long)r.errors);
    std::fflush(stdout);
    if (!out.empty()) std::ofstream(out, std::ios::app) << j.dump() << "\n";
  }
  return 0;
}

int main(int argc, char** argv) { return guarded_main(argc, argv, bench_main); }
