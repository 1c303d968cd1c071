// W8A8 linear layers on the GPU (cuda.h linear_i8): the activations quantized per token on the
// device with the CPU Int8Format's rules, an INT8 tensor-core GEMM (gemm_lt.cu), and the scales
// applied to the INT32 sums.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {

// One block per row of Kp codes (rows >= M and columns >= K are zeros: the GEMM's padding). The
// formulas and their order are Int8Format::matmul's, so the codes and scales are the CPU's bit for bit.
__global__ void k_quant_rows(int8_t* q, float* sx, const float* x, int64_t M, int64_t K, int64_t Kp, const float* cvec, int mode,
                             double alpha) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  int8_t* qr = q + row * Kp;
  for (int64_t j = K + threadIdx.x; j < Kp; j += blockDim.x) qr[j] = 0;
  if (row >= M) {
    for (int64_t j = threadIdx.x; j < K; j += blockDim.x) qr[j] = 0;
    if (threadIdx.x == 0) sx[row] = 0.f;
    return;
  }
  const float* xr = x + row * K;
  float m = 0.f;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) m = fmaxf(m, fabsf(mode == 1 ? xr[j] / cvec[j] : xr[j]));
  const float amax = block_max(m, sh);
  if (amax == 0.f) {
    for (int64_t j = threadIdx.x; j < K; j += blockDim.x) qr[j] = 0;
    if (threadIdx.x == 0) sx[row] = 0.f;
    return;
  }
  const float scale = mode == 2 ? float(pow(double(amax), alpha)) / 127.0f : amax / 127.0f;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    float v;
    if (mode == 2) {
      const float d = scale * cvec[j];
      v = d > 0 ? xr[j] / d : 0.f;
    } else {
      v = (mode == 1 ? xr[j] / cvec[j] : xr[j]) / scale;
    }
    qr[j] = int8_t(fminf(fmaxf(rintf(v), -127.f), 127.f));
  }
  if (threadIdx.x == 0) sx[row] = scale;
}

__global__ void k_dequant(float* y, int64_t ldy, const int32_t* acc, int64_t lda, const float* sx, const float* sw, int64_t M, int64_t N,
                          bool accumulate) {
  CLM_GRID_STRIDE(i, M * N) {
    const int64_t t = i / N, n = i % N;
    const float v = float(acc[t * lda + n]) * sx[t] * sw[n];
    float* o = y + t * ldy + n;
    *o = accumulate ? *o + v : v;
  }
}

}  // namespace

int64_t i8_pad(int64_t n) { return (n + 15) / 16 * 16; }

void linear_i8(float* y, const float* x, const int8_t* wq, const float* sw, int64_t M, int64_t N, int64_t K, const float* cvec, int mode,
               double alpha, int8_t* xq, float* sx, int32_t* acc, int64_t ldy, bool accumulate) {
  if (M == 0) return;
  if (mode < 0 || mode > 2 || (mode != 0 && !cvec)) throw std::invalid_argument("linear_i8: mode 0, or 1 / 2 with a column vector");
  const int64_t Mp = i8_pad(M), Np = i8_pad(N), Kp = i8_pad(K);
  k_quant_rows<<<unsigned(Mp), 256, 0, launch_stream()>>>(xq, sx, x, M, K, Kp, cvec, mode, alpha);
  check_launch("k_quant_rows");
  gemm_i8(int(Mp), int(Np), int(Kp), xq, wq, acc);
  k_dequant<<<grid_for(M * N), 256, 0, launch_stream()>>>(y, ldy > 0 ? ldy : N, acc, Np, sx, sw, M, N, accumulate);
  check_launch("k_dequant");
}

}  // namespace clm::cuda
