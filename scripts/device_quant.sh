#!/usr/bin/env bash
# The quantized kernels on the device machine's host CPU (Intel Xeon, AVX-512 VNNI / BF16, AMX; 16
# cores), made for a pack built by
#   scripts/pack_for_device.sh ../shared/data/wikitext-2 build/tests/test_quant build/bench/clm_bench_gemm build/bench/clm_bench_decode
# Usage there: scripts/device_quant.sh   (results under $OUT)
#   the quantization tests (every kernel tier against the scalar reference), then INT8 GEMM vs
#   OpenBLAS SGEMM and the 110M-shape decode rows at 2 and 16 threads, alternating rounds.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mkdir -p /tmp/dev && tar -xJf devpack/pack.tar.xz -C /tmp/dev
run() { local b=$1; shift; /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/$b "$@"; }
lscpu | grep -E "Model name|^CPU\(s\)" | tee $OUT/cpu.txt
run test_quant 2>&1 | tail -5 | tee $OUT/test_quant.log
for r in 1 2; do
  for t in 2 16; do
    OMP_NUM_THREADS=$t run clm_bench_gemm --threads $t --reps 5 | tee -a $OUT/gemm.jsonl
    for o in bf16 w8a8 w4a4 w8 w4g32; do
      OMP_NUM_THREADS=$t run clm_bench_decode --threads $t --tokens 64 --only $o --quant-head | tail -1 | tee -a $OUT/decode.jsonl
    done
  done
done
