// GGUF (v3) export of Llama-family models for llama.cpp / ollama ("llama" architecture, or "qwen2"
// for models with q/k/v biases), and a strict reader used to check what was written. Tensors are
// written in llama.cpp's names and layout: ggml's dims are innermost first; for "llama", Q/K rows
// are permuted from rotate-half to interleaved pairs when the model uses Hugging Face's rotary
// layout. The tokenizer is written as llama.cpp's "llama" (SentencePiece-style) or "gpt2"
// (byte-level BPE) vocabulary.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/config.h"
#include "tensor/tensor.h"
#include "tokenizers/tokenizer.h"

namespace clm {

// type: f32, f16, bf16, q8_0 or mxfp4 for 2-D weights (norms stay f32, as llama.cpp expects). q8_0 is
// ggml's Q8_0 (blocks of 32: an f16 scale d = amax/127 and 32 int8 codes round(x/d), ties away
// from zero, as ggml's reference quantizer rounds); mxfp4 is ggml's MXFP4 holding CompactLM's own
// OCP MX codes (quantize_mxfp4). A weight whose rows are not a multiple of 32 long (stories260K's
// d_ff 172) stays f16, as llama.cpp's quantizer falls back.
void write_gguf(const std::string& path, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                const Tokenizer& tok, const std::string& type, const std::string& name = "compactlm");
inline void write_gguf(const std::string& path, const ModelConfig& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const Tokenizer& tok, DType dtype, const std::string& name = "compactlm") {
  write_gguf(path, c, tensors, tok, dtype_name(dtype), name);
}
// One row of Q8_0: n (a multiple of 32) values into n/32 blocks of 34 bytes.
void quantize_q8_0(const float* x, int64_t n, uint8_t* out);
// One row of MXFP4: n (a multiple of 32) values into n/32 of ggml's 17-byte blocks: the E8M0 scale
// code and the E2M1 codes of quant::mx_encode_block (the OCP rule, as `--quant rtn --quant-opt
// w=mxfp4` quantizes), element j in the low nibble of byte j and element j + 16 in its high nibble.
void quantize_mxfp4(const float* x, int64_t n, uint8_t* out);

struct GgufFile {
  nlohmann::json kv;  // scalars, strings and arrays as JSON
  struct TensorInfo {
    std::vector<uint64_t> ne;  // ggml order (innermost first)
    uint32_t type;
    Tensor data;               // as stored (f32 / f16 / bf16; Q8_0 and MXFP4 dequantized to f32), shape = reversed ne
  };
  std::map<std::string, TensorInfo> tensors;
};
GgufFile read_gguf(const std::string& path);  // throws "'path': problem"

}  // namespace clm
