// llama2.c tokenizer (.bin); a tokenizer that loads is exercised, with and without BOS/EOS.
#include "common.h"
#include "tokenizers/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const clm::Llama2cTokenizer tok = clm::Llama2cTokenizer::load(clm_fuzz::file("tokenizer.bin", data, size));
    clm_fuzz::workout(tok);
    (void)tok.decode(tok.encode_with("Once upon a time", true, true));
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
