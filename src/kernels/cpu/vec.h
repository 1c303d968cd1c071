// Runtime-dispatched f32 vector primitives: the inner loops of norms, softmax, cross-entropy and
// decoding. One table per ISA; the best one the CPU supports is chosen once (first call), and the
// scalar table stays beside it as the reference every variant is tested against.
#pragma once
#include <cmath>
#include <cstdint>

namespace clm::kernels {

// Block-scale codes, one byte per block as the 4-bit formats store them: unsigned E4M3 (NVFP4) or
// E8M0 (OCP MX: 2^(e - 127)).
enum class ScaleCode : uint8_t { ue4m3, e8m0 };
// One code's value (the reference of VecKernels::decode_scales; quant/numfmt.h's decoders agree).
inline float decode_scale(uint8_t c, ScaleCode kind) {
  if (kind == ScaleCode::e8m0) return std::ldexp(1.0f, int(c) - 127);
  const int e = c >> 3, m = c & 7;
  return e ? std::ldexp(1.0f + float(m) / 8.0f, e - 7) : std::ldexp(float(m), -9);
}

struct I8Codes {
  int64_t sum = 0;     // of the codes
  int64_t zeroed = 0;  // non-zero inputs whose code is 0
};

struct VecKernels {
  const char* isa;
  float (*dot)(const float* x, const float* y, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);      // y += a*x
  void (*scale)(float a, float* x, int64_t n);                     // x *= a
  float (*max)(const float* x, int64_t n);                         // n >= 1
  float (*exp_sum)(const float* x, float shift, float* y, int64_t n);  // y = exp(x-shift); returns sum
  float (*sumsq)(const float* x, int64_t n);
  float (*dot_bf16)(const uint16_t* w, const float* x, int64_t n);  // w in bf16, x in f32
  // One panel of a PanelMatrix (panel.h) times x: out[r] = sum_i row_r[i] * x[i], r = 0..3, over
  // n columns (a multiple of 8). The panel holds 8-column chunks of 4x8 values, row after row.
  void (*panel4_f32)(const float* p, const float* x, int64_t n, float* out);
  void (*panel4_bf16)(const uint16_t* p, const float* x, int64_t n, float* out);
  // The same panel times four vectors x + k·ldx (k = 0..3): out[4k + r]. One pass over the panel
  // for the four (a decode batch: PanelMatrix::matmul), twice the products per weight load.
  void (*panel4x4_f32)(const float* p, const float* x, int64_t ldx, int64_t n, float* out);
  void (*panel4x4_bf16)(const uint16_t* p, const float* x, int64_t ldx, int64_t n, float* out);
  // np consecutive f32 panels (p + 4·n·q) times many vectors (prefill), the other way round:
  // out[(4q + r)·ldo + t] = row r of panel q · x_t, for t < nt (a multiple of lanes). x is packed
  // in tiles of gemm_tile vectors (the last one narrower), each tile column-major and contiguous:
  // vector t's column i is at xp[t0·n + i·w + t - t0], t0 = t's tile start, w = that tile's width.
  // Each weight is broadcast against a tile (the outer-product form BLAS uses), and columns go in
  // blocks whose slice of a tile stays in L1 while all np panels use it.
  void (*panel_gemm)(const float* p, int64_t np, const float* xp, int64_t n, int64_t nt, float* out, int64_t ldo);
  void (*widen_bf16)(const uint16_t* x, float* y, int64_t n);  // y = x as f32, exactly
  int64_t gemm_tile;  // vectors per panel_gemm tile (nt is a multiple of the ISA's lanes, not of this)
  int64_t lanes;      // nt's granularity
  // Four int8 rows times the int8 vector x over n columns (a multiple of 64): out[r] = sum_i
  // w_r[i] · x[i] in int32. The rows are interleaved in chunks of 64 columns, so that the kernel
  // reads one stream: columns 64c..64c+63 of row r at w + (4c + r)·64. Values in [-127, 127].
  void (*dot4_i8)(const int8_t* w, const int8_t* x, int64_t n, int32_t* out);
  // The same four rows times four int8 vectors x + t·ldx (t = 0..3): out[4t + r] (a 4x4 tile of a
  // GEMM: each weight load serves four tokens). xsum[t]: the sum of vector t's n values (the VNNI
  // tier needs it; the others ignore it).
  void (*gemm4x4_i8)(const int8_t* w, const int8_t* x, int64_t ldx, int64_t n, const int32_t* xsum, int32_t* out);
  // Symmetric INT8 codes: q[i] = clamp(round_half_even(x[i] / scale), ±127), scale > 0 (the
  // division and rounding of quant::int_encode, so both give the same codes); x finite. Returns the
  // codes' sum and how many non-zero x[i] got code 0 (the "quantization kernel"), counted on the way.
  I8Codes (*quantize_i8)(const float* x, float scale, int8_t* q, int64_t n);
  // NVFP4 activations: q[i] = the doubled E2M1 value (kE2M1Doubled, in [-12, 12]) nearest x[i] / d,
  // ties to even, saturating at ±6 — quant::e2m1_encode(x[i] / d) through kE2M1Doubled, the same
  // division; d > 0, x finite. Returns how many non-zero x[i] got code 0, counted on the way.
  int64_t (*quantize_e2m1)(const float* x, float d, int8_t* q, int64_t n);
  // out[i] = the value of block-scale code c[i], exactly (E4M3 subnormals and E8M0's 2^-127
  // included; E4M3's NaN code 0x7F and E8M0's 0xFF, which no encoder writes, are not values).
  void (*decode_scales)(const uint8_t* c, ScaleCode kind, float* out, int64_t n);
  // Weight-only rows (quant/weight_only.h) times f32 x over n elements in blocks of `block` (even;
  // the last may be shorter): sum_b scales[b] · sum_{i in b} v_i · x_i, where v_i = w[i] (dot_w8,
  // int8 codes) or lut[nibble i] (dot_w4; element 2k the low nibble of byte k, lut 16 int8 values).
  float (*dot_w8)(const int8_t* w, const float* scales, int64_t block, const float* x, int64_t n);
  float (*dot_w4)(const uint8_t* w, const int8_t* lut, const float* scales, int64_t block, const float* x, int64_t n);
  // 4-bit weights times int8 activations (W4A8, the design of llama.cpp's 4-bit x Q8_0 products, and
  // NVFP4 W4A4, whose activations are doubled E2M1 values in int8): 4-bit codes w (as dot_w4)
  // through lut, 16 unsigned values in [0, 127] (a signed table plus an offset), times int8 x with
  // |x| <= 127, in blocks of `block` = 16 or 32 (n a multiple of 32): sum_b ws[b]·xs[b]·(sum_{i in b}
  // lut[w_i]·x_i + sum_{j in b} xb[j]), where xb holds one int32 per 4 elements (i/4): the caller's
  // -offset·(x_4j + .. + x_4j+3), which takes the offset back out exactly.
  float (*dot_w4a8)(const uint8_t* w, const uint8_t* lut, const float* ws, const int8_t* x, const float* xs, const int32_t* xb, int64_t n,
                    int64_t block);
  // The same for four rows in the four-row layout (kernels/cpu/quads.h: one sequential stream; row
  // r's 32 bytes for elements 64c..64c+63 at w + 128·c + 32·r, a last 32 elements' 16 bytes at
  // w + 128·c + 16·r); their scales at ws + r·ldws; into out[r]. Each load of x, of its scales and
  // of xb serves four rows.
  void (*dot4_w4a8)(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, const float* xs,
                    const int32_t* xb, int64_t n, int64_t block, float* out);
  // The same four rows times four tokens (a prompt's tile): token t's values, scales and offset terms
  // at x + t·ldx, xs + t·ldxs, xb + t·ldxb; out[4t + r]. Each row's codes are expanded once for the
  // four tokens.
  void (*gemm4x4_w4a8)(const uint8_t* w, const uint8_t* lut, const float* ws, int64_t ldws, const int8_t* x, int64_t ldx, const float* xs,
                       int64_t ldxs, const int32_t* xb, int64_t ldxb, int64_t n, int64_t block, float* out);
  // The outer-product INT8 GEMM over panels (GemmI8Panels below): VNNI's dpbusd, AVX2's int16
  // vpmaddwd on blocks widened per call (kernels/cpu/i8_panels_avx2.h); nullptr for the scalar and
  // plain AVX-512 tiers, which use the 4x4 tiles.
  void (*gemm_i8_panels)(const uint8_t* wp, int64_t np, int64_t kp, const int8_t* x, int64_t ldx, int64_t nt, const int32_t* xsum,
                         const float* sx, const float* sw, int64_t rows, float* y, int64_t ldy);
  // max_i |x[i]| (0 for n = 0); NaN if any x[i] is Inf or NaN.
  float (*absmax)(const float* x, int64_t n);
};
// INT8 weights packed for the outer-product GEMM (Int8Format's prompts, VNNI and AVX2 tiers): panels of 16
// rows, each a sequence of 64-byte groups, group c holding columns 4c..4c+3 of the panel's rows
// (row j's four bytes at 4j), every byte sign-flipped (w + 128 as u8). gemm_i8_panels multiplies np
// consecutive panels (np <= 4; kp columns, a multiple of 64; panel q at wp + q·16·kp) by tokens
// x + t·ldx (t < nt; xsum[t] the sum of token t's codes, which takes the 128s back out) and writes
// y[t·ldy + n] = float(w_n·x_t)·sx[t]·sw[n] for n < rows: the 4x4 tile's arithmetic, so the same
// floats. Each token's four bytes are broadcast against 16 rows at once: no horizontal sums.
using GemmI8Panels = void (*)(const uint8_t* wp, int64_t np, int64_t kp, const int8_t* x, int64_t ldx, int64_t nt, const int32_t* xsum,
                              const float* sx, const float* sw, int64_t rows, float* y, int64_t ldy);

// The doubled E2M1 value of each 4-bit code (bit 3 the sign): the int8 set the NVFP4 kernels multiply.
inline constexpr int8_t kE2M1Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

const VecKernels& vec();           // best for this CPU (CLM_ISA=scalar|avx2|avx512 overrides)
const VecKernels& vec_scalar();
// Makes `k` the table vec() returns (nullptr: back to the CPU's best). For the kernel cross-check
// harness and benchmarks; not thread-safe, call it outside parallel work.
void set_vec(const VecKernels* k);
const VecKernels* vec_avx2();      // nullptr if the CPU lacks AVX2+FMA
const VecKernels* vec_avx512();    // nullptr if the CPU lacks AVX-512F/BW/VL
const VecKernels* vec_avx512vnni();  // AVX-512 with VNNI's int8 dot products; nullptr without

}  // namespace clm::kernels
