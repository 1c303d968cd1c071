// What every quantized Linear's weight format shares: its report (bits, the activations rounded to
// zero) and, for the formats with a stored form, the report's fixed fields in meta["report"]. Kept
// apart from the method registry (methods.h) so that the formats build on their own (fuzz/).
#pragma once
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/format.h"

namespace clm::quant {

// What one quantized Linear reports.
struct LayerReport {
  std::string name;
  int64_t in = 0, k_eff = 0;     // input channels, and after augmentation (ARCQuant: K + KE)
  double w_bits = 32, a_bits = 32;
  std::atomic<int64_t> zeroed{0}, elems{0};  // activation elements rounded to zero / quantized
  double kernel() const { return elems ? double(zeroed) / double(elems) : 0; }
};

// Every quantized Linear's format: what it reports (bits, activations rounded to zero). Formats with
// a stored form (store / restore: quantized checkpoints) keep the report's fixed fields in meta["report"].
class QuantFormat : public kernels::WeightFormat {
 public:
  const std::shared_ptr<LayerReport>& report() const { return rep_; }
  const std::string& name() const override { return name_; }

 protected:
  QuantFormat() = default;
  QuantFormat(std::string name, std::shared_ptr<LayerReport> rep) : name_(std::move(name)), rep_(std::move(rep)) {}
  // What every stored form's meta holds: sets name_ and rep_ (checked), returns {rows, cols} (> 0).
  std::pair<int64_t, int64_t> restore_common(const nlohmann::json& meta);
  std::string name_;
  std::shared_ptr<LayerReport> rep_;
};
nlohmann::json report_json(const LayerReport& r);
std::shared_ptr<LayerReport> report_from_json(const nlohmann::json& meta);  // meta["report"], checked

}  // namespace clm::quant
