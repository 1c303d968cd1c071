#!/usr/bin/env bash
# Compiles what a -DCLM_CUDA=ON build adds or changes (the CUDA kernels, the device layer, the GPU ops
# and the files with CLM_CUDA branches, tests/test_cuda.cpp) without a GPU and without building the
# whole engine twice. Skips with a message when there is no nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then echo "cuda_compile_check: no nvcc, skipped"; exit 0; fi
B=${BUILD:-build-cuda}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLM_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" >/dev/null
objs=$(ninja -C "$B" -t targets all | cut -d: -f1 |
       grep -E '\.cu\.o$|infer/gpu_decoder\.cpp\.o$|cli/common\.cpp\.o$|ops_cuda\.cpp\.o$|autograd/ops\.cpp\.o$|train/optim\.cpp\.o$|models/lm\.cpp\.o$|train/data_parallel\.cpp\.o$|test_cuda\.cpp\.o$')
ninja -C "$B" $objs
echo "cuda_compile_check: $(echo "$objs" | wc -l) objects compiled with CLM_CUDA"
