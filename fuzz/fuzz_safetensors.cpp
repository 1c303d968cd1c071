// safetensors: the in-memory parser and the memory-mapped loader on the same bytes; tensors that
// load are converted to f32 (reads every byte the header claims).
#include "common.h"
#include "formats/safetensors.h"

static void touch(const clm::SafeTensors& st) {
  for (auto& [name, t] : st.tensors)
    if (t.numel() <= (1 << 16)) (void)t.to(clm::DType::f32).contiguous();
  (void)st.find("x");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    touch(clm::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz"));
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  try {
    touch(clm::load_safetensors(clm_fuzz::file("model.safetensors", data, size)));
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
