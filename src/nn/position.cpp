// Position-encoding variants: the rotary family (rope with its long-context scalings, 3d-rpe),
// alibi, learned, none.
#include <cmath>
#include <numbers>

#include "autograd/ops.h"
#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct NoPosition : PositionEncoding {};

std::string at_least_one(const nlohmann::json& v) {
  return v.get<double>() >= 1.0 && v.get<double>() <= 1e6 ? "" : "must be in [1, 1e6]";
}

// The rotary family. Pair i of a head turns by the angle a(p, i) at position p; q and k turn alike,
// so a score depends on a(p_q, i) - a(p_k, i). Keys are cached after rotation at their true positions.
//   rope     a = (p / s) * w_i, w_i = theta^(-2i/hd); scaling=pi sets s; ntk raises theta;
//            yarn interpolates each frequency by its own ramp and scales the logits.
//   3d-rpe   a = ((p / s) mod c) * w_i - phi(floor((p / s) / c)): an offset rotation inside a chunk
//            of c positions plus a phase per chunk, shared by every pair (3D-RPE, arXiv 2406.09897).
struct Rotary : PositionEncoding {
  int64_t hd;
  bool interleaved;
  std::vector<double> w;   // [hd/2] frequency of each pair
  double s = 1.0;          // positions are divided by s (position interpolation)
  double mscale = 1.0;     // cos and sin are multiplied by it (YaRN: logits scale by mscale^2)
  int64_t chunk = 0;       // 3D-RPE chunk size (0: plain rotary)
  std::function<double(int64_t)> phase;  // 3D-RPE chunk phase phi(j)

  Rotary(const ModelConfig& c, double theta) : hd(c.hd()), interleaved(c.rope_interleaved), w(size_t(c.hd() / 2)) {
    if (hd % 2) throw std::invalid_argument("rotary position encoding needs an even head dim, got " + std::to_string(hd));
    for (int64_t i = 0; i < hd / 2; ++i) w[size_t(i)] = std::pow(theta, -2.0 * double(i) / double(hd));
  }

  // cos/sin of position p for every pair, in f64.
  void angles(int64_t p, double* c, double* sn) const {
    const double x = double(p) / s;
    double base = x, ph = 0.0;
    if (chunk > 0) {
      const double j = std::floor(x / double(chunk));
      base = x - j * double(chunk);
      ph = phase(int64_t(j));
    }
    for (size_t i = 0; i < w.size(); ++i) {
      const double a = base * w[i] - ph;
      c[i] = std::cos(a) * mscale, sn[i] = std::sin(a) * mscale;
    }
  }

  // Training / evaluation: the table [T, hd/2] for positions pos0.., built once per forward and
  // reused by every layer.
  mutable Tensor cos_, sin_;
  mutable int64_t t_pos0 = -1, t_T = -1;
  mutable DType t_dtype = DType::f32;
  mutable Device t_device = Device::cpu;
  void table(const Ctx& ctx, DType dt, Device dev) const {
    if (t_pos0 == ctx.pos0 && t_T == ctx.T && t_dtype == dt && t_device == dev) return;
    const int64_t half = hd / 2;
    Tensor c = Tensor::empty({ctx.T, half}, DType::f64), sn = Tensor::empty({ctx.T, half}, DType::f64);
    for (int64_t t = 0; t < ctx.T; ++t) angles(ctx.pos0 + t, c.data<double>() + t * half, sn.data<double>() + t * half);
    cos_ = c.to(dt).to_device(dev), sin_ = sn.to(dt).to_device(dev);
    t_pos0 = ctx.pos0, t_T = ctx.T, t_dtype = dt, t_device = dev;
  }
  Var rotate(const Var& x, int64_t n_heads, const Ctx& ctx) override {
    table(ctx, x->value.dtype(), x->value.device());
    return ag::rotary(x, cos_, sin_, ctx.B, ctx.T, n_heads, hd, interleaved);
  }

  // Inference: rows of one f32 table indexed by absolute position, grown by reserve().
  std::vector<float> icos_, isin_;
  void reserve(int64_t positions) override {
    const int64_t half = hd / 2, have = int64_t(icos_.size()) / half;
    if (positions <= have) return;
    std::vector<double> c(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t p = have; p < positions; ++p) {
      angles(p, c.data(), sn.data());
      icos_.insert(icos_.end(), c.begin(), c.end());
      isin_.insert(isin_.end(), sn.begin(), sn.end());
    }
  }
  void infer_rotate(float* x, int64_t n_heads, const InferCtx& ctx) override {
    const int64_t half = hd / 2, W = n_heads * hd;
    for (int64_t t = 0; t < ctx.T; ++t) {
      if (int64_t(ctx.pos[t]) * half >= int64_t(icos_.size())) reserve(ctx.pos[t] + 1);
      const float *c = icos_.data() + ctx.pos[t] * half, *s = isin_.data() + ctx.pos[t] * half;
      kernels::rotary_forward<float>(x + t * W, x + t * W, c, s, 1, 1, n_heads, hd, interleaved);  // in place: pairs read before written
    }
  }
};

// rope: scaling none | pi (s = scale) | ntk (theta * scale^(hd/(hd-2))) | yarn (per-frequency ramp
// between interpolated and original frequencies by the number of turns r = orig_len / wavelength:
// r < alpha interpolated, r > beta kept; logits scaled by (0.1 ln s + 1)^2).
std::unique_ptr<PositionEncoding> make_rope(const Options& o, const ModelConfig& c) {
  const std::string sc = o.str("scaling");
  const double s = o.num("scale");
  if (sc == "none" && s != 1.0) throw std::invalid_argument("position 'rope': scale " + std::to_string(s) + " needs scaling=pi|ntk|yarn");
  const double hd = double(c.hd());
  auto r = std::make_unique<Rotary>(c, sc == "ntk" ? c.rope_theta * std::pow(s, hd / (hd - 2.0)) : c.rope_theta);
  if (sc == "pi") r->s = s;
  if (sc == "yarn") {
    const double L = double(o.integer("orig_len") > 0 ? o.integer("orig_len") : c.max_seq_len);
    const double alpha = o.num("yarn_alpha"), beta = o.num("yarn_beta");
    if (!(alpha < beta)) throw std::invalid_argument("position 'rope': yarn_alpha must be below yarn_beta");
    for (double& w : r->w) {
      const double turns = L * w / (2 * std::numbers::pi);
      const double g = std::clamp((turns - alpha) / (beta - alpha), 0.0, 1.0);  // 0: interpolate, 1: keep
      w = (1 - g) * w / s + g * w;
    }
    r->mscale = 0.1 * std::log(s) + 1.0;
  }
  return r;
}

// 3d-rpe: phase linear phi(j) = j * phi (default), or official phi(j) = 10000^(-j) (the released
// code); scale s interpolates positions before chunking.
std::unique_ptr<PositionEncoding> make_3drpe(const Options& o, const ModelConfig& c) {
  auto r = std::make_unique<Rotary>(c, c.rope_theta);
  r->chunk = o.integer("chunk");
  if (r->chunk >= c.max_seq_len)
    throw std::invalid_argument("position '3d-rpe': chunk " + std::to_string(r->chunk) + " must be below max_seq_len " +
                                std::to_string(c.max_seq_len) + " (the training length)");
  r->s = o.num("scale");
  const double phi = o.num("phi");
  if (o.str("phase") == "linear") r->phase = [phi](int64_t j) { return double(j) * phi; };
  else r->phase = [](int64_t j) { return std::pow(10000.0, -double(j)); };
  return r;
}

// ALiBi (arXiv 2108.12409): no rotation; head h adds -m_h * (query pos - key pos) to its scores,
// m_h = 2^(-8(h+1)/n) for n heads a power of two (the paper's rule for other counts: the
// slopes of the next power below, then every other slope of the power above).
struct Alibi : PositionEncoding {
  double alibi_slope(int64_t h, int64_t n) const override {
    int64_t p = 1;
    while (p * 2 <= n) p *= 2;
    if (h < p) return std::pow(2.0, -8.0 * double(h + 1) / double(p));
    return std::pow(2.0, -8.0 * double(2 * (h - p) + 1) / double(2 * p));
  }
};

struct LearnedPosition : PositionEncoding {
  Var table;
  LearnedPosition(const ModelConfig& c, Init& init) : table(init.normal({c.max_seq_len, c.d_model}, c.init_std)) {}
  Var embed(const Var& x, const Ctx& ctx) override { return ag::add_rows(x, table, ctx.pos0, ctx.T); }
  void infer_embed(float* x, const InferCtx& ctx) override {
    const int64_t P = table->value.dim(0), D = table->value.dim(1);
    for (int64_t t = 0; t < ctx.T; ++t) {
      if (ctx.pos[t] >= P) throw std::length_error("position " + std::to_string(ctx.pos[t]) + " beyond the learned table of " + std::to_string(P));
      kernels::vec().axpy(1.0f, table->value.data<float>() + ctx.pos[t] * D, x + t * D, D);
    }
  }
  void visit(const std::string& p, const ParamVisitor& f) override {
    f(p + ".weight", table, ParamKind::embedding);
  }
};

const bool reg_none = PositionRegistry::get().add(
    "none", [](const ModelConfig&, Init&) { return std::make_unique<NoPosition>(); });
const bool reg_rope = PositionRegistry::get().add(
    "rope",
    {{"scaling", "none", "none | pi | ntk | yarn: long-context scaling of the frequencies", one_of({"none", "pi", "ntk", "yarn"})},
     {"scale", 1.0, "context extension factor s (with scaling)", at_least_one},
     {"orig_len", 0, "yarn: the training length (0 = max_seq_len)",
      [](const nlohmann::json& v) { return v.get<int64_t>() >= 0 ? "" : "must be >= 0"; }},
     {"yarn_alpha", 1.0, "yarn: frequencies with fewer turns over orig_len are interpolated", nullptr},
     {"yarn_beta", 32.0, "yarn: frequencies with more turns over orig_len are kept", nullptr}},
    [](const Options& o, const ModelConfig& c, Init&) { return make_rope(o, c); });
const bool reg_3drpe = PositionRegistry::get().add(
    "3d-rpe",
    {{"chunk", 64, "chunk size c (below the training length)",
      [](const nlohmann::json& v) { return v.get<int64_t>() >= 1 ? "" : "must be >= 1"; }},
     {"phase", "linear", "chunk phase phi(j): linear (j * phi) | official (10000^-j, the released code)",
      one_of({"linear", "official"})},
     {"phi", 0.05, "linear phase step per chunk, radians",
      [](const nlohmann::json& v) { return std::abs(v.get<double>()) <= 2 * std::numbers::pi ? "" : "must be in [-2pi, 2pi]"; }},
     {"scale", 1.0, "position interpolation: positions divided by s before chunking", at_least_one}},
    [](const Options& o, const ModelConfig& c, Init&) { return make_3drpe(o, c); });
const bool reg_alibi = PositionRegistry::get().add(
    "alibi", [](const ModelConfig&, Init&) { return std::make_unique<Alibi>(); });
const bool reg_learned = PositionRegistry::get().add(
    "learned", [](const ModelConfig& c, Init& i) { return std::make_unique<LearnedPosition>(c, i); });

}  // namespace
}  // namespace clm::nn
