#include "quant/int8_format.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/cpu/vec.h"
#include "quant/numfmt.h"

namespace clm::quant {

Int8Format::Int8Format(const Tensor& w, Act act, std::shared_ptr<LayerReport> rep, std::string name)
    : act_(std::move(act)), rep_(std::move(rep)), name_(std::move(name)) {
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
    for (int64_t j = 0; j < cols_; ++j) q_[size_t(r * kp_ + j)] = int_encode(p[r * cols_ + j], scale, 127);
  }
}

void Int8Format::dequantize(float* out) const {
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t j = 0; j < cols_; ++j) out[r * cols_ + j] = float(q_[size_t(r * kp_ + j)]) * sw_[size_t(r)];
}

void Int8Format::matmul(const float* x, int64_t n, float* y) const {
  std::vector<int8_t> xq(size_t(n * kp_), 0);
  std::vector<float> sx(size_t(n), 0.0f);
  std::vector<float> tmp(static_cast<size_t>(cols_));
  int64_t zeroed = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* xr = x + t * cols_;
    int8_t* qr = xq.data() + t * kp_;
    float amax = 0;
    for (int64_t j = 0; j < cols_; ++j) {
      if (!std::isfinite(xr[j])) throw std::invalid_argument("quantize: non-finite value in the input");
      amax = std::max(amax, std::fabs(xr[j]));
    }
    if (amax == 0) continue;
    if (act_.cross) {
      const float ta = float(std::pow(double(amax), act_.alpha)) / 127.0f;
      for (int64_t j = 0; j < cols_; ++j) {
        const float d = ta * act_.cw[size_t(j)];
        const float q = d > 0 ? std::clamp(std::nearbyint(xr[j] / d), -127.0f, 127.0f) : 0.0f;
        qr[j] = int8_t(q);
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
      for (int64_t j = 0; j < cols_; ++j) {
        qr[j] = int_encode(xs[j], scale, 127);
        zeroed += qr[j] == 0 && xs[j] != 0;
      }
      sx[size_t(t)] = scale;
    }
  }
  rep_->zeroed += zeroed;
  rep_->elems += n * cols_;
  const auto dot4 = kernels::vec().dot4_i8;
  const int64_t blocks = rp_ / 4;
#pragma omp parallel for schedule(static) if (blocks * n * kp_ > (1 << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * 4;
    int32_t acc[4];
    for (int64_t t = 0; t < n; ++t) {
      dot4(q_.data() + r0 * kp_, kp_, xq.data() + t * kp_, kp_, acc);
      for (int64_t k = 0; k < 4 && r0 + k < rows_; ++k) y[t * rows_ + r0 + k] = float(acc[k]) * sx[size_t(t)] * sw_[size_t(r0 + k)];
    }
  }
}

}  // namespace clm::quant
