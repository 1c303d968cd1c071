// KV-cached inference on a CUDA device: `clm generate / chat / serve --device cuda`.
//
// gpu_decoder() takes a loaded transformer (the slots the CUDA backend runs: models/lm.cpp) and
// returns a LanguageModel whose infer() runs on the GPU: the weights uploaded once in bf16 or f32
// (q/k/v and gate/up fused into one matrix each), a KV cache per state in device memory (f32
// cells at their true positions), prefill in chunks of up to 64 tokens, and each one-token decoding
// step captured once per state as a CUDA graph and replayed (one launch, the id and position copied
// in, the logits copied out). Position encodings enter as tables probed from the model's own slot
// (any rotary variant whose action on a pair is a rotation, learned rows, ALiBi slopes), so PI, NTK,
// YaRN and 3D-RPE need no GPU code of their own. The CPU model stays the reference: tests/test_cuda.cpp
// compares the two token by token.
//
// Not on the GPU (refused in one line): KV policies, token filters and attention observers, images,
// quantized Linears, and models the CUDA backend has no kernels for.
#pragma once
#include <memory>
#include <string>

#include "models/lm.h"

namespace clm {

// weights: "bf16" or "f32" (the storage of every matrix on the device; activations, norms, the
// KV cells and accumulation stay f32). Throws std::invalid_argument naming what cannot run, or the
// missing backend / device.
std::unique_ptr<LanguageModel> gpu_decoder(std::unique_ptr<LanguageModel> model, const std::string& weights);

}  // namespace clm
