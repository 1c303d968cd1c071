// GEMM through cuBLAS. cuBLAS is column-major: a row-major C[M,N] is a column-major C^T[N,M], and
// C^T = op(B)^T op(A)^T, so the row-major call is cuBLAS's with A and B (and M and N) swapped.
#include <cublas_v2.h>

#include <mutex>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {
bool g_tf32 = false;
cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("CUDA: cublasCreate failed");
    return x;
  }();
  return h;
}
}  // namespace

void set_tf32(bool on) { g_tf32 = on; }

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
          float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cublasHandle_t h = handle();
  cublasSetMathMode(h, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  cublasSetStream(h, launch_stream());
  const cublasStatus_t st = cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                                        ldb, A, lda, &beta, C, ldc);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("CUDA: cublasSgemm failed (status " + std::to_string(int(st)) + ", M " + std::to_string(M) +
                             " N " + std::to_string(N) + " K " + std::to_string(K) + ")");
}

void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, int64_t sa, const float* B, int ldb,
                  int64_t sb, float beta, float* C, int ldc, int64_t sc, int batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  cublasHandle_t h = handle();
  cublasSetMathMode(h, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  cublasSetStream(h, launch_stream());
  const cublasStatus_t st = cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                                      &alpha, B, ldb, sb, A, lda, sa, &beta, C, ldc, sc, batch);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("CUDA: cublasSgemmStridedBatched failed (status " + std::to_string(int(st)) + ")");
}

void gemm_bf16(bool ta, bool tb, int M, int N, int K, float alpha, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cublasSetStream(handle(), launch_stream());
  const cublasStatus_t st =
      cublasGemmEx(handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_16BF, ldb, A,
                   CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("CUDA: cublasGemmEx (bf16) failed (status " + std::to_string(int(st)) + ", M " + std::to_string(M) +
                             " N " + std::to_string(N) + " K " + std::to_string(K) + ")");
}

}  // namespace clm::cuda
