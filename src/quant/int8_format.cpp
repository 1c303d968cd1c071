#include "quant/int8_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/vec.h"
#include "quant/numfmt.h"

namespace clm::quant {

// Where column j of row r lives in q_: rows in blocks of four, interleaved in chunks of 64 columns
// (the layout vec().dot4_i8 reads as one stream).
size_t Int8Format::at(int64_t r, int64_t j) const { return size_t((r / 4) * 4 * kp_ + ((j / 64) * 4 + r % 4) * 64 + j % 64); }

Int8Format::Int8Format(const Tensor& w, Act act, std::shared_ptr<LayerReport> rep, std::string name)
    : QuantFormat(std::move(name), std::move(rep)), act_(std::move(act)) {
  rows_ = w.dim(0);
  cols_ = w.dim(1);
  kp_ = (cols_ + 63) / 64 * 64;
  rp_ = (rows_ + 3) / 4 * 4;
  q_.assign(size_t(rp_ * kp_), 0);
  sw_.assign(size_t(rows_), 0.0f);
  const float* p = w.data<float>();
  for (int64_t r = 0; r < rows_; ++r) {
    float amax = 0;
    for (int64_t j = 0; j < cols_; ++j) amax = std::max(amax, std::fabs(p[r * cols_ + j]));
    if (amax == 0) continue;
    const float scale = amax / 127.0f;  // as fake_quant int8 per row
    sw_[size_t(r)] = scale;
    for (int64_t j = 0; j < cols_; ++j) q_[at(r, j)] = int_encode(p[r * cols_ + j], scale, 127);
  }
}

void Int8Format::dequantize(float* out) const {
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t j = 0; j < cols_; ++j) out[r * cols_ + j] = float(q_[at(r, j)]) * sw_[size_t(r)];
}

const uint8_t* Int8Format::panels() const {
  std::call_once(panels_once_, [this] {
    const int64_t np = (rp_ + 15) / 16;
    panels_.assign(size_t(np * 16 * kp_), 0x80);  // padding rows: weight 0, sign-flipped
    // A 64-column chunk of a panel is 1 KiB of output: the 16 rows' chunks (64 contiguous bytes each
    // in q_, at()) as 16 x 16 words, transposed, so that it is written in order.
#pragma omp parallel for schedule(static) if (rp_ * kp_ > (1 << 16))
    for (int64_t p = 0; p < np; ++p)
      for (int64_t c = 0; c < kp_; c += 64) {
        uint32_t* dst = reinterpret_cast<uint32_t*>(panels_.data() + p * 16 * kp_ + c * 16);
        for (int64_t j = 0; j < 16 && p * 16 + j < rp_; ++j) {
          uint32_t v[16];
          std::memcpy(v, q_.data() + at(p * 16 + j, c), 64);
          for (int g = 0; g < 16; ++g) dst[g * 16 + j] = v[g] ^ 0x80808080u;
        }
      }
  });
  return panels_.data();
}

void Int8Format::matmul(const float* x, int64_t n, float* y) const {
  const int64_t nt = n < 4 ? n : (n + 3) / 4 * 4;  // GEMM: tokens padded to four (their outputs are not stored)
  std::vector<int8_t> xq(size_t(nt * kp_), 0);
  std::vector<float> sx(size_t(n), 0.0f);
  std::vector<int32_t> xsum(size_t(nt), 0);  // each token's code sum (the VNNI tile's sign flip)
  int64_t zeroed = 0, bad = 0;
  const auto& k = kernels::vec();
  // Tokens are independent: a prompt's are quantized in parallel (serial, they were ~15% of a
  // one-thread 2048^3 product and more at two threads), each in two passes of the tier's kernels.
#pragma omp parallel if (n > 1 && n * cols_ > (1 << 15))
  {
    std::vector<float> tmp(act_.smooth.empty() ? 0 : static_cast<size_t>(cols_));
#pragma omp for schedule(static) reduction(+ : zeroed, bad)
    for (int64_t t = 0; t < n; ++t) {
      const float* xr = x + t * cols_;
      int8_t* qr = xq.data() + t * kp_;
      float amax = k.absmax(xr, cols_);
      if (!std::isfinite(amax)) {
        ++bad;  // (an exception cannot leave the parallel loop: thrown below)
        continue;
      }
      if (amax == 0) continue;
      int64_t sum = 0;
      if (act_.cross) {
        const float ta = float(std::pow(double(amax), act_.alpha)) / 127.0f;
        for (int64_t j = 0; j < cols_; ++j) {
          const float d = ta * act_.cw[size_t(j)];
          const float q = d > 0 ? std::clamp(std::nearbyint(xr[j] / d), -127.0f, 127.0f) : 0.0f;
          qr[j] = int8_t(q);
          sum += qr[j];
          zeroed += q == 0 && xr[j] != 0;
        }
        sx[size_t(t)] = ta;
      } else {
        const float* xs = xr;
        if (!act_.smooth.empty()) {
          amax = 0;
          for (int64_t j = 0; j < cols_; ++j) amax = std::max(amax, std::fabs(tmp[size_t(j)] = xr[j] / act_.smooth[size_t(j)]));
          xs = tmp.data();
          if (amax == 0) continue;
        }
        const float scale = amax / 127.0f;
        const kernels::I8Codes c = k.quantize_i8(xs, scale, qr, cols_);  // int_encode's codes, vectorised
        sum = c.sum;
        zeroed += c.zeroed;
        sx[size_t(t)] = scale;
      }
      if (n >= 4) xsum[size_t(t)] = int32_t(sum);
    }
  }
  if (bad) throw std::invalid_argument("quantize: non-finite value in the input");
  rep_->zeroed += zeroed;
  rep_->elems += n * cols_;
  const int64_t blocks = rp_ / 4;
  if (n < 4) {  // decode: one stream of weights per token
#pragma omp parallel for schedule(static) if (blocks * n * kp_ > (1 << 16))
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * 4;
      int32_t acc[4];
      for (int64_t t = 0; t < n; ++t) {
        k.dot4_i8(q_.data() + r0 * kp_, xq.data() + t * kp_, kp_, acc);
        for (int64_t r = 0; r < 4 && r0 + r < rows_; ++r) y[t * rows_ + r0 + r] = float(acc[r]) * sx[size_t(t)] * sw_[size_t(r0 + r)];
      }
    }
    return;
  }
  if (k.gemm_i8_panels && n >= kPanelTokens) {  // VNNI / AVX2: groups of four 16-row panels (64 rows, in L2) against every token
    const uint8_t* wp = panels();
    const int64_t np = (rp_ + 15) / 16, pgroups = (np + 3) / 4;
#pragma omp parallel for schedule(dynamic) if (blocks * n * kp_ > (1 << 16))
    for (int64_t g = 0; g < pgroups; ++g)
      k.gemm_i8_panels(wp + g * 4 * 16 * kp_, std::min<int64_t>(4, np - 4 * g), kp_, xq.data(), kp_, n, xsum.data(), sx.data(),
                       sw_.data() + g * 64, rows_ - g * 64, y + g * 64, rows_);
    return;
  }
  // GEMM: 4x4 tiles; a group of 16 row blocks (64 rows, in L2) meets every tile of four tokens (in L1)
  const int64_t groups = (blocks + 15) / 16;
#pragma omp parallel for schedule(dynamic) if (blocks * n * kp_ > (1 << 16))
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t t0 = 0; t0 < n; t0 += 4)
      for (int64_t b = g * 16; b < std::min(blocks, g * 16 + 16); ++b) {
        const int64_t r0 = b * 4;
        int32_t acc[16];
        k.gemm4x4_i8(q_.data() + r0 * kp_, xq.data() + t0 * kp_, kp_, kp_, xsum.data() + t0, acc);
        for (int64_t t = 0; t < 4 && t0 + t < n; ++t)
          for (int64_t r = 0; r < 4 && r0 + r < rows_; ++r)
            y[(t0 + t) * rows_ + r0 + r] = float(acc[4 * t + r]) * sx[size_t(t0 + t)] * sw_[size_t(r0 + r)];
      }
}

}  // namespace clm::quant

namespace clm::quant {

namespace {
Tensor floats(const std::vector<float>& v) { return Tensor::from(v, {int64_t(v.size())}); }
// A stored f32 vector of `n` finite positive values (smoothing scales, CrossQuant's c^(1-α)).
std::vector<float> positive(const Tensor& t, int64_t n, const char* what) {
  if (t.dtype() != DType::f32 || t.shape() != Shape{n}) throw std::runtime_error(std::string(what) + " must be f32 [" + std::to_string(n) + "]");
  std::vector<float> v(t.data<float>(), t.data<float>() + n);
  for (float x : v)
    if (!(std::isfinite(x) && x > 0)) throw std::runtime_error(std::string(what) + " holds a value that is not finite and > 0");
  return v;
}
}  // namespace

bool Int8Format::store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const {
  Tensor q = Tensor::empty({rows_, cols_}, DType::i8);
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t j = 0; j < cols_; ++j) q.data<int8_t>()[r * cols_ + j] = q_[at(r, j)];
  out.emplace_back(prefix + "q", q);
  out.emplace_back(prefix + "scales", floats(sw_));
  if (!act_.smooth.empty()) out.emplace_back(prefix + "smooth", floats(act_.smooth));
  if (act_.cross) out.emplace_back(prefix + "cw", floats(act_.cw));
  meta = {{"kind", "int8"}, {"name", name_}, {"rows", rows_}, {"cols", cols_}, {"smooth", !act_.smooth.empty()},
          {"cross", act_.cross}, {"alpha", act_.alpha}, {"report", report_json(*rep_)}};
  return true;
}

std::unique_ptr<kernels::WeightFormat> Int8Format::restore(const nlohmann::json& meta,
                                                           const std::function<const Tensor&(const std::string&)>& tensor) {
  std::unique_ptr<Int8Format> f(new Int8Format());
  std::tie(f->rows_, f->cols_) = f->restore_common(meta);
  f->act_.cross = meta.at("cross").get<bool>();
  f->act_.alpha = meta.at("alpha").get<double>();
  if (!(f->act_.alpha >= 0 && f->act_.alpha <= 1)) throw std::runtime_error("alpha must be in [0, 1]");
  f->kp_ = (f->cols_ + 63) / 64 * 64;
  f->rp_ = (f->rows_ + 3) / 4 * 4;
  const Tensor& q = tensor("q");
  if (q.dtype() != DType::i8 || q.shape() != Shape{f->rows_, f->cols_})
    throw std::runtime_error("q must be i8 [" + std::to_string(f->rows_) + ", " + std::to_string(f->cols_) + "]");
  f->q_.assign(size_t(f->rp_ * f->kp_), 0);
  for (int64_t r = 0; r < f->rows_; ++r)
    for (int64_t j = 0; j < f->cols_; ++j) {
      const int8_t v = q.data<int8_t>()[r * f->cols_ + j];
      if (v == -128) throw std::runtime_error("q holds -128 (codes are in [-127, 127])");
      f->q_[f->at(r, j)] = v;
    }
  const Tensor& s = tensor("scales");
  if (s.dtype() != DType::f32 || s.shape() != Shape{f->rows_}) throw std::runtime_error("scales must be f32 [" + std::to_string(f->rows_) + "]");
  f->sw_.assign(s.data<float>(), s.data<float>() + f->rows_);
  for (float v : f->sw_)
    if (!(std::isfinite(v) && v >= 0)) throw std::runtime_error("scales hold a value that is negative or not finite");
  if (meta.at("smooth").get<bool>()) f->act_.smooth = positive(tensor("smooth"), f->cols_, "smooth");
  if (f->act_.cross) f->act_.cw = positive(tensor("cw"), f->cols_, "cw");
  return f;
}

namespace {
const bool reg = kernels::StoredFormats::get().add({"int8", Int8Format::restore});
}  // namespace

}  // namespace clm::quant
