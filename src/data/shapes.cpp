#include "data/shapes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace clm {

namespace {
const std::vector<std::string> kColors{"red", "green", "blue", "yellow", "purple", "cyan"};
const std::array<std::array<float, 3>, 6> kRgb{{{1.0f, 0.15f, 0.15f},
                                                {0.15f, 0.9f, 0.15f},
                                                {0.2f, 0.3f, 1.0f},
                                                {1.0f, 1.0f, 0.15f},
                                                {0.7f, 0.2f, 0.9f},
                                                {0.15f, 0.9f, 0.9f}}};
const std::vector<std::string> kShapes{"square", "circle", "triangle", "cross"};
const std::vector<std::string> kPlaces{"top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"};
const std::vector<std::string> kCounts{"one", "two", "three"};

struct Object {
  int shape, color, cell;
};

int64_t below(Rng& r, int64_t n) { return int64_t(r.next() % uint64_t(n)); }

// Is pixel (u, v) of a c x c cell inside the shape (1 pixel margin)?
bool inside(int shape, double u, double v, double c) {
  const double h = c / 2.0, x = u + 0.5 - h, y = v + 0.5 - h, r = h - 1.0;
  switch (shape) {
    case 0: return std::abs(x) <= r && std::abs(y) <= r;
    case 1: return x * x + y * y <= r * r;
    case 2: return y >= -r && y <= r && std::abs(x) <= (y + r) / 2.0;  // apex up
    default: return (std::abs(x) <= 1.0 && std::abs(y) <= r) || (std::abs(y) <= 1.0 && std::abs(x) <= r);
  }
}

uint64_t scene_hash(std::vector<Object> objs) {
  std::sort(objs.begin(), objs.end(), [](const Object& a, const Object& b) { return a.cell < b.cell; });
  uint64_t h = 1469598103934665603ull;
  for (const Object& o : objs)
    for (int v : {o.cell, o.shape, o.color}) h = (h ^ uint64_t(v + 1)) * 1099511628211ull;
  return h;
}
}  // namespace

ShapesTask::ShapesTask(ShapesConfig c) : cfg_(c) {
  if (cfg_.image < 9 || cfg_.image % 3) throw std::invalid_argument("shapes task: image side must be a multiple of 3, >= 9");
  if (cfg_.max_objects < 1 || cfg_.max_objects > 3) throw std::invalid_argument("shapes task: max_objects must be 1..3");
  vocab_ = {"<eos>", "<unk>", "<image>", "?", ",", "what", "color", "is", "the", "shape", "object", "how", "many", "objects",
            "where", "there", "a", "describe", "yes", "no"};
  for (auto* list : {&kColors, &kShapes, &kPlaces, &kCounts}) vocab_.insert(vocab_.end(), list->begin(), list->end());
}

const std::vector<std::string>& ShapesTask::kinds() {
  static const std::vector<std::string> k{"color", "shape", "count", "where", "exists", "describe"};
  return k;
}

int32_t ShapesTask::id(const std::string& w) const {
  auto it = std::find(vocab_.begin(), vocab_.end(), w);
  if (it == vocab_.end()) throw std::invalid_argument("shapes task: '" + w + "' is not in its vocabulary");
  return int32_t(it - vocab_.begin());
}

ShapesExample ShapesTask::sample(Rng& rng, bool test_split, const std::string& kind) const {
  if (!kind.empty() && std::find(kinds().begin(), kinds().end(), kind) == kinds().end())
    throw std::invalid_argument("shapes task: unknown question kind '" + kind + "'");
  std::vector<Object> objs;
  for (;;) {  // a scene of the requested split
    objs.clear();
    const int64_t n = 1 + below(rng, cfg_.max_objects);
    std::vector<int> cells{0, 1, 2, 3, 4, 5, 6, 7, 8}, shapes{0, 1, 2, 3}, colors{0, 1, 2, 3, 4, 5};
    for (int64_t i = 0; i < n; ++i) {  // distinct cells, shapes and colours: every question has one answer
      auto take = [&](std::vector<int>& v) {
        const int64_t j = below(rng, int64_t(v.size()));
        const int x = v[size_t(j)];
        v.erase(v.begin() + j);
        return x;
      };
      objs.push_back({take(shapes), take(colors), take(cells)});
    }
    if ((scene_hash(objs) % 10 == 0) == test_split) break;
  }
  ShapesExample e;
  const int64_t S = cfg_.image, c = S / 3;
  e.pixels.resize(size_t(S * S * 3));
  for (float& p : e.pixels) p = float(0.1 + cfg_.noise * (2.0 * rng.uniform() - 1.0));
  for (const Object& o : objs) {
    const int64_t y0 = (o.cell / 3) * c, x0 = (o.cell % 3) * c;
    for (int64_t v = 0; v < c; ++v)
      for (int64_t u = 0; u < c; ++u)
        if (inside(o.shape, double(u), double(v), double(c)))
          for (int ch = 0; ch < 3; ++ch)
            e.pixels[size_t(((y0 + v) * S + x0 + u) * 3 + ch)] =
                std::clamp(kRgb[size_t(o.color)][size_t(ch)] + float(cfg_.noise * (2.0 * rng.uniform() - 1.0)), 0.0f, 1.0f);
  }
  e.kind = kind.empty() ? kinds()[size_t(below(rng, 5))] : kind;
  const Object& o = objs[size_t(below(rng, int64_t(objs.size())))];
  const std::string &col = kColors[size_t(o.color)], &shp = kShapes[size_t(o.shape)];
  if (e.kind == "color") e.question = {"what", "color", "is", "the", shp, "?"}, e.answer = {col};
  else if (e.kind == "shape") e.question = {"what", "shape", "is", "the", col, "object", "?"}, e.answer = {kShapes[size_t(o.shape)]};
  else if (e.kind == "count") e.question = {"how", "many", "objects", "?"}, e.answer = {kCounts[objs.size() - 1]};
  else if (e.kind == "where") e.question = {"where", "is", "the", col, shp, "?"}, e.answer = {kPlaces[size_t(o.cell)]};
  else if (e.kind == "exists") {
    int qc = o.color, qs = o.shape;
    bool yes = rng.uniform() < 0.5;
    if (!yes) {  // a colour-shape pair that is not in the scene
      for (;;) {
        qc = int(below(rng, 6)), qs = int(below(rng, 4));
        bool present = false;
        for (const Object& p : objs) present = present || (p.color == qc && p.shape == qs);
        if (!present) break;
      }
    }
    e.question = {"is", "there", "a", kColors[size_t(qc)], kShapes[size_t(qs)], "?"};
    e.answer = {yes ? "yes" : "no"};
  } else {  // describe: every object in reading order
    std::vector<Object> sorted = objs;
    std::sort(sorted.begin(), sorted.end(), [](const Object& a, const Object& b) { return a.cell < b.cell; });
    e.question = {"describe", "?"};
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i) e.answer.push_back(",");
      e.answer.insert(e.answer.end(), {kColors[size_t(sorted[i].color)], kShapes[size_t(sorted[i].shape)], kPlaces[size_t(sorted[i].cell)]});
    }
  }
  return e;
}

std::vector<int32_t> ShapesTask::prompt_ids(const ShapesExample& e, int64_t image_tokens) const {
  std::vector<int32_t> ids(size_t(image_tokens), kImageId);
  for (const auto& w : e.question) ids.push_back(id(w));
  return ids;
}

std::vector<int32_t> ShapesTask::answer_ids(const ShapesExample& e) const {
  std::vector<int32_t> ids;
  for (const auto& w : e.answer) ids.push_back(id(w));
  ids.push_back(0);  // <eos>
  return ids;
}

void ShapesTask::batch(uint64_t seed, int64_t B, int64_t T, int64_t image_tokens, double p_describe, Tensor& x, Tensor& y,
                       Tensor& images) const {
  Rng rng(seed);
  const int64_t S = cfg_.image;
  x = Tensor::zeros({B * T}, DType::i32);
  y = Tensor::zeros({B * T}, DType::i32);
  images = Tensor::empty({B, S, S, 3}, DType::f32);
  int32_t *xs = x.data<int32_t>(), *ys = y.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const ShapesExample e = sample(rng, false, rng.uniform() < p_describe ? "describe" : "");
    std::vector<int32_t> ids = prompt_ids(e, image_tokens);
    const int64_t P = int64_t(ids.size());
    for (int32_t a : answer_ids(e)) ids.push_back(a);
    if (int64_t(ids.size()) > T)
      throw std::invalid_argument("shapes task: an example of " + std::to_string(ids.size()) + " tokens does not fit --seq-len " +
                                  std::to_string(T));
    for (int64_t t = 0; t < T; ++t) {
      xs[b * T + t] = t < int64_t(ids.size()) ? ids[size_t(t)] : 0;
      ys[b * T + t] = (t + 1 >= P && t + 1 < int64_t(ids.size())) ? ids[size_t(t + 1)] : -1;
    }
    std::copy(e.pixels.begin(), e.pixels.end(), images.data<float>() + b * S * S * 3);
  }
}

}  // namespace clm
