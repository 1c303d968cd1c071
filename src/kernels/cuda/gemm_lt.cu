// Low-precision tensor-core GEMMs through cuBLASLt (cuda.h): INT8 x INT8 -> INT32 and FP8 E4M3 x
// E4M3 -> f32 / bf16 with per-tensor scales. Both take row-major A [M, K] and B [N, K] (a weight's
// layout) and produce row-major C [M, N] = A B^T: in cuBLAS's column-major terms C^T = B^T A with
// B transposed and A not, the "TN" layout Hopper's FP8 kernels require.
#include <cublasLt.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace clm::cuda {

namespace {

cublasLtHandle_t lt() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t x = nullptr;
    if (cublasLtCreate(&x) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("CUDA: cublasLtCreate failed");
    return x;
  }();
  return h;
}

void ok(cublasStatus_t st, const char* what, int M, int N, int K) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("CUDA: cuBLASLt ") + what + " failed (status " + std::to_string(int(st)) + ", M " +
                             std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K) + ")");
}

// A workspace for cuBLASLt's split-K kernels, kept for the process (allocated by gemm_lt_init or the
// first product: never inside a graph capture when the caller ran gemm_lt_init first).
void* workspace(size_t& n) {
  static void* p = nullptr;
  n = size_t(32) << 20;
  if (!p && cudaMalloc(&p, n) != cudaSuccess) throw std::runtime_error("CUDA: out of GPU memory for the cuBLASLt workspace");
  return p;
}

// C^T [N, M] (col-major, ld N) = op(B^T) A with B [N, K] and A [M, K] row-major = col-major [K, N] / [K, M].
void lt_matmul(cublasComputeType_t compute, cudaDataType_t scale_type, cudaDataType_t ab, cudaDataType_t ct, const void* A,
               const void* B, void* C, int M, int N, int K, const void* alpha, const void* beta, const float* a_scale,
               const float* b_scale, const char* what) {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  auto cleanup = [&] {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
  };
  try {
    ok(cublasLtMatmulDescCreate(&op, compute, scale_type), what, M, N, K);
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)), what, M, N, K);
    ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)), what, M, N, K);
    // cuBLAS's "A" is our B and its "B" our A: the scales swap too.
    if (b_scale) ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &b_scale, sizeof(b_scale)), what, M, N, K);
    if (a_scale) ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &a_scale, sizeof(a_scale)), what, M, N, K);
    // Our B (N x K row-major) is a K x N col-major matrix used transposed; our A is K x M col-major.
    ok(cublasLtMatrixLayoutCreate(&la, ab, K, N, K), what, M, N, K);
    ok(cublasLtMatrixLayoutCreate(&lb, ab, K, M, K), what, M, N, K);
    ok(cublasLtMatrixLayoutCreate(&lc, ct, N, M, N), what, M, N, K);
    size_t ws = 0;
    void* w = workspace(ws);
    ok(cublasLtMatmulPreferenceCreate(&pref), what, M, N, K);
    ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), what, M, N, K);
    cublasLtMatmulHeuristicResult_t h{};
    int found = 0;
    ok(cublasLtMatmulAlgoGetHeuristic(lt(), op, la, lb, lc, lc, pref, 1, &h, &found), what, M, N, K);
    if (found == 0) ok(CUBLAS_STATUS_NOT_SUPPORTED, what, M, N, K);
    ok(cublasLtMatmul(lt(), op, alpha, B, la, A, lb, beta, C, lc, C, lc, &h.algo, w, ws, launch_stream()), what, M, N, K);
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

}  // namespace

void gemm_lt_init() {
  size_t n = 0;
  lt();
  workspace(n);
}

static void check_dims(int M, int N, int K, const char* what) {
  if (M % 16 || N % 16 || K % 16)
    throw std::invalid_argument(std::string(what) + ": M, N and K must be multiples of 16 (got " + std::to_string(M) + ", " +
                                std::to_string(N) + ", " + std::to_string(K) + ")");
}

void gemm_i8(int M, int N, int K, const int8_t* A, const int8_t* B, int32_t* C) {
  check_dims(M, N, K, "INT8 GEMM");
  if (M == 0 || N == 0) return;
  const int32_t alpha = 1, beta = 0;
  lt_matmul(CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I, A, B, C, M, N, K, &alpha, &beta, nullptr, nullptr, "INT8 GEMM");
}

void gemm_fp8(int M, int N, int K, const uint8_t* A, const uint8_t* B, const float* a_scale, const float* b_scale, void* C,
              bool c_bf16) {
  check_dims(M, N, K, "FP8 GEMM");
  if (M == 0 || N == 0) return;
  const float alpha = 1.f, beta = 0.f;
  lt_matmul(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_8F_E4M3, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, A, B, C, M, N, K, &alpha, &beta,
            a_scale, b_scale, "FP8 GEMM");
}

}  // namespace clm::cuda
