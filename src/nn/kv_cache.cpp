#include "nn/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace clm::nn {

KVCells::KVCells(int64_t n_kv_heads, int64_t head_dim, int64_t capacity)
    : heads_(n_kv_heads), hd_(head_dim), cap_(capacity) {
  if (heads_ <= 0 || hd_ <= 0 || cap_ <= 0) throw std::invalid_argument("KV cache: heads, head dim and capacity must be > 0");
  k_.assign(size_t(heads_ * cap_ * hd_), 0.0f);
  v_.assign(size_t(heads_ * cap_ * hd_), 0.0f);
  pos_.assign(size_t(heads_ * cap_), 0);
  tag_.assign(size_t(heads_ * cap_), 0);
  len_.assign(size_t(heads_), 0);
}

int64_t KVCells::max_len() const { return *std::max_element(len_.begin(), len_.end()); }

void KVCells::append(const float* k, const float* v, int64_t T, const int32_t* pos, uint8_t tag) {
  if (max_len() + T > cap_)
    throw std::length_error("KV cache full: " + std::to_string(max_len()) + " + " + std::to_string(T) + " tokens > capacity " +
                            std::to_string(cap_));
  const int64_t W = heads_ * hd_;
  for (int64_t h = 0; h < heads_; ++h) {
    int64_t& n = len_[size_t(h)];
    for (int64_t t = 0; t < T; ++t, ++n) {
      std::memcpy(this->k(h) + n * hd_, k + t * W + h * hd_, sizeof(float) * size_t(hd_));
      std::memcpy(this->v(h) + n * hd_, v + t * W + h * hd_, sizeof(float) * size_t(hd_));
      pos_[size_t(h * cap_ + n)] = pos[t];
      tag_[size_t(h * cap_ + n)] = tag;
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
      tag_[size_t(h * cap_ + w)] = tag_[size_t(h * cap_ + r)];
    }
    ++w;
  }
  return n = w;
}

size_t KVCells::bytes() const {
  return (k_.size() + v_.size()) * sizeof(float) + pos_.size() * sizeof(int32_t) + tag_.size();
}

size_t KVCells::used_bytes() const {
  size_t cells = 0;
  for (int64_t n : len_) cells += size_t(n);
  return cells * (2 * size_t(hd_) * sizeof(float) + sizeof(int32_t) + 1);
}

void KVCells::reset() { std::fill(len_.begin(), len_.end(), 0); }

bool KVCells::truncate(int64_t p) {
  std::vector<uint8_t> keep(static_cast<size_t>(cap_));
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t i = 0; i < len(h); ++i) keep[size_t(i)] = pos(h)[i] < p;
    compact(h, keep.data());
  }
  return true;
}

}  // namespace clm::nn
