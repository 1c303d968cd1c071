#include "kernels/format.h"

#include <stdexcept>

namespace clm::kernels {

FormatRegistry& FormatRegistry::get() {
  static FormatRegistry r;
  return r;
}

bool FormatRegistry::add(FormatInfo f) {
  for (auto& e : formats_)
    if (e.name == f.name) throw std::logic_error("weight format '" + f.name + "' registered twice");
  formats_.push_back(std::move(f));
  return true;
}

const FormatInfo& FormatRegistry::at(const std::string& name) const {
  for (auto& e : formats_)
    if (e.name == name) return e;
  std::string known;
  for (auto& e : formats_) known += (known.empty() ? "" : ", ") + e.name;
  throw std::invalid_argument("unknown weight format '" + name + "' (known: " + known + ")");
}

std::vector<std::string> FormatRegistry::names() const {
  std::vector<std::string> v;
  for (auto& e : formats_) v.push_back(e.name);
  return v;
}

StoredFormats& StoredFormats::get() {
  static StoredFormats r;
  return r;
}

bool StoredFormats::add(StoredFormat f) {
  for (auto& e : kinds_)
    if (e.kind == f.kind) throw std::logic_error("stored format '" + f.kind + "' registered twice");
  kinds_.push_back(std::move(f));
  return true;
}

const StoredFormat& StoredFormats::at(const std::string& kind) const {
  for (auto& e : kinds_)
    if (e.kind == kind) return e;
  std::string known;
  for (auto& e : kinds_) known += (known.empty() ? "" : ", ") + e.kind;
  throw std::invalid_argument("unknown stored weight format '" + kind + "' (known: " + known + ")");
}

std::unique_ptr<WeightFormat> pack_weight(const std::string& format, const Tensor& w) {
  const FormatInfo& f = FormatRegistry::get().at(format);
  if (w.shape().size() != 2) throw std::invalid_argument("pack: weights must be a matrix");
  return f.pack(w.contiguous());
}

}  // namespace clm::kernels
