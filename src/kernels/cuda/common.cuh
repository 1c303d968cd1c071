// Shared pieces of the CUDA kernels: launch checks, grid sizes, warp and block reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace clm::cuda {

// The stream every launcher queues on: the default one, or the stream the GPU decoder set while it
// captures a step (decode.h set_stream).
cudaStream_t launch_stream();

#define CLM_GRID_STRIDE(i, n) for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

inline void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA kernel ") + kernel + ": " + cudaGetErrorString(e));
}

// Programmatic dependent launch (Hopper): a kernel queued by launch() may start while the previous one
// in the stream finishes. So each such kernel first does what needs no earlier result (a GEMV loads
// its first weights), then calls wait_for_previous() before it reads anything an earlier kernel
// wrote (griddepcontrol.wait: the previous grid has completed and its writes are visible), which
// also lets the next grid launch.
__device__ inline void wait_for_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

template <class... KArgs, class... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, const char* name, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = 0, cfg.stream = launch_stream();
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = 1;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // a failed launch leaves no sticky error: later launches report their own
    throw std::runtime_error(std::string("CUDA kernel ") + name + ": " + cudaGetErrorString(e));
  }
}

// Blocks of 256 threads for n elements with a grid-stride loop: at most 4096 blocks.
inline unsigned grid_for(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > 4096 ? 4096 : b));
}
// A grid-stride kernel over n elements on the current stream (nothing launched for n = 0).
#define CLM_LAUNCH(name, n, ...)                                              \
  do {                                                                        \
    if ((n) > 0) name<<<grid_for(n), 256, 0, launch_stream()>>>(__VA_ARGS__); \
    check_launch(#name);                                                      \
  } while (0)

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x (a multiple of 32, <= 1024) threads; every thread gets the result.
template <class T> __device__ T block_sum(T v, T* shared32) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // shared32 may still be read by a previous call
  if (lane == 0) shared32[w] = v;
  __syncthreads();
  v = lane < nw ? shared32[lane] : T(0);
  return warp_sum(v);
}
__device__ inline float block_max(float v, float* shared32) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared32[w] = v;
  __syncthreads();
  v = lane < nw ? shared32[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace clm::cuda
