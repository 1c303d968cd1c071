#include "quant/nvfp4_format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/quads.h"
#include "kernels/cpu/vec.h"
#include "quant/numfmt.h"

namespace clm::quant {

namespace {
// One row of n values into codes (nibbles, from element `at` of a row of codes) and block scales,
// blocks of 16 starting at `at` (a multiple of 16).
void encode_run(const float* v, int64_t n, float st, uint8_t* codes, uint8_t* scales, int64_t at) {
  uint8_t c[kNvBlock];
  for (int64_t b = 0; b < n; b += kNvBlock) {
    const int m = int(std::min<int64_t>(kNvBlock, n - b));
    const uint8_t sc = nvfp4_encode_block(v + b, m, st, c);
    scales[(at + b) / kNvBlock] = sc;
    for (int i = 0; i < m; ++i) {
      const int64_t e = at + b + i;
      codes[e / 2] = uint8_t(codes[e / 2] | (c[i] << (4 * (e % 2))));
    }
  }
}
}  // namespace

Nvfp4Format::Nvfp4Format(const Tensor& w, std::vector<int64_t> perm, int64_t ke, float w_amax, bool bf16_residual,
                         std::shared_ptr<LayerReport> rep, std::string name)
    : QuantFormat(std::move(name), std::move(rep)), ke_(ke), perm_(std::move(perm)), bf16_res_(bf16_residual) {
  rows_ = w.dim(0);
  cols_ = w.dim(1);
  const int64_t K = cols_;
  if (ke_ > 0 && K % kNvBlock != 0)
    throw std::invalid_argument("nvfp4 kernels: residual channels need K (" + std::to_string(K) + ") to be a multiple of 16");
  ka_ = K + ke_;
  kp_ = (ka_ + 31) / 32 * 32;
  codes_.assign(size_t(rows_ * kp_ / 2), 0);
  scales_.assign(size_t(rows_ * kp_ / kNvBlock), 0);
  st_w_ = nvfp4_tensor_scale(w_amax);
  const float* p = w.data<float>();
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t k = 0; k < K; ++k) row[size_t(k)] = p[r * K + (perm_.empty() ? k : perm_[size_t(k)])];
    uint8_t* c = codes_.data() + r * kp_ / 2;
    uint8_t* s = scales_.data() + r * kp_ / kNvBlock;
    encode_run(row.data(), K, st_w_, c, s, 0);
    // the salient columns again: the same codes and scales (K and KE are multiples of 16)
    for (int64_t e = 0; e < ke_; ++e) {
      const int64_t src = K - ke_ + e, dst = K + e;
      c[dst / 2] = uint8_t(c[dst / 2] | (((c[src / 2] >> (4 * (src % 2))) & 0xF) << (4 * (dst % 2))));
    }
    for (int64_t b = 0; b < ke_ / kNvBlock; ++b) s[K / kNvBlock + b] = s[(K - ke_) / kNvBlock + b];
  }
  kernels::interleave_quads(codes_, rows_, kp_ / 2);
}

void Nvfp4Format::dequantize(float* out) const {
  std::vector<uint8_t> buf;
  for (int64_t r = 0; r < rows_; ++r) {
    const uint8_t* row = kernels::quad_row(codes_.data(), rows_, kp_ / 2, r, buf);
    for (int64_t k = 0; k < ka_; ++k) {
      const uint8_t code = (row[k / 2] >> (4 * (k % 2))) & 0xF;
      out[r * ka_ + k] = kE2M1.decode(code) * ue4m3_decode(scales_[size_t((r * kp_ + k) / kNvBlock)]) * st_w_;
    }
  }
}

void Nvfp4Format::matmul(const float* x, int64_t n, float* y) const {
  const int64_t K = cols_;
  // permuted activations and their tensor scale over the call's tokens (a prompt's tokens in
  // parallel here and below; an exception cannot leave the loops: counted, thrown after)
  std::vector<float> xp(size_t(n * K));
  float amax = 0;
  int64_t bad = 0;
  const bool par = n > 1 && n * K > (1 << 15);
  const auto& vk = kernels::vec();
#pragma omp parallel for schedule(static) reduction(max : amax) reduction(+ : bad) if (par)
  for (int64_t t = 0; t < n; ++t) {
    float* o = xp.data() + t * K;
    const float* xt = x + t * K;
    if (perm_.empty()) std::copy_n(xt, K, o);
    else
      for (int64_t k = 0; k < K; ++k) o[k] = xt[perm_[size_t(k)]];
    const float m = vk.absmax(o, K);  // NaN if one is not finite
    if (std::isnan(m)) ++bad;
    else amax = std::max(amax, m);
  }
  if (bad) throw std::invalid_argument("quantize: non-finite value in the input");
  const float st_x = nvfp4_tensor_scale(amax);
  std::vector<int8_t> xq(size_t(n * kp_), 0);
  std::vector<float> xs(size_t(n * kp_ / kNvBlock), 0.0f);
  std::vector<int32_t> xb(size_t(n * kp_ / 4));  // the kernel's offset terms, -12 x each four codes' sum (below)
  int64_t zeroed = 0;
#pragma omp parallel if (par)
  {
    std::vector<float> res(static_cast<size_t>(ke_));
#pragma omp for schedule(static) reduction(+ : zeroed)
    for (int64_t t = 0; t < n; ++t) {
      const float* v = xp.data() + t * K;
      int8_t* q = xq.data() + t * kp_;
      float* s = xs.data() + t * kp_ / kNvBlock;
      // nvfp4_encode_block's scale and codes, the codes as their doubled values (the kernel's int8)
      auto run = [&](const float* src, int64_t len, int64_t at, bool count) {
        for (int64_t b = 0; b < len; b += kNvBlock) {
          const int m = int(std::min<int64_t>(kNvBlock, len - b));
          const float d = ue4m3_decode(nvfp4_block_scale(src + b, m, st_x));
          s[(at + b) / kNvBlock] = d;
          int8_t* qb = q + at + b;
          const int64_t z = vk.quantize_e2m1(src + b, d * st_x, qb, m);
          if (count) zeroed += z;
          if (at == 0)
            for (int64_t i = std::max<int64_t>(b, K - ke_); i < b + m; ++i)  // as nvfp4_decode_block: E2M1 value x (d·s_t)
              res[size_t(i - (K - ke_))] = src[i] - float(qb[i - b]) * 0.5f * (d * st_x);
        }
      };
      run(v, K, 0, true);
      if (ke_ > 0) {
        if (bf16_res_)
          for (float& r : res) r = bf16_to_f32(f32_to_bf16(r));
        run(res.data(), ke_, K, false);
      }
      kernels::w4a8_offset_terms(q, kp_, 12, xb.data() + t * kp_ / 4);
    }
  }
  rep_->zeroed += zeroed;
  rep_->elems += n * K;
  // The integer kernels multiply E2M1 codes through an unsigned table (doubled values + 12) and take
  // the offset back out with -12 x (each four activations' sum); doubled twice: the 1/4.
  static const auto lutu = [] {
    std::array<uint8_t, 16> t{};
    for (int c = 0; c < 16; ++c) t[size_t(c)] = uint8_t(kernels::kE2M1Doubled[c] + 12);
    return t;
  }();
  kernels::gemv_w4a8_rows(codes_.data(), lutu.data(), {nullptr, scales_.data(), kernels::ScaleCode::ue4m3}, rows_, kp_, kNvBlock, xq.data(), xs.data(), xb.data(), n,
                          st_w_ * st_x * 0.25f, y);
}

}  // namespace clm::quant

namespace clm::quant {

bool Nvfp4Format::store(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, nlohmann::json& meta) const {
  Tensor c = Tensor::empty({rows_, kp_ / 2}, DType::u8);  // the canonical row-major codes
  std::vector<uint8_t> buf;
  for (int64_t r = 0; r < rows_; ++r) std::copy_n(kernels::quad_row(codes_.data(), rows_, kp_ / 2, r, buf), kp_ / 2, c.data<uint8_t>() + r * kp_ / 2);
  Tensor s = Tensor::empty({rows_, kp_ / kNvBlock}, DType::u8);
  std::copy(scales_.begin(), scales_.end(), s.data<uint8_t>());
  out.emplace_back(prefix + "codes", c);
  out.emplace_back(prefix + "scales", s);
  if (!perm_.empty()) {
    std::vector<int32_t> p(perm_.begin(), perm_.end());
    out.emplace_back(prefix + "perm", Tensor::from(p, {cols_}));
  }
  meta = {{"kind", "nvfp4"}, {"name", name_}, {"rows", rows_}, {"cols", cols_}, {"ke", ke_}, {"tensor_scale", st_w_},
          {"bf16_residual", bf16_res_}, {"perm", !perm_.empty()}, {"report", report_json(*rep_)}};
  return true;
}

std::unique_ptr<kernels::WeightFormat> Nvfp4Format::restore(const nlohmann::json& meta,
                                                            const std::function<const Tensor&(const std::string&)>& tensor) {
  std::unique_ptr<Nvfp4Format> f(new Nvfp4Format());
  std::tie(f->rows_, f->cols_) = f->restore_common(meta);
  f->ke_ = meta.at("ke").get<int64_t>();
  const int64_t K = f->cols_;
  if (f->ke_ < 0 || f->ke_ > K || (f->ke_ > 0 && (f->ke_ % kNvBlock || K % kNvBlock)))
    throw std::runtime_error("ke must be a multiple of 16 in [0, cols], with cols a multiple of 16 when ke > 0");
  f->st_w_ = meta.at("tensor_scale").get<float>();
  if (!(std::isfinite(f->st_w_) && f->st_w_ > 0)) throw std::runtime_error("tensor_scale must be finite and > 0");
  f->bf16_res_ = meta.at("bf16_residual").get<bool>();
  f->ka_ = K + f->ke_;
  f->kp_ = (f->ka_ + 31) / 32 * 32;
  const Tensor& c = tensor("codes");
  if (c.dtype() != DType::u8 || c.shape() != Shape{f->rows_, f->kp_ / 2})
    throw std::runtime_error("codes must be u8 [" + std::to_string(f->rows_) + ", " + std::to_string(f->kp_ / 2) + "]");
  f->codes_.assign(c.data<uint8_t>(), c.data<uint8_t>() + c.numel());
  for (int64_t r = 0; r < f->rows_; ++r)  // the padding beyond K + KE multiplies zeros: it must be zero
    for (int64_t k = f->ka_; k < f->kp_; ++k)
      if ((f->codes_[size_t((r * f->kp_ + k) / 2)] >> (4 * (k % 2))) & 0xF) throw std::runtime_error("codes: padding is not zero");
  kernels::interleave_quads(f->codes_, f->rows_, f->kp_ / 2);
  const Tensor& s = tensor("scales");
  if (s.dtype() != DType::u8 || s.shape() != Shape{f->rows_, f->kp_ / kNvBlock})
    throw std::runtime_error("scales must be u8 [" + std::to_string(f->rows_) + ", " + std::to_string(f->kp_ / kNvBlock) + "]");
  f->scales_.assign(s.data<uint8_t>(), s.data<uint8_t>() + s.numel());
  for (uint8_t sc : f->scales_) {
    if (sc > 0x7F) throw std::runtime_error("a block scale is not an unsigned E4M3 code (sign bit set)");
    if (kUE4M3.is_nan(sc)) throw std::runtime_error("a block scale is NaN");
  }
  if (meta.at("report").at("k_eff").get<int64_t>() != f->ka_) throw std::runtime_error("report k_eff is not cols + ke");
  if (meta.at("perm").get<bool>()) {  // else the identity order
    const Tensor& pt = tensor("perm");
    if (pt.dtype() != DType::i32 || pt.shape() != Shape{K}) throw std::runtime_error("perm must be i32 [" + std::to_string(K) + "]");
    const std::vector<int32_t> p(pt.data<int32_t>(), pt.data<int32_t>() + K);
    std::vector<char> seen(size_t(K), 0);
    for (int32_t v : p) {
      if (v < 0 || v >= K || seen[size_t(v)]) throw std::runtime_error("perm is not a permutation of 0.." + std::to_string(K - 1));
      seen[size_t(v)] = 1;
    }
    f->perm_.assign(p.begin(), p.end());
  }
  return f;
}

namespace {
const bool reg = kernels::StoredFormats::get().add({"nvfp4", Nvfp4Format::restore});
}  // namespace

}  // namespace clm::quant
