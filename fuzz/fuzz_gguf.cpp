// GGUF (v3) reader.
#include "common.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clm::GgufFile g = clm::read_gguf(clm_fuzz::file("model.gguf", data, size));
    (void)g.kv.size();
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
