#include "quant/checkpoint.h"

#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "formats/safetensors.h"
#include "models/io.h"
#include "util/fs.h"

namespace clm::quant {

using nlohmann::json;

void save_quantized(const std::string& dir, LanguageModel& model, const Tokenizer* tok, const QuantResult& q) {
  std::vector<std::pair<std::string, Tensor>> packed;
  json layers = json::object();
  std::set<std::string> stored;  // parameter names the packed forms replace
  model.linears([&](const std::string& name, nn::Linear& l) {
    if (!l.packed || !std::dynamic_pointer_cast<const QuantFormat>(l.packed)) return;
    json meta;
    if (!l.packed->store(name + ".", packed, meta))
      throw std::invalid_argument("'" + name + "' is quantized as " + l.packed->name() +
                                  ", which runs as fake-quant only and has no stored form; clm quantize saves the low-bit kernels' formats "
                                  "(kernel=int8, nvfp4, w4a8 or w-only; see clm eval --quant for the rest)");
    layers[name] = meta;
    stored.insert(name + ".weight");
  });
  if (layers.empty()) throw std::invalid_argument("save_quantized: the model has no quantized Linear");
  std::vector<std::pair<std::string, Tensor>> dense;
  for (auto& [n, t] : model.named_weights())
    if (!stored.count(n)) dense.emplace_back(n, t);
  std::filesystem::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", dense, {{"format", "compactlm"}});
  save_safetensors(dir + "/" + kQuantTensors, packed, {{"format", "compactlm-quant"}});
  write_file_atomic(dir + "/config.json", json(model.config()).dump(2) + "\n");
  if (tok) save_tokenizer(*tok, dir + "/tokenizer.json");
  const json out = {{"method", q.method}, {"options", q.options}, {"avg_w_bits", q.avg_w_bits}, {"avg_a_bits", q.avg_a_bits},
                    {"layers", layers}};
  write_file_atomic(dir + "/" + kQuantJson, out.dump(1) + "\n");
}

QuantResult loaded_quant_result(LanguageModel& model, const json& qj) {
  QuantResult r;
  r.method = qj.value("method", "");
  r.options = qj.value("options", json::object());
  r.avg_w_bits = qj.value("avg_w_bits", 32.0);
  r.avg_a_bits = qj.value("avg_a_bits", 32.0);
  model.linears([&](const std::string&, nn::Linear& l) {
    if (auto f = std::dynamic_pointer_cast<const QuantFormat>(l.packed); f && l.quantized) r.layers.push_back(f->report());
  });
  return r;
}

}  // namespace clm::quant
