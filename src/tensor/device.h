// Where a tensor's bytes live: host memory or the memory of a CUDA device.
// The CPU build answers every device question ("no CUDA backend in this build"); a build configured
// with -DCLM_CUDA=ON implements the gpu:: functions in device_cuda.cu: a caching allocator over
// cudaMalloc, copies between host and device, one stream (the default one) for every kernel.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace clm {

enum class Device : uint8_t { cpu, cuda };
const char* device_name(Device d);
Device parse_device(const std::string& name);  // "cpu" | "cuda"; throws naming the bad value

namespace gpu {
bool built();        // this binary has the CUDA backend
int count();         // CUDA devices visible (0 without the backend or a device)
// Throws a one-line error unless the backend is built and a device is visible; `what` names the
// request ("--device cuda").
void require(const std::string& what);
void* alloc(size_t nbytes);  // cached; throws "out of GPU memory ..." when the device is full
void release(void* p, size_t nbytes);
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
void zero(void* p, size_t nbytes);
void sync();                  // waits for every queued kernel; throws on an asynchronous kernel error
size_t bytes_in_use();        // allocated to live tensors
size_t bytes_cached();        // freed blocks kept for reuse
std::string describe();       // "NVIDIA H200, 139.8 GiB, sm_90" or why there is none
void set_tf32(bool on);       // matmuls on TF32 tensor cores (default off: exact f32 products)
// bf16 autocast: Linear's matmuls take bf16 copies of their inputs and weights (f32 accumulation,
// f32 outputs, f32 master weights and gradients); every other op stays f32. Default off.
void set_bf16(bool on);
bool bf16();
}  // namespace gpu

}  // namespace clm
