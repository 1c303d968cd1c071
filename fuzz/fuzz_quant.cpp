// A quantized checkpoint's packed Linears (quant.json + quant.safetensors, quant/checkpoint.h): the
// input is a 4-byte little-endian length L, L bytes of quant.json, then quant.safetensors. Each
// Linear quant.json names is restored from its parts the way the loader does it (models/io.cpp);
// one that restores is dequantized and multiplied by a vector when it is small.
#include <cstring>
#include <map>

#include "common.h"
#include "formats/safetensors.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#include "quant/weight_only.h"

using namespace clm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t L;
  std::memcpy(&L, data, 4);
  if (L > size - 4) return 0;
  try {
    const nlohmann::json q = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data) + 4, L));
    SafeTensors st = parse_safetensors(std::string(reinterpret_cast<const char*>(data) + 4 + L, size - 4 - L), "quant.safetensors");
    std::map<std::string, const Tensor*> by_name;
    for (auto& [n, t] : st.tensors) by_name[n] = &t;
    if (!q.is_object() || !q.contains("layers") || !q["layers"].is_object()) return 0;
    for (auto it = q["layers"].begin(); it != q["layers"].end(); ++it) {
      const std::string name = it.key();
      const nlohmann::json& meta = it.value();
      auto tensor = [&](const std::string& suffix) -> const Tensor& {
        auto f = by_name.find(name + "." + suffix);
        if (f == by_name.end()) throw std::runtime_error("missing tensor '" + name + "." + suffix + "'");
        return *f->second;
      };
      try {
        if (!meta.is_object() || !meta.contains("kind") || !meta["kind"].is_string()) continue;
        const std::string kind = meta["kind"].get<std::string>();
        // by name, not through the registry: a static library keeps only what is referenced
        auto f = kind == "int8"          ? quant::Int8Format::restore(meta, tensor)
                 : kind == "nvfp4"       ? quant::Nvfp4Format::restore(meta, tensor)
                 : kind == "weight-only" ? quant::WeightOnlyFormat::restore(meta, tensor)
                                         : kernels::StoredFormats::get().at(kind).restore(meta, tensor);
        if (f->rows() * f->cols() > (1 << 16)) continue;
        std::vector<float> w(size_t(f->rows() * (f->cols() + 64))), x(size_t(f->cols()), 0.5f), y(size_t(f->rows()));
        f->dequantize(w.data());
        f->matmul(x.data(), 1, y.data());
      } catch (const std::exception& e) {
        clm_fuzz::note(e);
      }
    }
  } catch (const std::exception& e) {
    clm_fuzz::note(e);
  }
  return 0;
}
