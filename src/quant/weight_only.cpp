#include "quant/weight_only.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/cpu/quads.h"
#include "kernels/cpu/vec.h"
#include "quant/numfmt.h"

namespace clm::quant {

namespace {
float amax_of(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}
bool is_mx(const std::string& f) { return f == "mxfp4" || f == "mxfp8"; }
const MiniFloat* minifloat(const std::string& f) {
  if (f == "e4m3" || f == "mxfp8") return &kE4M3;
  if (f == "e5m2") return &kE5M2;
  if (f == "mxfp4" || f == "nvfp4") return &kE2M1;
  return nullptr;
}
}  // namespace

bool WeightOnlyFormat::w4a8_possible(const ElemSpec& w, const ElemSpec& act, int64_t cols) {
  const bool w4 = w.format == "mxfp4" || (w.format == "int4" && w.gran == Granularity::group && w.group == 32);
  return w4 && act.format == "int8" && act.gran == Granularity::group && act.group == 32 && cols > 0;
}

void WeightOnlyFormat::init(const ElemSpec& spec, int64_t rows, int64_t cols, const ElemSpec& act) {
  if (spec.format == "none") throw std::invalid_argument("weight-only format: no element format");
  if (act.format != "none" && !w4a8_possible(spec, act, cols))
    throw std::invalid_argument("W4A8 needs w=mxfp4 or int4/g32 and a=int8/g32 (got w=" + spec.str() + " a=" + act.str() + ")");
  spec_ = spec;
  act_ = act;
  rows_ = rows;
  cols_ = cols;
  block_ = spec.block() > 0 ? spec.block() : cols;
  nb_ = (cols + block_ - 1) / block_;
  nibbles_ = spec.format == "int4" || spec.format == "mxfp4" || spec.format == "nvfp4";
  row_bytes_ = nibbles_ ? (cols + 1) / 2 : cols;
  const MiniFloat* m = minifloat(spec.format);
  for (int c = 0; c < (nibbles_ ? 16 : 256); ++c) {
    if (m) lut_[c] = m->is_nan(uint8_t(c)) ? NAN : m->decode(uint8_t(c));
    else if (nibbles_) lut_[c] = float(c >= 8 ? c - 16 : c);  // int4: two's complement nibble
    else lut_[c] = float(int8_t(uint8_t(c)));
  }
  codes_.assign(size_t(rows * row_bytes_), 0);
  scales_.assign(size_t(rows * nb_), 0.0f);
  // the fused kernels: int8 codes, or 4-bit codes as int8 through a table; blocks of even length
  // (or one block) so that every block starts on a byte
  fused_ = (spec.format == "int8" || nibbles_) && (block_ % 2 == 0 || nb_ == 1);
  for (int c = 0; c < 16; ++c) lut4_[c] = m ? kernels::kE2M1Doubled[c] : int8_t(c >= 8 ? c - 16 : c);
  offset_ = m ? 12 : 8;  // the unsigned table for dot_w4a8: [0, 24] or [0, 15]
  for (int c = 0; c < 16; ++c) lutu_[c] = uint8_t(lut4_[c] + offset_);
}

// W4A8 keeps each full group of four rows interleaved (kernels/cpu/quads.h), so that a product
// reads one sequential stream.
// Its rows are padded with zero codes to a multiple of 32 elements (kp_), which the zero-padded
// activations multiply.
const uint8_t* WeightOnlyFormat::row_codes(int64_t r, std::vector<uint8_t>& buf) const {
  return interleaved_ ? kernels::quad_row(codes_.data(), rows_, kp_ / 2, r, buf) : codes_.data() + r * row_bytes_;
}

void WeightOnlyFormat::finish() {
  if (act_.format != "none" && !interleaved_) {
    kp_ = (cols_ + 31) / 32 * 32;
    std::vector<uint8_t> padded(size_t(rows_ * kp_ / 2), 0);
    for (int64_t r = 0; r < rows_; ++r) std::copy_n(codes_.data() + r * row_bytes_, row_bytes_, padded.data() + r * kp_ / 2);
    codes_.swap(padded);
    kernels::interleave_quads(codes_, rows_, kp_ / 2);
    interleaved_ = true;
  }
  // E2M1 is doubled in lut4_, so its kernels apply halved scales; every other format applies scales_
  kscales_.clear();
  if (minifloat(spec_.format) && nibbles_)
    for (float s : scales_) kscales_.push_back(s * 0.5f);
}

WeightOnlyFormat::WeightOnlyFormat(const Tensor& w, const ElemSpec& spec, std::shared_ptr<LayerReport> rep, std::string name,
                                   const ElemSpec& act)
    : QuantFormat(std::move(name), std::move(rep)) {
  init(spec, w.dim(0), w.dim(1), act);
  const float* p = w.data<float>();
  const int64_t K = cols_;
  const std::string& f = spec.format;
  const bool mx = is_mx(f), nv = f == "nvfp4";
  if (mx || nv) scale_codes_.assign(size_t(rows_ * nb_), 0);
  float tensor_amax = 0;
  for (int64_t e = 0; e < rows_ * K; ++e) {
    if (!std::isfinite(p[e])) throw std::invalid_argument("quantize: non-finite weight in '" + name_ + "'");
    tensor_amax = std::max(tensor_amax, std::fabs(p[e]));
  }
  if (nv) tensor_scale_ = nvfp4_tensor_scale(tensor_amax);
  const MiniFloat* m = minifloat(f);
  const int qmax = f == "int8" ? 127 : 7;
  std::vector<uint8_t> c(static_cast<size_t>(block_));
  for (int64_t r = 0; r < rows_; ++r) {
    uint8_t* row = codes_.data() + r * row_bytes_;
    for (int64_t b = 0; b < nb_; ++b) {
      const float* x = p + r * K + b * block_;
      const int n = int(std::min(block_, K - b * block_));
      float scale = 0;
      if (mx) {
        const uint8_t sc = mx_encode_block(*m, x, n, c.data());
        scale_codes_[size_t(r * nb_ + b)] = sc;
        scale = e8m0_decode(sc);
      } else if (nv) {
        const uint8_t sc = nvfp4_encode_block(x, n, tensor_scale_, c.data());
        scale_codes_[size_t(r * nb_ + b)] = sc;
        scale = kUE4M3.decode(sc) * tensor_scale_;
      } else {
        const float amax = spec.gran == Granularity::tensor ? tensor_amax : amax_of(x, n);
        scale = amax > 0 ? amax / (m ? m->max : float(qmax)) : 0.0f;
        for (int i = 0; i < n; ++i)
          c[i] = scale == 0 ? 0 : m ? m->encode(x[i] / scale) : uint8_t(int_encode(x[i], scale, qmax));
      }
      scales_[size_t(r * nb_ + b)] = scale;
      for (int i = 0; i < n; ++i) {
        const int64_t e = b * block_ + i;
        if (nibbles_) row[e / 2] = uint8_t(row[e / 2] | ((c[i] & 0xF) << (4 * (e % 2))));
        else row[e] = c[i];
      }
    }
  }
  finish();
}

void WeightOnlyFormat::decode_row(int64_t r, float* out) const {
  std::vector<uint8_t> buf;
  const uint8_t* row = row_codes(r, buf);
  const float* s = scales_.data() + r * nb_;
  for (int64_t b = 0; b < nb_; ++b) {
    const float d = s[b];
    const int64_t e1 = std::min(cols_, (b + 1) * block_);
    if (nibbles_)
      for (int64_t e = b * block_; e < e1; ++e) out[e] = lut_[(row[e / 2] >> (4 * (e % 2))) & 0xF] * d;
    else
      for (int64_t e = b * block_; e < e1; ++e) out[e] = lut_[row[e]] * d;
  }
}

void WeightOnlyFormat::dequantize(float* out) const {
  for (int64_t r = 0; r < rows_; ++r) decode_row(r, out + r * cols_);
}

// W4A8: each token's blocks of 32 to int8 by absmax / 127 (fake_quant's int8/g32, the same codes; a
// short last block as if zero-padded), with the sums dot_w4a8 needs to take the table's offset back
// out; then every row against every token, over kp_ elements (the padding multiplies zeros).
void WeightOnlyFormat::matmul_w4a8(const float* x, int64_t n, float* y) const {
  const auto& k = kernels::vec();
  const int64_t K = cols_, Kp = kp_, nb = Kp / 32;
  std::vector<int8_t> q(size_t(n * Kp), 0);
  std::vector<float> xs(size_t(n * nb));
  std::vector<int32_t> xb(size_t(n * Kp / 4));
  int64_t zeroed = 0, bad = 0;
  // tokens in parallel (a prompt's; an exception cannot leave the loop: counted, thrown below)
#pragma omp parallel for schedule(static) reduction(+ : zeroed, bad) if (n > 1 && n * K > (1 << 15))
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xr = x + t * K + b * 32;
      const int m = int(std::min<int64_t>(32, K - b * 32));
      int8_t* qr = q.data() + t * Kp + b * 32;
      const float amax = k.absmax(xr, m);
      const bool finite = std::isfinite(amax);
      bad += !finite;
      xs[size_t(t * nb + b)] = amax / 127.0f;
      if (amax > 0 && finite) zeroed += k.quantize_i8(xr, amax / 127.0f, qr, m).zeroed;
    }
    kernels::w4a8_offset_terms(q.data() + t * Kp, Kp, offset_, xb.data() + t * Kp / 4);
  }
  if (bad) throw std::invalid_argument("quantize: non-finite value in the input");
  rep_->zeroed += zeroed;
  rep_->elems += n * K;
  // MXFP4's scales stream as their E8M0 bytes (E2M1's doubling: the 0.5 after the sums); int4's as f32
  if (is_mx(spec_.format))
    kernels::gemv_w4a8_rows(codes_.data(), lutu_, {nullptr, scale_codes_.data(), kernels::ScaleCode::e8m0}, rows_, Kp, 32, q.data(),
                            xs.data(), xb.data(), n, 0.5f, y);
  else
    kernels::gemv_w4a8_rows(codes_.data(), lutu_, {scales_.data()}, rows_, Kp, 32, q.data(), xs.data(), xb.data(), n, 1.0f, y);
}

// Few tokens (decode): the fused kernels read the codes once per token. More: one decoded row
// serves every token.
void WeightOnlyFormat::matmul(const float* x, int64_t n, float* y) const {
  if (act_.format != "none") return matmul_w4a8(x, n, y);
  const auto& k = kernels::vec();
  const bool fused = fused_ && n <= 2;
#pragma omp parallel if (rows_ * cols_ > (1 << 15))
  {
    std::vector<float> w(fused ? 0 : static_cast<size_t>(cols_));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows_; ++r) {
      const uint8_t* c = codes_.data() + r * row_bytes_;
      const float* s = (kscales_.empty() ? scales_.data() : kscales_.data()) + r * nb_;
      if (fused) {
        for (int64_t t = 0; t < n; ++t)
          y[t * rows_ + r] = nibbles_ ? k.dot_w4(c, lut4_, s, block_, x + t * cols_, cols_)
                                      : k.dot_w8(reinterpret_cast<const int8_t*>(c), s, block_, x + t * cols_, cols_);
        continue;
      }
      decode_row(r, w.data());
      for (int64_t t = 0; t < n; ++t) y[t * rows_ + r] = k.dot(w.data(), x + t * cols_, cols_);
    }
  }
}

bool WeightOnlyFormat::store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const {
  Tensor c = Tensor::empty({rows_, row_bytes_}, DType::u8);  // the canonical row-major codes
  std::vector<uint8_t> buf;
  for (int64_t r = 0; r < rows_; ++r) std::copy_n(row_codes(r, buf), row_bytes_, c.data<uint8_t>() + r * row_bytes_);
  out.emplace_back(prefix + "codes", c);
  if (scale_codes_.empty()) {
    out.emplace_back(prefix + "scales", Tensor::from(scales_, {rows_, nb_}));
  } else {
    Tensor s = Tensor::empty({rows_, nb_}, DType::u8);
    std::copy(scale_codes_.begin(), scale_codes_.end(), s.data<uint8_t>());
    out.emplace_back(prefix + "scales", s);
  }
  meta = {{"kind", "weight-only"}, {"name", name_}, {"spec", spec_.str()}, {"rows", rows_}, {"cols", cols_},
          {"tensor_scale", tensor_scale_}, {"report", report_json(*rep_)}};
  if (act_.format != "none") meta["act"] = act_.str();
  return true;
}

std::unique_ptr<kernels::WeightFormat> WeightOnlyFormat::restore(const nlohmann::json& meta,
                                                                 const std::function<const Tensor&(const std::string&)>& tensor) {
  std::unique_ptr<WeightOnlyFormat> f(new WeightOnlyFormat());
  const auto [rows, cols] = f->restore_common(meta);
  f->init(ElemSpec::parse(meta.at("spec").get<std::string>()), rows, cols, ElemSpec::parse(meta.value("act", std::string("none"))));
  f->tensor_scale_ = meta.at("tensor_scale").get<float>();
  if (!(std::isfinite(f->tensor_scale_) && f->tensor_scale_ > 0)) throw std::runtime_error("tensor_scale must be finite and > 0");
  const Tensor& c = tensor("codes");
  if (c.dtype() != DType::u8 || c.shape() != Shape{rows, f->row_bytes_})
    throw std::runtime_error("codes must be u8 [" + std::to_string(rows) + ", " + std::to_string(f->row_bytes_) + "]");
  std::copy_n(c.data<uint8_t>(), c.numel(), f->codes_.data());
  const Tensor& s = tensor("scales");
  const std::string& fm = f->spec_.format;
  const bool coded = is_mx(fm) || fm == "nvfp4";
  if (s.shape() != Shape{rows, f->nb_} || s.dtype() != (coded ? DType::u8 : DType::f32))
    throw std::runtime_error(std::string("scales must be ") + (coded ? "u8" : "f32") + " [" + std::to_string(rows) + ", " +
                             std::to_string(f->nb_) + "]");
  for (int64_t i = 0; i < rows * f->nb_; ++i) {
    float v;
    if (coded) {
      const uint8_t sc = s.data<uint8_t>()[i];
      if (is_mx(fm) ? sc == 0xFF : kUE4M3.is_nan(sc)) throw std::runtime_error("a block scale is NaN");
      f->scale_codes_.push_back(sc);
      v = is_mx(fm) ? e8m0_decode(sc) : kUE4M3.decode(sc) * f->tensor_scale_;
    } else {
      v = s.data<float>()[i];
    }
    if (!(std::isfinite(v) && v >= 0)) throw std::runtime_error("a block scale is negative or not finite");
    f->scales_[size_t(i)] = v;
  }
  if (minifloat(fm) && !f->nibbles_)  // e4m3 / e5m2 / mxfp8 have NaN (and e5m2 Inf) codes
    for (uint8_t v : f->codes_)
      if (!std::isfinite(f->lut_[v])) throw std::runtime_error("a weight code is NaN or Inf");
  if (fm == "int8")
    for (uint8_t v : f->codes_)
      if (v == 0x80) throw std::runtime_error("a weight code is -128 (codes are in [-127, 127])");
  f->finish();
  return f;
}

namespace {
const bool reg = kernels::StoredFormats::get().add({"weight-only", WeightOnlyFormat::restore});
}  // namespace

}  // namespace clm::quant
