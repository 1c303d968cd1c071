#include "quant/quant_format.h"

#include <stdexcept>

namespace clm::quant {

using nlohmann::json;

json report_json(const LayerReport& r) {
  return {{"name", r.name}, {"in", r.in}, {"k_eff", r.k_eff}, {"w_bits", r.w_bits}, {"a_bits", r.a_bits}};
}

std::shared_ptr<LayerReport> report_from_json(const json& meta) {
  auto r = std::make_shared<LayerReport>();
  try {
    const json& j = meta.at("report");
    r->name = j.at("name").get<std::string>();
    r->in = j.at("in").get<int64_t>();
    r->k_eff = j.at("k_eff").get<int64_t>();
    r->w_bits = j.at("w_bits").get<double>();
    r->a_bits = j.at("a_bits").get<double>();
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("bad report: ") + e.what());
  }
  if (r->in <= 0 || r->k_eff < r->in || !(r->w_bits > 0 && r->w_bits <= 64) || !(r->a_bits > 0 && r->a_bits <= 64))
    throw std::runtime_error("bad report: in, k_eff or bits out of range");
  return r;
}

std::pair<int64_t, int64_t> QuantFormat::restore_common(const nlohmann::json& meta) {
  const int64_t rows = meta.at("rows").get<int64_t>(), cols = meta.at("cols").get<int64_t>();
  if (rows <= 0 || cols <= 0) throw std::runtime_error("rows and cols must be > 0");
  name_ = meta.at("name").get<std::string>();
  rep_ = report_from_json(meta);
  return {rows, cols};
}

}  // namespace clm::quant
