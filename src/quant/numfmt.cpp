#include "quant/numfmt.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace clm::quant {

const MiniFloat kE4M3{4, 3, 7, 448.0f, true, false, 0x7F};
const MiniFloat kE5M2{5, 2, 15, 57344.0f, true, true, 0x7F};
const MiniFloat kE2M1{2, 1, 1, 6.0f, true, false, 0x00};
const MiniFloat kUE4M3{4, 3, 7, 448.0f, false, false, 0x7F};

namespace {
int exponent_of(double a) {  // floor(log2 a) for a > 0
  int e;
  std::frexp(a, &e);
  return e - 1;
}
}  // namespace

uint8_t MiniFloat::encode(float x) const {
  if (std::isnan(x)) return nan_code;
  const uint8_t sign = has_sign && std::signbit(x) ? uint8_t(1u << (ebits + mbits)) : uint8_t(0);
  if (!has_sign && x < 0) return 0;
  const double a = std::fabs(double(x));
  if (a == 0) return sign;
  const int emin = 1 - bias;
  // The quantum of a's binade (or of the subnormal range); a / q is exact in double.
  const double q = std::ldexp(1.0, std::max(exponent_of(a), emin) - mbits);
  const double v = std::min(double(max), std::nearbyint(a / q) * q);  // ties to even; saturate
  if (v == 0) return sign;
  const int ev = exponent_of(v);
  if (ev < emin) return uint8_t(sign | uint8_t(v / std::ldexp(1.0, emin - mbits)));  // subnormal
  const uint32_t mant = uint32_t(v / std::ldexp(1.0, ev - mbits)) - (1u << mbits);
  return uint8_t(sign | uint8_t((uint32_t(ev + bias) << mbits) | mant));
}

bool MiniFloat::is_nan(uint8_t code) const {
  const uint32_t ef = (code >> mbits) & ((1u << ebits) - 1), mf = code & ((1u << mbits) - 1);
  if (ieee) return ef == (1u << ebits) - 1 && mf != 0;
  return nan_code != 0 && (code & ((1u << (ebits + mbits)) - 1)) == (nan_code & ((1u << (ebits + mbits)) - 1));
}

float MiniFloat::decode(uint8_t code) const {
  const uint32_t ef = (code >> mbits) & ((1u << ebits) - 1), mf = code & ((1u << mbits) - 1);
  const bool neg = has_sign && ((code >> (ebits + mbits)) & 1);
  double v;
  if (is_nan(code)) return std::numeric_limits<float>::quiet_NaN();
  if (ieee && ef == (1u << ebits) - 1) v = std::numeric_limits<double>::infinity();
  else if (ef == 0) v = std::ldexp(double(mf), 1 - bias - mbits);
  else v = std::ldexp(1.0 + std::ldexp(double(mf), -mbits), int(ef) - bias);
  return float(neg ? -v : v);
}

uint8_t ue4m3_encode(float a) {
  if (!(a >= 0) || std::isinf(a)) return kUE4M3.encode(a);  // NaN, negative, Inf: the generic rules
  if (a < 0x1p-6f) return uint8_t(std::nearbyint(a * 512.0f));  // subnormal: multiples of 2^-9 (8: the smallest normal)
  uint32_t b;
  std::memcpy(&b, &a, 4);
  b += 0x7FFFFu + ((b >> 20) & 1u);  // round the 23 mantissa bits to 3, ties to even (a carry bumps the exponent)
  const int32_t e = int32_t(b >> 23) - 127 + 7;
  const uint32_t code = (uint32_t(e) << 3) | ((b >> 20) & 7u);
  return uint8_t(e > 15 || code > 0x7E ? 0x7E : code);  // saturate at 448 (0x7F is NaN)
}

float ue4m3_decode(uint8_t code) {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[size_t(c)] = kUE4M3.decode(uint8_t(c));
    return t;
  }();
  return table[code];
}

uint8_t e8m0_encode_exponent(int e) { return uint8_t(std::clamp(e, -127, 127) + 127); }
float e8m0_decode(uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(code) - 127);
}

int8_t int_encode(float x, float scale, int qmax) {
  if (std::isnan(x)) return 0;
  const float q = std::nearbyint(x / scale);
  return int8_t(std::clamp(q, float(-qmax), float(qmax)));
}

namespace {
float amax_of(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}
int emax_of(const MiniFloat& f) { return exponent_of(f.max); }
}  // namespace

uint8_t mx_encode_block(const MiniFloat& elem, const float* x, int n, uint8_t* codes) {
  const float amax = amax_of(x, n);
  // X = 2^(floor(log2 amax) - emax_elem); an all-zero block takes the smallest scale.
  const uint8_t sc = amax > 0 ? e8m0_encode_exponent(exponent_of(amax) - emax_of(elem)) : uint8_t(0);
  const int se = int(sc) - 127;
  for (int i = 0; i < n; ++i) codes[i] = elem.encode(float(std::ldexp(double(x[i]), -se)));
  return sc;
}

void mx_decode_block(const MiniFloat& elem, uint8_t scale, const uint8_t* codes, int n, float* out) {
  const int se = int(scale) - 127;
  for (int i = 0; i < n; ++i) out[i] = float(std::ldexp(double(elem.decode(codes[i])), se));
}

float nvfp4_tensor_scale(float amax) { return amax > 0 ? amax / (6.0f * 448.0f) : 1.0f; }

uint8_t nvfp4_block_scale(const float* x, int n, float s_t) {
  const uint8_t sc = ue4m3_encode(amax_of(x, n) / (6.0f * s_t));
  return sc == 0 ? uint8_t(1) : sc;  // clamp to the smallest subnormal scale, 2^-9
}

uint8_t nvfp4_encode_block(const float* x, int n, float s_t, uint8_t* codes) {
  const uint8_t sc = nvfp4_block_scale(x, n, s_t);
  const float d = ue4m3_decode(sc) * s_t;
  for (int i = 0; i < n; ++i) codes[i] = e2m1_encode(x[i] / d);
  return sc;
}

void nvfp4_decode_block(uint8_t scale, float s_t, const uint8_t* codes, int n, float* out) {
  const float d = kUE4M3.decode(scale) * s_t;
  for (int i = 0; i < n; ++i) out[i] = kE2M1.decode(codes[i]) * d;
}

// ---- ElemSpec ----
ElemSpec ElemSpec::parse(const std::string& s) {
  ElemSpec e;
  const size_t slash = s.find('/');
  e.format = s.substr(0, slash);
  static const char* known[] = {"none", "int8", "int4", "e4m3", "e5m2", "mxfp4", "mxfp8", "nvfp4"};
  if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return e.format == k; }) == std::end(known))
    throw std::invalid_argument("unknown number format '" + e.format +
                                "' (known: none, int8, int4, e4m3, e5m2, mxfp4, mxfp8, nvfp4)");
  if (slash != std::string::npos) {
    const std::string g = s.substr(slash + 1);
    if (e.block() > 0) throw std::invalid_argument("'" + s + "': " + e.format + " has a fixed block size");
    if (g == "tensor") e.gran = Granularity::tensor;
    else if (g == "row") e.gran = Granularity::row;
    else if (g.size() > 1 && g[0] == 'g' && g.find_first_not_of("0123456789", 1) == std::string::npos && g.size() < 8) {
      e.gran = Granularity::group;
      e.group = std::stoi(g.substr(1));
      if (e.group <= 0) throw std::invalid_argument("'" + s + "': group size must be > 0");
    } else {
      throw std::invalid_argument("'" + s + "': granularity must be tensor, row or g<N>");
    }
  }
  return e;
}

int ElemSpec::block() const {
  if (format == "mxfp4" || format == "mxfp8") return kMxBlock;
  if (format == "nvfp4") return kNvBlock;
  return gran == Granularity::group ? group : 0;
}

std::string ElemSpec::str() const {
  if (format == "none" || (block() > 0 && gran != Granularity::group)) return format;
  if (gran == Granularity::tensor) return format + "/tensor";
  if (gran == Granularity::group) return format + "/g" + std::to_string(group);
  return format + "/row";
}

double ElemSpec::bits() const {
  if (format == "none") return 32;
  if (format == "mxfp4") return 4.25;
  if (format == "mxfp8") return 8.25;
  if (format == "nvfp4") return 4.5;
  const double b = format == "int4" ? 4 : 8;
  return gran == Granularity::group ? b + 32.0 / group : b;
}

namespace {
// Quantize-dequantize one run of n values sharing one scale (int / fp8 scaled by absmax).
void fq_scaled(const std::string& f, float* x, int64_t n, float amax) {
  if (amax == 0) return;
  if (f == "int8" || f == "int4") {
    const int qmax = f == "int8" ? 127 : 7;
    const float scale = amax / float(qmax);
    for (int64_t i = 0; i < n; ++i) x[i] = float(int_encode(x[i], scale, qmax)) * scale;
  } else {
    const MiniFloat& m = f == "e4m3" ? kE4M3 : kE5M2;
    const float scale = amax / m.max;
    for (int64_t i = 0; i < n; ++i) x[i] = m.decode(m.encode(x[i] / scale)) * scale;
  }
}

void fq_row(const ElemSpec& s, float* x, int64_t cols, float tensor_amax) {
  if (s.format == "mxfp4" || s.format == "mxfp8") {
    const MiniFloat& m = s.format == "mxfp4" ? kE2M1 : kE4M3;
    uint8_t codes[kMxBlock];
    for (int64_t b = 0; b < cols; b += kMxBlock) {  // a short last block: as if zero-padded
      const int n = int(std::min<int64_t>(kMxBlock, cols - b));
      const uint8_t sc = mx_encode_block(m, x + b, n, codes);
      mx_decode_block(m, sc, codes, n, x + b);
    }
  } else if (s.format == "nvfp4") {
    const float st = nvfp4_tensor_scale(tensor_amax);
    uint8_t codes[kNvBlock];
    for (int64_t b = 0; b < cols; b += kNvBlock) {
      const int n = int(std::min<int64_t>(kNvBlock, cols - b));
      const uint8_t sc = nvfp4_encode_block(x + b, n, st, codes);
      nvfp4_decode_block(sc, st, codes, n, x + b);
    }
  } else if (s.gran == Granularity::group) {
    for (int64_t b = 0; b < cols; b += s.group) {
      const int64_t n = std::min<int64_t>(s.group, cols - b);
      fq_scaled(s.format, x + b, n, amax_of(x + b, n));
    }
  } else {
    fq_scaled(s.format, x, cols, s.gran == Granularity::tensor ? tensor_amax : amax_of(x, cols));
  }
}
}  // namespace

int64_t fake_quant_count_zeroed(const ElemSpec& s, float* x, int64_t rows, int64_t cols, float amax_given) {
  if (s.format == "none") return 0;
  const int64_t n = rows * cols;
  float tensor_amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) throw std::invalid_argument("quantize: non-finite value in the input");
    tensor_amax = std::max(tensor_amax, std::fabs(x[i]));
  }
  if (amax_given >= 0) tensor_amax = amax_given;
  int64_t zeroed = 0;
#pragma omp parallel for reduction(+ : zeroed) schedule(static) if (n > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    int64_t nz = 0;
    for (int64_t c = 0; c < cols; ++c) nz += row[c] != 0;
    fq_row(s, row, cols, tensor_amax);
    for (int64_t c = 0; c < cols; ++c) nz -= row[c] != 0;
    zeroed += nz;
  }
  return zeroed;
}

void fake_quant(const ElemSpec& s, float* x, int64_t rows, int64_t cols) { fake_quant_count_zeroed(s, x, rows, cols); }

}  // namespace clm::quant
