// Row helpers shared by the training kernels: f32 goes through the dispatched SIMD table, f64 stays
// scalar (the reference). Internal to kernels/cpu.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/vec.h"

namespace clm::kernels {
namespace rows {
inline float row_max(const float* x, int64_t n) { return vec().max(x, n); }
inline double row_max(const double* x, int64_t n) {
  double m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  return m;
}
inline float row_exp_sum(const float* x, float shift, float* y, int64_t n) { return vec().exp_sum(x, shift, y, n); }
inline double row_exp_sum(const double* x, double shift, double* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (y[i] = std::exp(x[i] - shift));
  return s;
}
inline float row_dot(const float* x, const float* y, int64_t n) { return vec().dot(x, y, n); }
inline double row_dot(const double* x, const double* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}
inline void row_scale(float a, float* x, int64_t n) { vec().scale(a, x, n); }
inline void row_scale(double a, double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

// Per-thread scratch that grows and is reused (no allocation per call in steady state).
template <class T> T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
}  // namespace rows
using namespace rows;
}  // namespace clm::kernels
