// tokenizer.json through load_tokenizer: Hugging Face BPE (byte-level and SentencePiece-style),
// CompactLM's "llama2c", "word" and "byte" forms; tokenizers that load are exercised.
// ("sentencepiece" names a model file by path: left out, it would load arbitrary files.)
#include <nlohmann/json.hpp>

#include "common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto j = nlohmann::json::parse(data, data + size);
    if (j.is_object() && j.contains("type") && j["type"] == "sentencepiece") return 0;
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  std::unique_ptr<clm::Tokenizer> tok;
  try {
    tok = clm::load_tokenizer(clm_fuzz::file("tokenizer.json", data, size));
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
    return 0;
  }
  clm_fuzz::workout(*tok);
  return 0;
}
