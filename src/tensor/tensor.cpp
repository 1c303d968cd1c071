#include "tensor/tensor.h"

#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace clm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i32: return 4;
    case DType::i8: return 1;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "F32") return DType::f32;
  if (n == "f64" || n == "F64") return DType::f64;
  if (n == "bf16" || n == "BF16") return DType::bf16;
  if (n == "f16" || n == "F16") return DType::f16;
  if (n == "i32" || n == "I32") return DType::i32;
  if (n == "i8" || n == "I8") return DType::i8;
  if (n == "u8" || n == "U8") return DType::u8;
  throw std::invalid_argument("unknown dtype '" + n + "'");
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000 | man << 13;
  } else {
    u = sign | (exp + 112) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    man |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = 1u << (shift - 1), rest = man & ((1u << shift) - 1);
    uint32_t r = man >> shift;
    if (rest > half || (rest == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = uint32_t(exp) << 10 | man >> 13, rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) ++r;  // may carry into exponent: correct
  return uint16_t(sign | r);
}

// Training allocates and frees the same large activation buffers every step. glibc would serve
// each from a fresh mmap (page faults + zeroing every step); keeping them on the heap lets freed
// blocks be reused. Set once, before the first tensor.
static const bool g_malloc_tuned = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  (void)g_malloc_tuned;
  if (d == Device::cuda) {
    data = gpu::alloc(n ? n : 1);
    return;
  }
  size_t rounded = (n + 63) / 64 * 64;
  data = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!data) throw std::bad_alloc();
}
Storage::Storage(void* external, size_t n, std::shared_ptr<const void> own)
    : data(external), nbytes(n), owner(std::move(own)) {}
Storage::~Storage() {
  if (owner) return;
  if (device == Device::cuda)
    gpu::release(data, nbytes ? nbytes : 1);
  else
    std::free(data);
}

const char* device_name(Device d) { return d == Device::cuda ? "cuda" : "cpu"; }
Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  throw std::invalid_argument("unknown device '" + name + "' (expected cpu or cuda)");
}

static std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (int i = (int)s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape)
    if (d < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::external(void* data, const Shape& shape, DType dtype, std::shared_ptr<const void> owner) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(data, size_t(shape_numel(shape)) * dtype_size(dtype), std::move(owner));
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

void Tensor::check_dtype(DType want) const {
  if (!storage_) throw std::logic_error("access to an undefined tensor");
  if (want != dtype_)
    throw std::logic_error(std::string("tensor dtype is ") + dtype_name(dtype_) + ", accessed as " +
                           dtype_name(want));
}

Tensor Tensor::reshape(Shape s) const {
  if (!is_contiguous()) throw std::logic_error("reshape of a non-contiguous tensor");
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("reshape: more than one -1");
      infer = (int64_t)i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known ? numel() / known : 0;
  if (shape_numel(s) != numel())
    throw std::invalid_argument("reshape " + shape_str(shape_) + " -> " + shape_str(s));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int d, int64_t begin, int64_t end) const {
  if (d < 0) d += ndim();
  if (d < 0 || d >= ndim() || begin < 0 || end < begin || end > shape_[d])
    throw std::out_of_range("slice out of range on " + shape_str(shape_));
  Tensor t = *this;
  t.offset_ += begin * strides_[d];
  t.shape_[d] = end - begin;
  return t;
}

Tensor Tensor::transpose(int a, int b) const {
  if (a < 0) a += ndim();
  if (b < 0) b += ndim();
  Tensor t = *this;
  std::swap(t.shape_[a], t.shape_[b]);
  std::swap(t.strides_[a], t.strides_[b]);
  return t;
}

// Calls f(dst_offset_elems, src_offset_elems) for each element in row-major order of `shape`.
template <class F>
static void for_each_index(const Shape& shape, const std::vector<int64_t>& strides, F&& f) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int d = (int)shape.size() - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

static double load_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i8: return static_cast<const int8_t*>(base)[i];
    case DType::u8: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

static void store_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = (float)v; break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<uint16_t*>(base)[i] = f32_to_bf16((float)v); break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16((float)v); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = (int32_t)v; break;
    case DType::i8: static_cast<int8_t*>(base)[i] = (int8_t)v; break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = (uint8_t)v; break;
  }
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape_ != shape_)
    throw std::invalid_argument("copy_: shape " + shape_str(src.shape_) + " into " + shape_str(shape_));
  if (!is_contiguous()) throw std::logic_error("copy_ into a non-contiguous tensor");
  if (is_cuda() || src.is_cuda()) {
    if (src.dtype_ != dtype_ || !src.is_contiguous())
      throw std::logic_error(std::string("copy_ across devices needs one dtype and contiguous tensors, got ") +
                             dtype_name(src.dtype_) + " into " + dtype_name(dtype_));
    gpu::copy(raw(), device(), src.raw(), src.device(), nbytes());
    return;
  }
  if (src.dtype_ == dtype_ && src.is_contiguous()) {
    std::memcpy(raw(), src.raw(), nbytes());
    return;
  }
  void* dst = raw();
  const void* s = src.raw();
  DType st = src.dtype_, dt = dtype_;
  if (st == DType::bf16 && dt == DType::f32 && src.is_contiguous()) {  // hot path when loading
    const uint16_t* p = static_cast<const uint16_t*>(s);
    float* q = static_cast<float*>(dst);
    for (int64_t i = 0, n = numel(); i < n; ++i) q[i] = bf16_to_f32(p[i]);
    return;
  }
  for_each_index(src.shape_, src.strides_,
                 [&](int64_t di, int64_t si) { store_from_double(dst, dt, di, load_as_double(s, st, si)); });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  if (is_cuda() && !is_contiguous()) throw std::logic_error("clone of a non-contiguous device tensor");
  Tensor t = empty(shape_, dtype_, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to_device(Device d) const {
  if (d == device()) return *this;
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype_, d);
  t.copy_(src);
  return t;
}

Tensor Tensor::to(DType d) const {
  if (d == dtype_) return *this;
  if (is_cuda()) return cpu().to(d).to_device(Device::cuda);
  Tensor t = empty(shape_, d);
  t.copy_(*this);
  return t;
}

void Tensor::zero_() {
  if (!is_contiguous()) throw std::logic_error("zero_ on a non-contiguous tensor");
  if (is_cuda()) return gpu::zero(raw(), nbytes());
  std::memset(raw(), 0, nbytes());
}

void Tensor::fill_(double v) {
  if (!is_contiguous()) throw std::logic_error("fill_ on a non-contiguous tensor");
  if (is_cuda()) {
    Tensor h = empty(shape_, dtype_);
    h.fill_(v);
    return copy_(h);
  }
  for (int64_t i = 0, n = numel(); i < n; ++i) store_from_double(raw(), dtype_, i, v);
}

double Tensor::item() const {
  if (numel() != 1) throw std::logic_error("item() of a tensor with shape " + shape_str(shape_));
  if (is_cuda()) return cpu().item();
  return load_as_double(raw(), dtype_, 0);
}

double Tensor::at(int64_t i) const {
  if (!is_contiguous() || i < 0 || i >= numel()) throw std::out_of_range("Tensor::at");
  if (is_cuda()) return cpu().at(i);
  return load_as_double(raw(), dtype_, i);
}

}  // namespace clm
