// llama2.c checkpoint (.bin): header checks against the file size, then the weights.
#include "common.h"
#include "formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clm::Llama2cCheckpoint ck = clm::read_llama2c_checkpoint(clm_fuzz::file("model.bin", data, size));
    ck.config.validate();
    (void)clm::is_plain_llama(ck.config);
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
