// Vision variants: patch (an image cut into square patches, each projected by a two-layer MLP to
// d_model and given a learned position vector: the decoder's own attention is the encoder, as in
// Fuyu; LLaVA's projector is the same MLP after a ViT).
#include <cmath>
#include <numeric>

#include "autograd/ops.h"
#include "kernels/kernels.h"
#include "nn/module.h"

namespace clm::nn {
namespace {

struct PatchVision : VisionEncoder {
  int64_t side, patch, channels, grid, P, pdim, hidden, d;
  int32_t token;
  Linear p1, p2;
  Var pos;  // [P, d]
  PatchVision(const Options& o, const ModelConfig& c, Init& init)
      : side(o.integer("image")),
        patch(o.integer("patch")),
        channels(o.integer("channels")),
        grid(side / patch),
        P(grid * grid),
        pdim(patch * patch * channels),
        hidden(o.integer("hidden") > 0 ? o.integer("hidden") : c.d_model),
        d(c.d_model),
        token(int32_t(o.integer("token"))),
        p1(pdim, hidden, true, init, 1.0 / std::sqrt(double(pdim))),
        p2(hidden, d, true, init, c.init_std),
        pos(init.normal({P, d}, c.init_std)) {
    if (side % patch) throw std::invalid_argument("vision 'patch': patch (" + std::to_string(patch) + ") must divide image (" + std::to_string(side) + ")");
    if (token < 0 || token >= c.vocab_size) throw std::invalid_argument("vision 'patch': token " + std::to_string(token) + " outside the vocabulary");
  }
  int64_t tokens() const override { return P; }
  int32_t token_id() const override { return token; }
  std::vector<int64_t> image_shape() const override { return {side, side, channels}; }

  // images [N, side, side, channels] -> patches [N * P, pdim], each patch row-major (y, x, c).
  template <class T> void patchify(const T* img, int64_t N, T* out) const {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gy = 0; gy < grid; ++gy)
        for (int64_t gx = 0; gx < grid; ++gx) {
          T* o = out + ((n * grid + gy) * grid + gx) * pdim;
          for (int64_t y = 0; y < patch; ++y)
            for (int64_t x = 0; x < patch; ++x)
              for (int64_t ch = 0; ch < channels; ++ch)
                *o++ = img[((n * side + gy * patch + y) * side + gx * patch + x) * channels + ch];
        }
  }
  int64_t count(const Tensor& images) const {
    const int64_t per = side * side * channels;
    if (images.numel() == 0 || images.numel() % per)
      throw std::invalid_argument("vision: images of " + std::to_string(images.numel()) + " values are not a whole number of " +
                                  std::to_string(side) + "x" + std::to_string(side) + "x" + std::to_string(channels) + " images");
    return images.numel() / per;
  }

  Var forward(const Tensor& images) override {
    const int64_t N = count(images);
    Tensor x = Tensor::empty({N * P, pdim}, images.dtype());
    Tensor img = images.contiguous();
    if (images.dtype() == DType::f64) patchify(img.data<double>(), N, x.data<double>());
    else patchify(img.data<float>(), N, x.data<float>());
    std::vector<int32_t> ids(size_t(N * P));
    for (int64_t i = 0; i < N * P; ++i) ids[size_t(i)] = int32_t(i % P);
    Var h = p2(ag::gelu(p1(ag::leaf(x)), false));
    return ag::add(h, ag::embedding(pos, Tensor::from(ids, {N * P})));
  }

  void infer(const float* images, int64_t N, float* out, Workspace& ws) const override {
    float *x = ws.take(size_t(N * P * pdim)), *h = ws.take(size_t(N * P * hidden));
    patchify(images, N, x);
    p1.infer(x, N * P, h);
    kernels::gelu_forward<float>(h, h, N * P * hidden, false);
    p2.infer(h, N * P, out);
    const float* pt = pos->value.data<float>();
    for (int64_t r = 0; r < N * P; ++r)
      for (int64_t j = 0; j < d; ++j) out[r * d + j] += pt[(r % P) * d + j];
  }

  void linears(const std::string& p, const LinearVisitor& f) override { f(p + ".proj1", p1), f(p + ".proj2", p2); }
  void visit(const std::string& p, const ParamVisitor& f) override {
    p1.visit(p + ".proj1", f);
    p2.visit(p + ".proj2", f);
    f(p + ".pos", pos, ParamKind::weight);
  }
};

std::function<std::string(const nlohmann::json&)> positive() {
  return [](const nlohmann::json& v) { return v.get<int64_t>() > 0 ? std::string() : std::string("must be > 0"); };
}

const bool reg_patch = VisionRegistry::get().add(
    "patch",
    {{"image", 24, "image side in pixels (square images)", positive()},
     {"patch", 4, "patch side in pixels (divides image)", positive()},
     {"channels", 3, "colour channels", positive()},
     {"token", 2, "id of the image placeholder token: a sequence holds tokens-per-image of them per image", nullptr},
     {"hidden", 0, "projector hidden width (0: d_model)", nullptr}},
    [](const Options& o, const ModelConfig& c, Init& i) { return std::make_unique<PatchVision>(o, c, i); });

}  // namespace
}  // namespace clm::nn
