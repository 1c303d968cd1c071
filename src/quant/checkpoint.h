// Quantized checkpoints: `clm quantize` writes a CompactLM folder whose quantized Linears are
// stored packed, which generate / chat / serve / eval / info load directly (models/io.h):
//   config.json, tokenizer.json   as in any CompactLM folder
//   model.safetensors             every other parameter (norms, embedding, an unquantized head), f32
//   quant.safetensors             each quantized Linear's codes, scales and channel order, named
//                                 <linear>.<part> (WeightFormat::store)
//   quant.json                    the method, its options and average bits, and per Linear its
//                                 stored format's meta (kind, shape, report)
// Only formats with a stored form can be saved: the low-bit kernels (int8 W8A8, NVFP4 W4A4 with
// ARCQuant's channels, weight-only codes); fake-quant formats are an accuracy reference in memory.
#pragma once
#include <string>

#include "models/lm.h"
#include "quant/methods.h"
#include "tokenizers/tokenizer.h"

namespace clm::quant {

// Each file atomic; quant.json last, so a folder without it is not a quantized checkpoint.
void save_quantized(const std::string& dir, LanguageModel& model, const Tokenizer* tok, const QuantResult& q);

// The QuantResult of a loaded quantized checkpoint: its layers' reports (the kernel counters start
// at zero) and the averages recorded in quant.json.
QuantResult loaded_quant_result(LanguageModel& model, const nlohmann::json& quant_json);

}  // namespace clm::quant
