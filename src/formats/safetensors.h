// safetensors: 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw bytes. The reader trusts nothing: every offset, length, dtype and shape is checked
// against the file before a byte is touched.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace clm {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  const Tensor& get(const std::string& name, const std::string& file = "") const;  // throws if missing
  const Tensor* find(const std::string& name) const;
};

// Throws std::runtime_error("'path': problem").
SafeTensors parse_safetensors(const std::string& bytes, const std::string& path_for_errors);
SafeTensors load_safetensors(const std::string& path);
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});  // atomic

}  // namespace clm
