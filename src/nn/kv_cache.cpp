#include "nn/kv_cache.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"

namespace clm::nn {

KVCells::KVCells(int64_t n_kv_heads, int64_t head_dim, int64_t capacity)
    : heads_(n_kv_heads), hd_(head_dim), cap_(capacity) {
  if (heads_ <= 0 || hd_ <= 0 || cap_ <= 0) throw std::invalid_argument("KV cache: heads, head dim and capacity must be > 0");
  k_.assign(size_t(heads_ * cap_ * hd_), 0.0f);
  v_.assign(size_t(heads_ * cap_ * hd_), 0.0f);
  pos_.assign(size_t(heads_ * cap_), 0);
  orig_.assign(size_t(heads_ * cap_), 0);
  tag_.assign(size_t(heads_ * cap_), 0);
  len_.assign(size_t(heads_), 0);
}

int64_t KVCells::max_len() const { return *std::max_element(len_.begin(), len_.end()); }

void KVCells::append(const float* k, const float* v, int64_t T, const int32_t* pos, uint8_t tag, const uint8_t* tags) {
  if (max_len() + T > cap_)
    throw std::length_error("KV cache full: " + std::to_string(max_len()) + " + " + std::to_string(T) + " tokens > capacity " +
                            std::to_string(cap_));
  const int64_t W = heads_ * hd_;
  for (int64_t h = 0; h < heads_; ++h) {
    int64_t& n = len_[size_t(h)];
    for (int64_t t = 0; t < T; ++t, ++n) {
      std::memcpy(this->k(h) + n * hd_, k + t * W + h * hd_, sizeof(float) * size_t(hd_));
      std::memcpy(this->v(h) + n * hd_, v + t * W + h * hd_, sizeof(float) * size_t(hd_));
      pos_[size_t(h * cap_ + n)] = orig_[size_t(h * cap_ + n)] = pos[t];
      tag_[size_t(h * cap_ + n)] = tags ? tags[t] : tag;
    }
  }
}

int64_t KVCells::compact(int64_t h, const uint8_t* keep) {
  int64_t& n = len_[size_t(h)];
  int64_t w = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (!keep[r]) continue;
    if (w != r) {
      std::memcpy(k(h) + w * hd_, k(h) + r * hd_, sizeof(float) * size_t(hd_));
      std::memcpy(v(h) + w * hd_, v(h) + r * hd_, sizeof(float) * size_t(hd_));
      pos_[size_t(h * cap_ + w)] = pos_[size_t(h * cap_ + r)];
      orig_[size_t(h * cap_ + w)] = orig_[size_t(h * cap_ + r)];
      tag_[size_t(h * cap_ + w)] = tag_[size_t(h * cap_ + r)];
    }
    ++w;
  }
  return n = w;
}

void KVCells::remove(int64_t h, int64_t i) {
  int64_t& n = len_[size_t(h)];
  if (i < 0 || i >= n) throw std::out_of_range("KV cells: remove of cell " + std::to_string(i) + " of " + std::to_string(n));
  const int64_t last = --n;
  if (i == last) return;
  std::memcpy(k(h) + i * hd_, k(h) + last * hd_, sizeof(float) * size_t(hd_));
  std::memcpy(v(h) + i * hd_, v(h) + last * hd_, sizeof(float) * size_t(hd_));
  pos_[size_t(h * cap_ + i)] = pos_[size_t(h * cap_ + last)];
  orig_[size_t(h * cap_ + i)] = orig_[size_t(h * cap_ + last)];
  tag_[size_t(h * cap_ + i)] = tag_[size_t(h * cap_ + last)];
}

size_t KVCells::bytes() const {
  return (k_.size() + v_.size()) * sizeof(float) + (pos_.size() + orig_.size()) * sizeof(int32_t) + tag_.size();
}

size_t KVCells::used_bytes() const {
  size_t cells = 0;
  for (int64_t n : len_) cells += size_t(n);
  return cells * (2 * size_t(hd_) * sizeof(float) + 2 * sizeof(int32_t) + 1);
}

void KVCells::reset() { std::fill(len_.begin(), len_.end(), 0); }

bool KVCells::truncate(int64_t p) {
  std::vector<uint8_t> keep(static_cast<size_t>(cap_));
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t i = 0; i < len(h); ++i) keep[size_t(i)] = true_pos(h)[i] < p;
    compact(h, keep.data());
  }
  return true;
}

void attend(const KVCells& kv, const float* q, float* out, int64_t H, float scale, const PositionEncoding& pe, const InferCtx& ctx) {
  constexpr int64_t kTile = 64;
  float* slopes = nullptr;
  if (pe.alibi_slope(0, H) != 0.0) {
    slopes = ctx.ws->take(size_t(H));
    for (int64_t h = 0; h < H; ++h) slopes[h] = float(pe.alibi_slope(h, H));
  }
  const int64_t T = ctx.T, hd = kv.head_dim(), Hkv = kv.heads(), group = H / Hkv, n_max = kv.max_len();
  const int64_t tile = std::min(T, kTile);
  const bool observe = ctx.on_attention != nullptr;
  // observed: one work item per KV head (its rows reach the observer in order); else per query head
  const int64_t items = observe ? Hkv : H;
  const int threads = int(std::min<int64_t>(omp_get_max_threads(), items));
  float* scores = ctx.ws->take(size_t(threads * tile * n_max));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t it = 0; it < items; ++it) {
    float* s = scores + int64_t(omp_get_thread_num()) * tile * n_max;
    const int64_t h0 = observe ? it * group : it, h1 = observe ? h0 + group : it + 1;
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kh = h / group, n = kv.len(kh);
      for (int64_t t0 = 0; t0 < T; t0 += tile) {
        const int64_t tt = std::min(tile, T - t0);
        kernels::attend_cells(out + t0 * H * hd + h * hd, H * hd, s, q + t0 * H * hd + h * hd, H * hd, ctx.pos + t0, tt, kv.k(kh),
                              kv.v(kh), kv.pos(kh), n, hd, scale, slopes ? slopes[h] : 0.0f);
        if (observe)
          for (int64_t t = 0; t < tt; ++t)
            (*ctx.on_attention)(
                {ctx.layer, h, kh, ctx.pos[t0 + t], s + t * n, kv.pos(kh), n, q + (t0 + t) * H * hd + h * hd, scale});
      }
    }
  }
}

}  // namespace clm::nn
