// Tensor: a typed, strided view onto shared storage.
// Math runs in f32 (fast path) and f64 (reference / gradient checks); bf16 and f16 are storage
// formats for loading checkpoints and are converted with to().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace clm {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i8, u8 };  // i8 / u8: packed quantized codes

size_t dtype_size(DType t);
const char* dtype_name(DType t);      // "f32", ...
DType dtype_from_name(const std::string& name);  // throws on unknown

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3]"

// Number-format helpers (round-to-nearest-even on the way down).
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// 64-byte aligned, uninitialised bytes -- or a window onto memory owned elsewhere (a memory-mapped
// file), kept alive by `owner` -- or uninitialised bytes on a CUDA device (device.h).
struct Storage {
  explicit Storage(size_t nbytes, Device device = Device::cpu);
  Storage(void* external, size_t nbytes, std::shared_ptr<const void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;  // set for external memory
  Device device = Device::cpu;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  // A contiguous tensor over external memory (no copy); `owner` keeps that memory alive.
  static Tensor external(void* data, const Shape& shape, DType dtype, std::shared_ptr<const void> owner);
  template <class T>
  static Tensor from(const std::vector<T>& values, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>());
    if ((int64_t)values.size() != t.numel()) throw std::invalid_argument("Tensor::from: size mismatch");
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int ndim() const { return (int)shape_.size(); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }
  bool is_contiguous() const;
  // A device tensor's data() is a device pointer: only kernels of that device may read it.
  Device device() const { return storage_ ? storage_->device : Device::cpu; }
  bool is_cuda() const { return device() == Device::cuda; }

  template <class T> T* data() {
    check_dtype(dtype_of<T>());
    return reinterpret_cast<T*>(raw());
  }
  template <class T> const T* data() const {
    check_dtype(dtype_of<T>());
    return reinterpret_cast<const T*>(raw());
  }
  void* raw() { return static_cast<char*>(storage_->data) + offset_ * dtype_size(dtype_); }
  const void* raw() const { return static_cast<const char*>(storage_->data) + offset_ * dtype_size(dtype_); }

  // Views share storage.
  Tensor reshape(Shape shape) const;                    // contiguous only; one -1 allowed
  Tensor slice(int dim, int64_t begin, int64_t end) const;
  Tensor transpose(int a, int b) const;

  // Copies. On a device, copies keep the dtype (to() of another dtype runs on the host).
  Tensor to_device(Device d) const;  // itself when already there; contiguous otherwise
  Tensor cpu() const { return to_device(Device::cpu); }
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;  // converts through f64/f32

  void zero_();
  void fill_(double v);
  void copy_(const Tensor& src);  // same shape; converts dtype (host); across devices: same dtype, contiguous
  double item() const;            // single element, any float dtype
  double at(int64_t flat_index) const;  // contiguous only; for tests and tools
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }
  bool external() const { return storage_ && storage_->owner; }  // a window onto memory owned elsewhere (a mapped file)

 private:
  void check_dtype(DType want) const;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape shape_;
  std::vector<int64_t> strides_;  // in elements
  DType dtype_ = DType::f32;
};

}  // namespace clm
