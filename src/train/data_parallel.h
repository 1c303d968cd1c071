// Data-parallel training over the GPUs of one host: one process per GPU, the gradients averaged
// with NCCL after every step, so that N GPUs with batch B train as one GPU with batch N·B (up to
// the order of the reductions). `clm train --device cuda --gpus N` launches it.
//
// launch() forks the workers before anything touches CUDA or OpenMP; each sees one GPU (the r-th
// entry of CUDA_VISIBLE_DEVICES, or GPU r) as device 0, so the rest of the engine never knows. The
// launching process only waits: it exits with the first worker's failure, stopping the others.
// Several hosts would run one launcher per host with NCCL over the network (the unique id handed
// out by a rendezvous instead of shared memory): not built.
#pragma once
#include <cstdint>
#include <vector>

namespace clm::dp {

bool built();  // this binary has NCCL (a CUDA build that found it)
// Forks `world` workers and returns its rank in each; the caller's process never returns.
int launch(int world);
// In a worker: the NCCL communicator over the launch's workers (rank 0 makes the unique id).
void init(int rank, int world);
int rank();
int world();
// In place, averaged over the workers: device f32 buffers (one grouped call) and a host scalar.
void average(const std::vector<std::pair<float*, int64_t>>& buffers);
double average(double v);
void finalize();

}  // namespace clm::dp
