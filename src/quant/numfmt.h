// Low-bit number formats, bit-exact: element encodings (FP8 E4M3 / E5M2, FP4 E2M1, the E8M0 and
// unsigned-E4M3 block scales, symmetric INT8 / INT4) and the block formats built on them (OCP
// MXFP4 / MXFP8, NVIDIA NVFP4).
//
// Every encoder rounds to nearest, ties to even, and saturates: a finite value beyond the largest
// magnitude becomes that magnitude (the quantization convention; PyTorch's plain casts give NaN/Inf
// instead). Subnormals are encoded. NaN input gives the format's NaN code where it has one (E4M3
// 0x7F, E5M2 0x7F, E8M0 0xFF) and 0 where it has none (E2M1, INT): callers check inputs first.
#pragma once
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <string>

namespace clm::quant {

// A sign-magnitude minifloat with `ebits` exponent and `mbits` mantissa bits.
struct MiniFloat {
  int ebits, mbits, bias;
  float max;          // largest finite magnitude
  bool has_sign;
  bool ieee;          // E5M2: the all-ones exponent is Inf (mantissa 0) or NaN, as in IEEE 754
  uint8_t nan_code;   // the code a NaN input gets (0 where the format has none)
  uint8_t encode(float x) const;
  float decode(uint8_t code) const;
  int codes() const { return 1 << (ebits + mbits + (has_sign ? 1 : 0)); }
  bool is_nan(uint8_t code) const;
};

extern const MiniFloat kE4M3;   // OCP FP8 E4M3 ("fn"): bias 7, max 448, no Inf, NaN S.1111.111
extern const MiniFloat kE5M2;   // OCP FP8 E5M2: bias 15, max 57344, Inf/NaN as IEEE
extern const MiniFloat kE2M1;   // FP4: bias 1, magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}, no Inf/NaN
extern const MiniFloat kUE4M3;  // unsigned E4M3, NVFP4's block scale: 2^-9 .. 448

// E2M1 by comparisons with the midpoints (ties to the even code): kE2M1.encode's result, faster.
inline uint8_t e2m1_encode(float x) {
  const float a = x < 0 ? -x : x;
  const uint8_t m = uint8_t((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f));
  return uint8_t(m | (std::signbit(x) ? 8 : 0));
}

// UE4M3 (NVFP4's block scale) by bit arithmetic on the float: kUE4M3.encode's result for every
// input (NaN and negative values go to it), and the decoded value from a table.
uint8_t ue4m3_encode(float a);
float ue4m3_decode(uint8_t code);

// E8M0: an unbiased power of two 2^(code - 127), code 0xFF NaN (the MX shared scale).
uint8_t e8m0_encode_exponent(int e);  // clamps e to [-127, 127]
float e8m0_decode(uint8_t code);

// Symmetric integers: q = clamp(round_half_even(x / scale), -qmax, qmax), qmax = 127 or 7.
inline int int_qmax(int bits) { return (1 << (bits - 1)) - 1; }
int8_t int_encode(float x, float scale, int qmax);

// ---- block formats ----
// MX (OCP MX v1.0): 32 elements share X = 2^(floor(log2 amax) - emax_elem), elements saturate.
// elem is kE2M1 (MXFP4, emax 2) or kE4M3 (MXFP8, emax 8).
constexpr int kMxBlock = 32;
uint8_t mx_encode_block(const MiniFloat& elem, const float* x, int n, uint8_t* codes);  // returns the scale code
void mx_decode_block(const MiniFloat& elem, uint8_t scale, const uint8_t* codes, int n, float* out);

// NVFP4: 16 E2M1 elements share an unsigned E4M3 scale; one FP32 scale per tensor.
//   s_t = amax(tensor) / (6·448); sc = UE4M3(amax(block) / (6·s_t)); q = E2M1(x / (sc·s_t)).
constexpr int kNvBlock = 16;
float nvfp4_tensor_scale(float amax);  // s_t (1 for an all-zero tensor)
uint8_t nvfp4_block_scale(const float* x, int n, float s_t);                    // the scale code of a block
uint8_t nvfp4_encode_block(const float* x, int n, float s_t, uint8_t* codes);  // returns the scale code
void nvfp4_decode_block(uint8_t scale, float s_t, const uint8_t* codes, int n, float* out);

// ---- quantize-dequantize over a matrix, the accuracy reference ("fake quant") ----
// Element formats by name: int8, int4, e4m3, e5m2 (scaled to the range by absmax), mxfp4, mxfp8,
// nvfp4 (block formats, blocks along each row).
// Granularity of the scale for int / fp8: per tensor, per row (an output channel of a weight, a
// token of an activation) or per group of `group` consecutive elements of a row.
enum class Granularity { tensor, row, group };
struct ElemSpec {
  std::string format;  // int8 | int4 | e4m3 | e5m2 | mxfp4 | mxfp8 | nvfp4 | none
  Granularity gran = Granularity::row;
  int group = 128;
  static ElemSpec parse(const std::string& s);  // "int8", "int4/g128", "e4m3/tensor", "nvfp4"
  std::string str() const;
  double bits() const;   // average bits per element, scales included (f32 scales: 32 / group)
  int block() const;     // elements per scale along a row (0 = whole row or tensor)
};
// x [rows, cols] row-major, in place. Throws for a non-finite value. A row whose length is not a
// multiple of the block ends in a short block, quantized exactly as if it were zero-padded (zeros
// change no block maximum and encode to zero): Llama shapes such as d_ff 172 or 688 stay usable.
void fake_quant(const ElemSpec& spec, float* x, int64_t rows, int64_t cols);
// Same, and counts the elements that became zero from non-zero (the "quantization kernel").
// tensor_amax >= 0 replaces the tensor's own absmax in per-tensor scales (NVFP4's s_t, int/fp8 /tensor).
int64_t fake_quant_count_zeroed(const ElemSpec& spec, float* x, int64_t rows, int64_t cols, float tensor_amax = -1);

}  // namespace clm::quant
