// config.json: CompactLM's own form (ModelConfig from_json + validate, then a to_json round trip)
// and a Hugging Face config.json converted by hf_config_to_model_config.
#include <nlohmann/json.hpp>

#include "common.h"
#include "formats/hf.h"
#include "nn/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    clm::ModelConfig c = nlohmann::json::parse(text).get<clm::ModelConfig>();
    c.validate();
    (void)c.hd();
    nlohmann::json j = c;
    clm::ModelConfig back = j.get<clm::ModelConfig>();
    back.validate();
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  try {
    std::string type;
    clm::ModelConfig c = clm::hf_config_to_model_config(text, "fuzz", &type);
    c.validate();
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
