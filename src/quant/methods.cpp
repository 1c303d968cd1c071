#include "quant/methods.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "kernels/kernels.h"
#include "quant/int8_format.h"
#include "quant/nvfp4_format.h"
#include "quant/weight_only.h"

namespace clm::quant {

using nn::OptionSpec;
using nlohmann::json;

FakeQuantFormat::FakeQuantFormat(std::string name, Tensor w_eff, ActFn act, std::shared_ptr<LayerReport> rep, double w_bits)
    : QuantFormat(std::move(name), std::move(rep)), w_(std::move(w_eff)), act_(std::move(act)), w_bits_(w_bits) {
  rows_ = w_.dim(0);
  k_eff_ = w_.dim(1);
  cols_ = rep_->in;
}

void FakeQuantFormat::matmul(const float* x, int64_t n, float* y) const {
  std::vector<float> xq(size_t(n * k_eff_));
  act_(x, n, xq.data(), *rep_);
  kernels::gemm<float>(false, true, int(n), int(rows_), int(k_eff_), 1.0f, xq.data(), int(k_eff_), w_.data<float>(),
                       int(k_eff_), 0.0f, y, int(rows_));
}

void FakeQuantFormat::dequantize(float* out) const { std::copy_n(w_.data<float>(), rows_ * k_eff_, out); }

// ---- registry ----
MethodRegistry& MethodRegistry::get() {
  static MethodRegistry r;
  return r;
}
bool MethodRegistry::add(QuantMethod m) {
  m.options.push_back({"head", false, "also quantize the output head (lm_head)"});
  methods_.push_back(std::move(m));
  return true;
}
const QuantMethod& MethodRegistry::at(const std::string& name) const {
  for (auto& m : methods_)
    if (m.name == name) return m;
  throw std::invalid_argument("unknown quantization method '" + name + "' (known: " + names() + ")");
}
std::string MethodRegistry::names() const {
  std::string known;
  for (auto& m : methods_) known += (known.empty() ? "" : ", ") + m.name;
  return known;
}
std::string MethodRegistry::describe() const {
  std::string s;
  for (auto& m : methods_) s += "  " + m.name + ": " + m.about + "\n      options: " + nn::describe_options(m.options) + "\n";
  return s;
}

double QuantResult::kernel() const {
  int64_t z = 0, e = 0;
  for (auto& l : layers) z += l->zeroed, e += l->elems;
  return e ? double(z) / double(e) : 0;
}

namespace {

std::string check_spec(const json& v) {
  try {
    ElemSpec::parse(v.get<std::string>());
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
std::string check_unit(const json& v) {
  const double a = v.get<double>();
  return a >= 0 && a <= 1 ? "" : "must be in [0, 1]";
}
std::string one_of(const json& v, std::initializer_list<const char*> ok) {
  const std::string s = v.get<std::string>();
  std::string all;
  for (const char* o : ok) {
    if (s == o) return "";
    all += std::string(all.empty() ? "" : " | ") + o;
  }
  return "must be " + all;
}

Tensor copy_of(const Tensor& w) {
  Tensor c = Tensor::empty({w.dim(0), w.dim(1)}, DType::f32);
  if (w.dtype() == DType::f32) std::copy_n(w.data<float>(), w.numel(), c.data<float>());
  else {
    Tensor f = w.to(DType::f32);
    std::copy_n(f.data<float>(), w.numel(), c.data<float>());
  }
  return c;
}

std::shared_ptr<LayerReport> report(const std::string& name, int64_t in, int64_t k_eff, double wb, double ab) {
  auto r = std::make_shared<LayerReport>();
  r->name = name;
  r->in = in;
  r->k_eff = k_eff;
  r->w_bits = wb;
  r->a_bits = ab;
  return r;
}

// kernel = auto | fake | int8 | nvfp4 | w4a8 | w-only: whether low-bit kernels run this Linear (W8A8,
// NVFP4 W4A4, 4-bit weights with int8 activations per 32, or weight-only codes with f32 activations).
const OptionSpec kKernelOpt{"kernel", "auto",
                            "auto (low-bit kernels where the formats have them) | fake (quantize-dequantize in f32) | int8 (W8A8) | nvfp4 (W4A4) | "
                            "w4a8 (w=mxfp4 or int4/g32, a=int8/g32) | w-only (weight codes, f32 activations)",
                            [](const json& v) { return one_of(v, {"auto", "fake", "int8", "nvfp4", "w4a8", "w-only"}); }};
// Which integer kernel runs: "int8", "nvfp4" or "" (fake), given the one the formats allow ("" none).
std::string pick_kernel(const nn::Options& o, const std::string& possible, const std::string& method) {
  const std::string k = o.str("kernel");
  if (k == "auto") return possible;
  if (k == "fake") return "";
  if (k != possible)
    throw std::invalid_argument(method + ": kernel=" + k + " does not run these formats (int8: w=int8 and a=int8 per row; " +
                                "nvfp4: w=nvfp4 and a=nvfp4; w4a8: w=mxfp4 or int4/g32 and a=int8/g32; crossquant only in static mode; "
                                "w-only: rtn with a=none)");
  return k;
}
bool int8_row(const ElemSpec& e) { return e.format == "int8" && e.gran == Granularity::row; }

// Activation x [n, in] -> quantize-dequantize by `a`, counting the kernel.
void act_rtn(const ElemSpec& a, const float* x, int64_t n, int64_t in, float* xq, LayerReport& rep) {
  std::copy_n(x, n * in, xq);
  if (a.format == "none") return;
  rep.zeroed += fake_quant_count_zeroed(a, xq, n, in);
  rep.elems += n * in;
}

// ---- rtn ----
const bool reg_rtn = MethodRegistry::get().add(
    {"rtn",
     "round to nearest, weights per output channel (or per group / block) and activations per token",
     {{"w", "int8", "weight format: int8 | int4 | e4m3 | e5m2 | mxfp4 | mxfp8 | nvfp4 | none, with /tensor, /row or /g<N>", check_spec},
      {"a", "none", "activation format (per token), as w; none = weight-only", check_spec},
      kKernelOpt},
     false,
     [](const std::vector<std::string>& names, const std::vector<Tensor>& ws, const InputStats*, const nn::Options& o,
        std::vector<std::shared_ptr<LayerReport>>& reps, GroupInput&) {
       const ElemSpec w = ElemSpec::parse(o.str("w")), a = ElemSpec::parse(o.str("a"));
       const std::string kern = pick_kernel(o,
                                            int8_row(w) && int8_row(a)                   ? "int8"
                                            : w.format == "nvfp4" && a.format == "nvfp4"           ? "nvfp4"
                                            : WeightOnlyFormat::w4a8_possible(w, a, 32)            ? "w4a8"
                                            : a.format == "none" && w.format != "none"             ? "w-only"
                                                                                                   : "",
                                            "rtn");
       const bool i8 = kern == "int8";
       std::vector<std::shared_ptr<kernels::WeightFormat>> out;
       for (size_t i = 0; i < ws.size(); ++i) {
         Tensor wq = copy_of(ws[i]);
         const int64_t in = wq.dim(1);
         auto rep = report(names[i], in, in, w.bits(), a.bits());
         reps.push_back(rep);
         if (i8) {
           out.push_back(std::make_shared<Int8Format>(wq, Int8Format::Act{}, rep, "rtn:w8a8"));
           continue;
         }
         if (kern == "nvfp4") {
           float amax = 0;
           for (int64_t e = 0; e < wq.numel(); ++e) amax = std::max(amax, std::fabs(wq.data<float>()[e]));
           out.push_back(std::make_shared<Nvfp4Format>(wq, std::vector<int64_t>{}, 0, amax, false, rep, "rtn:w4a4-nvfp4"));
           continue;
         }
         if (kern == "w-only") {
           out.push_back(std::make_shared<WeightOnlyFormat>(wq, w, rep, "rtn:" + w.str() + "-weight-only"));
           continue;
         }
         if (kern == "w4a8") {
           out.push_back(std::make_shared<WeightOnlyFormat>(wq, w, rep, "rtn:" + w.str() + "-w4a8", a));
           continue;
         }
         fake_quant(w, wq.data<float>(), wq.dim(0), in);
         out.push_back(std::make_shared<FakeQuantFormat>(
             "rtn:" + w.str() + "+" + a.str(), wq,
             [a, in](const float* x, int64_t n, float* xq, LayerReport& r) { act_rtn(a, x, n, in, xq, r); }, rep, w.bits()));
       }
       return out;
     }});

// Per-input-channel scales shared by a group: out[j] for every Linear's column j.
std::vector<float> column_absmax(const std::vector<Tensor>& ws) {
  std::vector<float> m(size_t(ws[0].dim(1)), 0.0f);
  for (const Tensor& w : ws) {
    Tensor f = w.dtype() == DType::f32 ? w : w.to(DType::f32);
    const float* p = f.data<float>();
    for (int64_t r = 0; r < f.dim(0); ++r)
      for (int64_t j = 0; j < f.dim(1); ++j) m[size_t(j)] = std::max(m[size_t(j)], std::fabs(p[r * f.dim(1) + j]));
  }
  return m;
}

// W [rows, in] · diag(s) in place.
void scale_columns(Tensor& w, const std::vector<float>& s) {
  float* p = w.data<float>();
  for (int64_t r = 0; r < w.dim(0); ++r)
    for (int64_t j = 0; j < w.dim(1); ++j) p[r * w.dim(1) + j] *= s[size_t(j)];
}

// ---- smoothquant ----
const bool reg_smooth = MethodRegistry::get().add(
    {"smoothquant",
     "s_j = max|X_j|^alpha / max|W_j|^(1-alpha): activations divided by s, weights multiplied (shared by q/k/v and gate/up)",
     {{"alpha", 0.5, "migration strength", check_unit},
      {"w", "int8", "weight format (per output channel)", check_spec},
      {"a", "int8", "activation format (per token)", check_spec},
      {"fold", "norm", "where the division by s happens: norm (folded into the norm whose output only q/k/v or gate/up read; "
                       "elsewhere at run time) | none (always at run time)",
       [](const json& v) { return one_of(v, {"norm", "none"}); }},
      kKernelOpt},
     true,
     [](const std::vector<std::string>& names, const std::vector<Tensor>& ws, const InputStats* st, const nn::Options& o,
        std::vector<std::shared_ptr<LayerReport>>& reps, GroupInput& input) {
       const ElemSpec w = ElemSpec::parse(o.str("w")), a = ElemSpec::parse(o.str("a"));
       const double alpha = o.num("alpha");
       const std::vector<float> wmax = column_absmax(ws);
       const int64_t in = ws[0].dim(1);
       auto s = std::make_shared<std::vector<float>>(size_t(in));
       for (int64_t j = 0; j < in; ++j) {
         const double xm = st->absmax[size_t(j)], wm = wmax[size_t(j)];
         const double v = xm > 0 && wm > 0 ? std::pow(xm, alpha) / std::pow(wm, 1 - alpha) : 1.0;
         (*s)[size_t(j)] = float(std::clamp(v, 1e-5, 1e5));
       }
       // folded: the norm's output arrives divided by s already, and the formats divide by nothing
       const bool folded = input.norm_output && o.str("fold") == "norm";
       if (folded) input.fold = *s;
       const std::vector<float> run_div = folded ? std::vector<float>{} : *s;
       std::vector<std::shared_ptr<kernels::WeightFormat>> out;
       const bool i8 = pick_kernel(o, int8_row(w) && int8_row(a) ? "int8" : "", "smoothquant") == "int8";
       for (size_t i = 0; i < ws.size(); ++i) {
         Tensor wq = copy_of(ws[i]);
         scale_columns(wq, *s);
         auto rep = report(names[i], in, in, w.bits(), a.bits());
         reps.push_back(rep);
         if (i8) {
           out.push_back(std::make_shared<Int8Format>(wq, Int8Format::Act{run_div, false, 1, {}}, rep, "smoothquant:w8a8"));
           continue;
         }
         fake_quant(w, wq.data<float>(), wq.dim(0), in);
         out.push_back(std::make_shared<FakeQuantFormat>(
             "smoothquant:" + w.str() + "+" + a.str(), wq,
             [a, in, s, folded](const float* x, int64_t n, float* xq, LayerReport& r) {
               for (int64_t t = 0; t < n; ++t)
                 for (int64_t j = 0; j < in; ++j) xq[t * in + j] = folded ? x[t * in + j] : x[t * in + j] / (*s)[size_t(j)];
               if (a.format == "none") return;
               r.zeroed += fake_quant_count_zeroed(a, xq, n, in);
               r.elems += n * in;
             },
             rep, w.bits()));
       }
       return out;
     }});

// ---- crossquant ----
// Activations: Δ_ij = t_i^α · c_j^(1−α) / 127, q = clamp(round(x/Δ), ±127). The column factor
// c_j^(1−α) moves into the weights (W·diag(c^(1−α)), then INT8 per output channel), so the GEMM
// input is q · t_i^α / 127.
void cross_act(const float* x, int64_t n, int64_t in, double alpha, const std::vector<float>& cw, float* xq, LayerReport& r) {
  int64_t zeroed = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* xr = x + t * in;
    float* qr = xq + t * in;
    float tmax = 0;
    for (int64_t j = 0; j < in; ++j) {
      if (!std::isfinite(xr[j])) throw std::invalid_argument("quantize: non-finite value in the input");
      tmax = std::max(tmax, std::fabs(xr[j]));
    }
    if (tmax == 0) {
      std::fill_n(qr, in, 0.0f);
      continue;
    }
    const float ta = float(std::pow(double(tmax), alpha)) / 127.0f;
    for (int64_t j = 0; j < in; ++j) {
      const float d = ta * cw[size_t(j)];
      const float q = d > 0 ? std::clamp(std::nearbyint(xr[j] / d), -127.0f, 127.0f) : 0.0f;
      zeroed += q == 0 && xr[j] != 0;
      qr[j] = q * ta;
    }
  }
  r.zeroed += zeroed;
  r.elems += n * in;
}

std::vector<float> pow_vec(const std::vector<float>& c, double e) {
  std::vector<float> o(c.size());
  const float floor = 1e-6f;
  for (size_t j = 0; j < c.size(); ++j) o[j] = float(std::pow(double(std::max(c[j], floor)), e));
  return o;
}

// Dynamic mode: c from the current batch, the weights rescaled and quantized per call.
class CrossDynamicFormat : public QuantFormat {
 public:
  CrossDynamicFormat(Tensor w, double alpha, ElemSpec wspec, std::shared_ptr<LayerReport> rep)
      : QuantFormat("crossquant-dynamic:" + wspec.str(), std::move(rep)), w_(std::move(w)), alpha_(alpha), wspec_(std::move(wspec)) {
    rows_ = w_.dim(0);
    cols_ = w_.dim(1);
  }
  void matmul(const float* x, int64_t n, float* y) const override {
    std::vector<float> c(size_t(cols_), 0.0f);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < cols_; ++j) c[size_t(j)] = std::max(c[size_t(j)], std::fabs(x[t * cols_ + j]));
    const std::vector<float> cw = pow_vec(c, 1 - alpha_);
    Tensor wq = copy_of(w_);
    scale_columns(wq, cw);
    fake_quant(wspec_, wq.data<float>(), rows_, cols_);
    std::vector<float> xq(size_t(n * cols_));
    cross_act(x, n, cols_, alpha_, cw, xq.data(), *rep_);
    kernels::gemm<float>(false, true, int(n), int(rows_), int(cols_), 1.0f, xq.data(), int(cols_), wq.data<float>(),
                         int(cols_), 0.0f, y, int(rows_));
  }
  void dequantize(float* out) const override {  // with c = 1 (no batch): the weights as quantized alone
    Tensor wq = copy_of(w_);
    fake_quant(wspec_, wq.data<float>(), rows_, cols_);
    std::copy_n(wq.data<float>(), wq.numel(), out);
  }
  size_t bytes() const override { return size_t(double(rows_ * cols_) * wspec_.bits() / 8); }

 private:
  Tensor w_;
  double alpha_;
  ElemSpec wspec_;
};

const bool reg_cross = MethodRegistry::get().add(
    {"crossquant",
     "INT8 activations with Delta_ij = t_i^alpha * c_j^(1-alpha) / 127 (t: token absmax, c: channel absmax), INT8 weights",
     {{"alpha", 0.5, "exponent of the token factor (1 = per-token INT8)", check_unit},
      {"mode", "static", "static: c calibrated and folded into the weights | dynamic: c from the current batch, weights rescaled per call",
       [](const json& v) { return one_of(v, {"static", "dynamic"}); }},
      {"w", "int8", "weight format (per output channel), after the column factor is folded in", check_spec},
      kKernelOpt},
     true,
     [](const std::vector<std::string>& names, const std::vector<Tensor>& ws, const InputStats* st, const nn::Options& o,
        std::vector<std::shared_ptr<LayerReport>>& reps, GroupInput&) {
       const ElemSpec w = ElemSpec::parse(o.str("w"));
       const double alpha = o.num("alpha");
       const int64_t in = ws[0].dim(1);
       std::vector<std::shared_ptr<kernels::WeightFormat>> out;
       auto cw = std::make_shared<std::vector<float>>(pow_vec(st->absmax, 1 - alpha));
       const bool dynamic = o.str("mode") == "dynamic";
       const bool i8 = pick_kernel(o, int8_row(w) && !dynamic ? "int8" : "", "crossquant") == "int8";
       for (size_t i = 0; i < ws.size(); ++i) {
         auto rep = report(names[i], in, in, w.bits(), 8);
         reps.push_back(rep);
         if (dynamic) {
           out.push_back(std::make_shared<CrossDynamicFormat>(copy_of(ws[i]), alpha, w, rep));
           continue;
         }
         Tensor wq = copy_of(ws[i]);
         scale_columns(wq, *cw);
         if (i8) {
           out.push_back(std::make_shared<Int8Format>(wq, Int8Format::Act{{}, true, alpha, *cw}, rep, "crossquant:w8a8"));
           continue;
         }
         fake_quant(w, wq.data<float>(), wq.dim(0), in);
         out.push_back(std::make_shared<FakeQuantFormat>(
             "crossquant:" + w.str(), wq,
             [in, alpha, cw](const float* x, int64_t n, float* xq, LayerReport& r) { cross_act(x, n, in, alpha, *cw, xq, r); },
             rep, w.bits()));
       }
       return out;
     }});

// ---- arcquant ----
const bool reg_arc = MethodRegistry::get().add(
    {"arcquant",
     "NVFP4 W4A4; channels ordered by calibrated absmax, the last KE (salient) channels' residual quantized again and appended along K",
     {{"thr", "abs", "ratio rule per token: abs (|x| > 0.125 max|x|) | signed (x > 0.125 max x, the official code)",
       [](const json& v) { return one_of(v, {"abs", "signed"}); }},
      {"ke", int64_t(-1), "residual channels: -1 = the ratio rule, else a fixed count (a multiple of 16)",
       [](const json& v) { return v.get<int64_t>() >= -1 && (v.get<int64_t>() < 0 || v.get<int64_t>() % 16 == 0) ? "" : "must be -1 or a multiple of 16 >= 0"; }},
      {"ke_step", int64_t(64), "the ratio rule rounds KE up to a multiple of this: 64 (the paper's, its GEMM tiles) | 16, 32, ... (NVFP4 blocks: small models)",
       [](const json& v) { return v.get<int64_t>() >= 16 && v.get<int64_t>() <= 4096 && v.get<int64_t>() % 16 == 0 ? "" : "must be a multiple of 16 in [16, 4096]"; }},
      {"w_scale", "absmax", "weight tensor scale from absmax (correct) | signed_max (the official code)",
       [](const json& v) { return one_of(v, {"absmax", "signed_max"}); }},
      {"residual", "f32", "residual kept in f32 | bf16 (the official code) before it is quantized",
       [](const json& v) { return one_of(v, {"f32", "bf16"}); }},
      kKernelOpt},
     true,
     [](const std::vector<std::string>& names, const std::vector<Tensor>& ws, const InputStats* st, const nn::Options& o,
        std::vector<std::shared_ptr<LayerReport>>& reps, GroupInput&) {
       const int64_t K = ws[0].dim(1);
       // channel order: ascending calibrated absmax, outliers last
       auto perm = std::make_shared<std::vector<int64_t>>(size_t(K));
       std::iota(perm->begin(), perm->end(), 0);
       std::stable_sort(perm->begin(), perm->end(), [&](int64_t a, int64_t b) { return st->absmax[size_t(a)] < st->absmax[size_t(b)]; });
       int64_t KE = o.integer("ke");
       if (KE < 0) {
         const double above = double(o.str("thr") == "abs" ? st->above_abs : st->above_signed);
         const double ratio = above / (double(st->tokens) * double(K));
         const int64_t step = o.integer("ke_step");
         KE = std::min<int64_t>(K, int64_t(std::ceil(double(K) * ratio / double(step))) * step);
       }
       KE = std::min(KE, K);
       const int64_t Ka = K + KE;
       const bool signed_scale = o.str("w_scale") == "signed_max", bf16_res = o.str("residual") == "bf16";
       const ElemSpec nv = ElemSpec::parse("nvfp4");
       const double bits = 4.5 * double(Ka) / double(K);
       std::vector<std::shared_ptr<kernels::WeightFormat>> out;
       // the integer kernels need the duplicated columns to fill whole 16-blocks
       const bool real = pick_kernel(o, KE == 0 || K % kNvBlock == 0 ? "nvfp4" : "", "arcquant") == "nvfp4";
       for (size_t i = 0; i < ws.size(); ++i) {
         Tensor w = copy_of(ws[i]);
         const int64_t R = w.dim(0);
         float wmax = 0, wsmax = -INFINITY;
         for (int64_t e = 0; e < w.numel(); ++e) wmax = std::max(wmax, std::fabs(w.data<float>()[e])), wsmax = std::max(wsmax, w.data<float>()[e]);
         const float amax_w = signed_scale ? std::max(wsmax, 1e-30f) : wmax;
         if (real) {
           auto rep = report(names[i], K, Ka, bits, bits);
           reps.push_back(rep);
           out.push_back(std::make_shared<Nvfp4Format>(w, *perm, KE, amax_w, bf16_res, rep,
                                                       "arcquant:w4a4-nvfp4+KE" + std::to_string(KE)));
           continue;
         }
         Tensor wa = Tensor::empty({R, Ka}, DType::f32);
         float* pa = wa.data<float>();
         const float* pw = w.data<float>();
         for (int64_t r = 0; r < R; ++r)
           for (int64_t k = 0; k < K; ++k) pa[r * Ka + k] = pw[r * K + (*perm)[size_t(k)]];
         // quantize the permuted K columns (row stride Ka: quantize row by row)
         for (int64_t r = 0; r < R; ++r) fake_quant_count_zeroed(nv, pa + r * Ka, 1, K, amax_w);
         for (int64_t r = 0; r < R; ++r) std::copy_n(pa + r * Ka + (K - KE), KE, pa + r * Ka + K);  // same codes, duplicated
         auto rep = report(names[i], K, Ka, bits, bits);
         reps.push_back(rep);
         out.push_back(std::make_shared<FakeQuantFormat>(
             "arcquant:nvfp4+KE" + std::to_string(KE), wa,
             [perm, K, KE, Ka, bf16_res, nv](const float* x, int64_t n, float* xq, LayerReport& rp) {
               float amax = 0;
               for (int64_t t = 0; t < n; ++t) {
                 for (int64_t k = 0; k < K; ++k) {
                   const float v = x[t * K + (*perm)[size_t(k)]];
                   xq[t * Ka + k] = v;
                   amax = std::max(amax, std::fabs(v));
                 }
               }
               std::vector<float> orig(size_t(n * KE));
               for (int64_t t = 0; t < n; ++t) std::copy_n(xq + t * Ka + (K - KE), KE, orig.data() + t * KE);
               int64_t z = 0;
               for (int64_t t = 0; t < n; ++t) z += fake_quant_count_zeroed(nv, xq + t * Ka, 1, K, amax);
               for (int64_t t = 0; t < n; ++t) {
                 float* res = xq + t * Ka + K;
                 for (int64_t e = 0; e < KE; ++e) {
                   const float rv = orig[size_t(t * KE + e)] - xq[t * Ka + (K - KE) + e];
                   res[e] = bf16_res ? bf16_to_f32(f32_to_bf16(rv)) : rv;
                 }
                 if (KE) fake_quant_count_zeroed(nv, res, 1, KE, amax);  // one tensor scale s_x for X and R
               }
               rp.zeroed += z;
               rp.elems += n * K;
             },
             rep, bits));
       }
       return out;
     }});

}  // namespace

QuantResult quantize_model(LanguageModel& model, const std::string& method, const json& opts, const Calibration* calib) {
  const QuantMethod& m = MethodRegistry::get().at(method);
  const nn::Options o(opts.is_null() ? json::object() : opts, m.options, "quantization method '" + method + "'");
  if (m.needs_calibration && !calib)
    throw std::invalid_argument("quantization method '" + method + "' needs calibration statistics (clm calibrate, then --calib FILE)");
  struct Item {
    std::string name;
    nn::Linear* l;
  };
  std::vector<Item> items;
  model.linears([&](const std::string& name, nn::Linear& l) {
    if (l.quantized) throw std::invalid_argument("'" + name + "' is already quantized (a quantized checkpoint): quantize the original model");
    if (name != "lm_head" || o.flag("head")) items.push_back({name, &l});
  });
  // groups of Linears sharing an input (from calibration), in model order
  std::vector<std::vector<size_t>> groups;
  std::map<int, size_t> gi;
  for (size_t i = 0; i < items.size(); ++i) {
    const int g = calib ? calib->at(items[i].name).group : -1;
    if (g < 0 || !gi.count(g)) {
      if (g >= 0) gi[g] = groups.size();
      groups.push_back({});
    }
    groups[g < 0 ? groups.size() - 1 : gi[g]].push_back(i);
  }
  QuantResult res;
  res.method = method;
  res.options = o.json();
  double wsum = 0, wb = 0, ab = 0;
  for (auto& g : groups) {
    std::vector<std::string> names;
    std::vector<Tensor> ws;
    for (size_t i : g) {
      names.push_back(items[i].name);
      ws.push_back(items[i].l->w->value);
    }
    const InputStats* st = calib ? &calib->at(names[0]) : nullptr;
    if (st && st->in != ws[0].dim(1))
      throw std::invalid_argument("calibration for '" + names[0] + "' has " + std::to_string(st->in) + " input channels, the model " +
                                  std::to_string(ws[0].dim(1)));
    std::vector<std::shared_ptr<LayerReport>> reps;
    GroupInput input;
    input.norm_output = model.input_is_norm_output(names);
    auto fmts = m.make(names, ws, st, o, reps, input);
    if (!input.fold.empty()) {  // the equivalence made permanent: norm output / s, dense weights · s
      if (!model.divide_norm_output(names, input.fold))
        throw std::logic_error("quantize: could not fold the input scale of '" + names[0] + "' into its norm");
      for (size_t i : g) scale_columns(items[i].l->w->value, input.fold);
    }
    for (size_t k = 0; k < g.size(); ++k) {
      items[g[k]].l->packed = fmts[k];
      const double e = double(ws[k].numel());
      wsum += e;
      wb += e * reps[k]->w_bits;
      ab += e * reps[k]->a_bits;
    }
    for (auto& r : reps) res.layers.push_back(r);
  }
  res.avg_w_bits = wsum ? wb / wsum : 32;
  res.avg_a_bits = wsum ? ab / wsum : 32;
  return res;
}

}  // namespace clm::quant
