// CUDA kernels for KV-cached inference (infer/gpu_decoder.cpp): matrix-vector products over bf16 or
// f32 weights, rotation and KV append at positions read from device memory, attention of a few
// queries over a cache split across blocks (flash-decoding), and the stream and graph plumbing that
// lets one decoding step be captured once and replayed. Plain C++ declarations: host code includes
// this without nvcc. Pointers are device pointers unless named host_.
//
// Everything here runs on the "current stream" (set_stream), which the training kernels of cuda.h
// share: the decoder points it at its own stream while it works so that a step can be captured.
#pragma once
#include <cstddef>
#include <cstdint>

namespace clm::cuda {

using Stream = void*;  // cudaStream_t
using Graph = void*;   // cudaGraphExec_t

Stream stream_create();
void stream_destroy(Stream s);
void stream_sync(Stream s);
void set_stream(Stream s);  // the stream every launcher in cuda.h / decode.h uses (nullptr: the default one)
Stream current_stream();
// Captures every launch and copy queued on s between the two calls into a replayable graph.
void capture_begin(Stream s);
Graph capture_end(Stream s);
void graph_launch(Graph g, Stream s);
void graph_destroy(Graph g);
void* host_alloc(size_t nbytes);  // page-locked host memory (copies in a captured graph read / write it)
void host_free(void* p);
void copy_async(void* dst, const void* src, size_t nbytes, Stream s);  // any direction, on s

// y[t, n] (= or +=) sum_k W[n, k] x[t, k] + bias[n] for t < T: W [N, K] row-major, bf16 (raw bits)
// or f32, f32 accumulation; bias may be null. One warp per row, every row read once per 8 tokens.
void gemv_bf16(float* y, const uint16_t* W, const float* bias, const float* x, int64_t N, int64_t K, int64_t T, bool accumulate);
void gemv_f32(float* y, const float* W, const float* bias, const float* x, int64_t N, int64_t K, int64_t T, bool accumulate);

// The call's T tokens sit at positions *pos0 + t. Rows of qkv [T, (H + 2 Hkv) hd] are [q | k | v]:
// q and k are rotated in place by the table rot [positions, hd] (cos of pair i at i, sin at hd/2 + i;
// pairs (i, i + hd/2), or (2i, 2i + 1) when interleaved; null: no rotation), then k and v are
// written to the caches kc / vc [capacity, Hkv, hd] at their positions.
void rope_append(float* qkv, float* kc, float* vc, const float* rot, const int32_t* pos0, int64_t T, int64_t H, int64_t Hkv,
                 int64_t hd, bool interleaved);
// x[t] += table[*pos0 + t] (learned positions), x [T, D].
void add_position_rows(float* x, const float* table, const int32_t* pos0, int64_t T, int64_t D);

// Softmax attention of the call's T queries (in qkv, rows as above) over the cache: query t at
// position p = *pos0 + t reads cells 0..p of its KV head (h / (H / Hkv)), scores scaled by `scale`,
// ALiBi -slopes[h] (p - j) when slopes is given. Keys are split into chunks of kDecodeChunk, one
// block each (chunks = ceil(capacity / kDecodeChunk), those past p return at once), and the chunks'
// partial softmaxes are merged: part needs T * H * chunks * (hd + 2) floats. out [T, H hd].
constexpr int64_t kDecodeChunk = 256;
void decode_attention(float* out, float* part, const float* qkv, const float* kc, const float* vc, const int32_t* pos0,
                      int64_t T, int64_t H, int64_t Hkv, int64_t hd, int64_t chunks, float scale, const float* slopes);

// y = RMSNorm(x) (weights w + offset) or LayerNorm(x) (w, b: b may be null) over rows of D: the
// formulas of cuda.h's rmsnorm_forward / layernorm_forward, each row read once. False (nothing
// launched) when D > 8192: use those.
bool norm_rows(float* y, const float* x, const float* w, const float* b, int64_t T, int64_t D, float eps, float offset, bool layernorm);
void add_bias(float* y, const float* bias, int64_t T, int64_t N);  // y[t, n] += bias[n]

// Gated MLP activations: gu [T, 2F] = [gate | up] rows -> y [T, F] = act(gate) * up, act = SiLU or
// GELU (tanh form).
void glu(float* y, const float* gu, int64_t T, int64_t F, bool gelu_tanh);

}  // namespace clm::cuda
