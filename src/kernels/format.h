// Weight formats: how a Linear's weight matrix [rows, cols] is stored for inference, and the
// kernels that multiply by it. A format is chosen by name from a registry; each entry says which
// activation format its kernels pair with (as ggml pairs Q4_0 with Q8_0). Training keeps dense f32
// master weights in the module; a packed copy is made for inference (Linear::pack).
//
// To add a format (e.g. a quantized one): one file with a WeightFormat subclass (matmul for any
// number of rows, dequantize, bytes), one FormatRegistry::add line, one row in the kernel
// cross-check table (tests/test_formats.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace clm::kernels {

class WeightFormat {
 public:
  virtual ~WeightFormat() = default;
  // y[n, rows] = x[n, cols] · Wᵀ. n == 1 is the matrix-vector (decode) path, n > 1 batched (prefill).
  virtual void matmul(const float* x, int64_t n, float* y) const = 0;
  virtual void dequantize(float* out) const = 0;  // row-major [rows, cols]
  virtual size_t bytes() const = 0;               // storage read per product
  virtual const std::string& name() const = 0;
  // A quantized checkpoint's stored form: the format's own tensors (codes, scales, channel order),
  // named `prefix` + a suffix, and what else rebuilds it (meta["kind"] names the StoredFormats
  // entry). false: a format with no stored form (f32 / bf16 are stored as the dense weight instead).
  virtual bool store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const {
    (void)prefix, (void)out, (void)meta;
    return false;
  }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  double bits_per_weight() const { return 8.0 * double(bytes()) / double(rows_ * cols_); }

 protected:
  int64_t rows_ = 0, cols_ = 0;
};

struct FormatInfo {
  std::string name;
  std::string activation;  // the activation format its kernels consume ("f32")
  std::string about;
  // w: [rows, cols], contiguous, f32 or a checkpoint's bf16 / f16. A format may keep a reference to
  // it (Tensors share storage): f32 does, to run batched products through BLAS on an f32 original.
  std::function<std::unique_ptr<WeightFormat>(const Tensor& w)> pack;
};

class FormatRegistry {
 public:
  static FormatRegistry& get();
  bool add(FormatInfo f);
  const FormatInfo& at(const std::string& name) const;  // throws naming the known formats
  std::vector<std::string> names() const;

 private:
  std::vector<FormatInfo> formats_;
};

// Formats rebuilt from a quantized checkpoint (WeightFormat::store): kind -> restore(meta, tensor),
// where tensor(suffix) returns the stored tensor prefix + suffix or throws naming it. restore checks
// every shape and value it reads: a checkpoint may be corrupt.
struct StoredFormat {
  std::string kind;
  std::function<std::unique_ptr<WeightFormat>(const nlohmann::json& meta, const std::function<const Tensor&(const std::string&)>& tensor)>
      restore;
};
class StoredFormats {
 public:
  static StoredFormats& get();
  bool add(StoredFormat f);
  const StoredFormat& at(const std::string& kind) const;  // throws naming the known kinds

 private:
  std::vector<StoredFormat> kinds_;
};

// Packs a row-major matrix [rows, cols] (f32, bf16 or f16) into the named format.
std::unique_ptr<WeightFormat> pack_weight(const std::string& format, const Tensor& w);

}  // namespace clm::kernels
