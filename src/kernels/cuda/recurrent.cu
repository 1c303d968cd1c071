// The recurrent cells' elementwise steps (TSLM, LSTM). Their arrays hold row b*T + t for lane b at
// time t, as autograd/ops.cpp's scans do, so the B rows of one step are `ld` = T * width apart; the
// matrix products between the steps are cuBLAS calls made by autograd/ops_cuda.cpp.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {

__device__ inline float sigm(float x) { return 1.f / (1.f + expf(-x)); }

__global__ void k_tslm_fwd(float* y, float* z, const float* a, const float* b, int64_t B, int64_t H, int64_t ld) {
  CLM_GRID_STRIDE(i, B * H) {
    const int64_t j = i % H, o = (i / H) * ld + j;
    const float zz = z[o] + b[j];
    z[o] = zz;
    y[o] = a[o] * zz;
  }
}

__global__ void k_tslm_bwd(float* dz, float* da, const float* dh, const float* g, const float* a, const float* z, int64_t B, int64_t H,
                           int64_t ld) {
  CLM_GRID_STRIDE(i, B * H) {
    const int64_t o = (i / H) * ld + i % H;
    const float d = dh[i] + g[o];
    if (da) da[o] += d * z[o];
    dz[o] = d * a[o];
  }
}

// q: the step's pre-activations h_{t-1} W^T [B, 4H] (rows ldq apart), replaced by the activations
// i, f, g, o; c and y rows ldh apart, cp (c_{t-1}) rows ldcp apart.
__global__ void k_lstm_fwd(float* y, float* c, float* q, const float* x, const float* b, const float* cp, int64_t ldcp, int64_t B,
                           int64_t H, int64_t ldq, int64_t ldh) {
  CLM_GRID_STRIDE(n, B * H) {
    const int64_t r = n / H, j = n % H;
    float* qr = q + r * ldq;
    const float* xr = x + r * ldq;
    const float i = sigm(qr[j] + xr[j] + b[j]), f = sigm(qr[H + j] + xr[H + j] + b[H + j]),
                g = tanhf(qr[2 * H + j] + xr[2 * H + j] + b[2 * H + j]), o = sigm(qr[3 * H + j] + xr[3 * H + j] + b[3 * H + j]);
    qr[j] = i, qr[H + j] = f, qr[2 * H + j] = g, qr[3 * H + j] = o;
    const float ct = f * cp[r * ldcp + j] + i * g;
    c[r * ldh + j] = ct;
    y[r * ldh + j] = o * tanhf(ct);
  }
}

__global__ void k_lstm_bwd(float* dq, float* dc, const float* dh, const float* gy, const float* q, const float* c, const float* cp,
                           int64_t ldcp, int64_t B, int64_t H, int64_t ldq, int64_t ldh) {
  CLM_GRID_STRIDE(n, B * H) {
    const int64_t r = n / H, j = n % H;
    const float* qr = q + r * ldq;
    float* e = dq + r * ldq;
    const float i = qr[j], f = qr[H + j], g = qr[2 * H + j], o = qr[3 * H + j];
    const float th = tanhf(c[r * ldh + j]);
    const float d = dh[n] + gy[r * ldh + j];
    const float dct = dc[n] + d * o * (1.f - th * th);
    e[j] = dct * g * i * (1.f - i);
    e[H + j] = dct * cp[r * ldcp + j] * f * (1.f - f);
    e[2 * H + j] = dct * i * (1.f - g * g);
    e[3 * H + j] = d * th * o * (1.f - o);
    dc[n] = dct * f;
  }
}

__global__ void k_copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t R, int64_t W) {
  CLM_GRID_STRIDE(i, R * W) dst[(i / W) * ldd + i % W] = src[(i / W) * lds + i % W];
}

__global__ void k_previous_states(float* hp, const float* y, const float* h0, int64_t B, int64_t T, int64_t H) {
  CLM_GRID_STRIDE(i, B * T * H) {
    const int64_t row = i / H, t = row % T, j = i % H;
    hp[i] = t == 0 ? h0[(row / T) * H + j] : y[(row - 1) * H + j];
  }
}

}  // namespace

void tslm_step_forward(float* y, float* z, const float* a, const float* b, int64_t B, int64_t H, int64_t ld) {
  CLM_LAUNCH(k_tslm_fwd, B * H, y, z, a, b, B, H, ld);
}
void tslm_step_backward(float* dz, float* da, const float* dh, const float* g, const float* a, const float* z, int64_t B, int64_t H,
                        int64_t ld) {
  CLM_LAUNCH(k_tslm_bwd, B * H, dz, da, dh, g, a, z, B, H, ld);
}
void lstm_step_forward(float* y, float* c, float* q, const float* x, const float* b, const float* c_prev, int64_t ld_prev, int64_t B,
                       int64_t H, int64_t ldq, int64_t ldh) {
  CLM_LAUNCH(k_lstm_fwd, B * H, y, c, q, x, b, c_prev, ld_prev, B, H, ldq, ldh);
}
void lstm_step_backward(float* dq, float* dc, const float* dh, const float* g, const float* q, const float* c, const float* c_prev,
                        int64_t ld_prev, int64_t B, int64_t H, int64_t ldq, int64_t ldh) {
  CLM_LAUNCH(k_lstm_bwd, B * H, dq, dc, dh, g, q, c, c_prev, ld_prev, B, H, ldq, ldh);
}
void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t R, int64_t W) {
  CLM_LAUNCH(k_copy_rows, R * W, dst, ldd, src, lds, R, W);
}
void previous_states(float* hp, const float* y, const float* h0, int64_t B, int64_t T, int64_t H) {
  CLM_LAUNCH(k_previous_states, B * T * H, hp, y, h0, B, T, H);
}

}  // namespace clm::cuda
