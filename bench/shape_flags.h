// The flags the two decode benchmarks (bench_decode.cpp on the CPU, bench_decode_cuda.cpp on a GPU)
// share: a random Llama's shape, the prompt and the decoded tokens, under the same names, so that
// one shape string serves both (scripts/device_cuda.sh, bench/decode_vs_peers.py).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>

#include "nn/config.h"

inline void add_shape_flags(CLI::App& app, clm::ModelConfig& c, int64_t& prompt, int64_t& tokens) {
  app.add_option("--dim", c.d_model);
  app.add_option("--layers", c.n_layers);
  app.add_option("--heads", c.n_heads);
  app.add_option("--kv-heads", c.n_kv_heads);
  app.add_option("--hidden", c.d_ff);
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--prompt", prompt, "Prefill length");
  app.add_option("--tokens", tokens, "Decoded tokens per measurement");
}
