// The device layer of a CUDA build: a caching allocator over cudaMalloc (blocks of a rounded size are
// kept on free lists and handed out again, so a training step allocates nothing from the driver after
// the first), copies, and error checks that name the failing call.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda.h"
#include "tensor/device.h"

namespace clm::gpu {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// Sizes are rounded so that blocks are reusable across slightly different requests: powers of two
// up to 1 MiB, then multiples of 2 MiB.
size_t round_size(size_t n) {
  if (n <= 512) return 512;
  if (n <= (size_t(1) << 20)) {
    size_t r = 512;
    while (r < n) r <<= 1;
    return r;
  }
  const size_t mb2 = size_t(2) << 20;
  return (n + mb2 - 1) / mb2 * mb2;
}

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  size_t in_use = 0, cached = 0;

  void trim() {  // hand every cached block back to the driver
    for (auto& [n, p] : free_blocks) cudaFree(p);
    free_blocks.clear();
    cached = 0;
  }
};
Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destruction order
  return *c;
}

int probe_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace

bool built() { return true; }

int count() {
  static const int n = probe_count();
  return n;
}

void require(const std::string& what) {
  if (count() == 0) throw std::runtime_error(what + ": no CUDA device is visible (" + describe() + ")");
}

void* alloc(size_t nbytes) {
  const size_t n = round_size(nbytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto it = c.free_blocks.find(n); it != c.free_blocks.end()) {
    void* p = it->second;
    c.free_blocks.erase(it);
    c.cached -= n, c.in_use += n;
    return p;
  }
  void* p = nullptr;
  if (cudaMalloc(&p, n) != cudaSuccess) {
    cudaGetLastError();
    cudaDeviceSynchronize();
    c.trim();
    if (cudaMalloc(&p, n) != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw std::runtime_error("out of GPU memory: asked for " + std::to_string(n >> 20) + " MiB with " +
                               std::to_string(c.in_use >> 20) + " MiB in use, " + std::to_string(free_b >> 20) +
                               " MiB free of " + std::to_string(total_b >> 20) +
                               " (a smaller --batch-size or --seq-len needs less)");
    }
  }
  c.in_use += n;
  return p;
}

void release(void* p, size_t nbytes) {
  if (!p) return;
  const size_t n = round_size(nbytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.free_blocks.emplace(n, p);  // the default stream orders later kernels after earlier uses
  c.in_use -= n, c.cached += n;
}

void copy(void* dst, Device dd, const void* src, Device sd, size_t nbytes) {
  if (!nbytes) return;
  const cudaMemcpyKind kind = dd == Device::cuda ? (sd == Device::cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                                 : (sd == Device::cuda ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  check(cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy");
}

void zero(void* p, size_t nbytes) {
  if (nbytes) check(cudaMemsetAsync(p, 0, nbytes, 0), "cudaMemsetAsync");
}

void sync() { check(cudaDeviceSynchronize(), "a kernel failed"); }

// Under bf16 autocast the matmuls that stay f32 (attention's) take TF32 tensor cores, as autocast
// lowers every matmul's precision.
static bool g_tf32 = false, g_bf16 = false;
void set_tf32(bool on) { cuda::set_tf32((g_tf32 = on) || g_bf16); }
void set_bf16(bool on) { cuda::set_tf32(g_tf32 || (g_bf16 = on)); }
bool bf16() { return g_bf16; }

size_t bytes_in_use() { return cache().in_use; }
size_t bytes_cached() { return cache().cached; }

std::string describe() {
  if (count() == 0) {
    int drv = 0;
    cudaDriverGetVersion(&drv);
    return drv ? "the driver reports no device" : "no CUDA driver";
  }
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.1f", double(p.totalGlobalMem) / double(1 << 30));
  return std::string(p.name) + ", " + gib + " GiB, sm_" + std::to_string(p.major) + std::to_string(p.minor);
}

}  // namespace clm::gpu
