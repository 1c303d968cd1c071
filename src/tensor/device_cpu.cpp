// The device layer of a CPU-only build: no CUDA device exists, and asking for one says how to get it.
#include <stdexcept>

#include "tensor/device.h"

namespace clm::gpu {

static const char* kNoBackend = "this build has no CUDA backend (configure with -DCLM_CUDA=ON on a machine with nvcc)";

bool built() { return false; }
int count() { return 0; }
void require(const std::string& what) { throw std::runtime_error(what + ": " + kNoBackend); }
void* alloc(size_t) { throw std::runtime_error(kNoBackend); }
void release(void*, size_t) {}
void copy(void*, Device, const void*, Device, size_t) { throw std::runtime_error(kNoBackend); }
void zero(void*, size_t) { throw std::runtime_error(kNoBackend); }
void sync() {}
size_t bytes_in_use() { return 0; }
size_t bytes_cached() { return 0; }
std::string describe() { return kNoBackend; }
void set_tf32(bool) {}
void set_bf16(bool) {}
bool bf16() { return false; }

}  // namespace clm::gpu
