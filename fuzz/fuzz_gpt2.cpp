// GPT-2's encoder.json + vocab.bpe: the input is split at its first NUL byte (encoder.json before,
// vocab.bpe after; no NUL: an empty vocab.bpe).
#include <cstring>

#include "common.h"
#include "tokenizers/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* sep = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t n1 = sep ? size_t(sep - data) : size;
  const std::string enc = clm_fuzz::file("encoder.json", data, n1);
  const std::string bpe = sep ? clm_fuzz::file("vocab.bpe", sep + 1, size - n1 - 1) : clm_fuzz::file("vocab.bpe", data, 0);
  std::unique_ptr<clm::BpeTokenizer> tok;
  try {
    tok = clm::BpeTokenizer::from_gpt2_files(enc, bpe);
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
    return 0;
  }
  clm_fuzz::workout(*tok);
  return 0;
}
