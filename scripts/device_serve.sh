#!/usr/bin/env bash
# The serving load test on the device machine's host CPUs (the GPU is not used): for a pack made by
#   scripts/pack_for_device.sh tests/fixtures/tasks build/bench/clm_bench_serve
# Makes the two random-weight benchmark models there (tools/make_bench_model.py, PyTorch of the
# image), serves each with 16 slots and runs clm_bench_serve at 1, 4 and 16 clients, 3 rounds.
# Results under $OUT: serve_bench.jsonl, cpu.txt, the servers' logs.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mkdir -p /tmp/dev && tar -xJf devpack/pack.tar.xz -C /tmp/dev
run() { local b=$1; shift; /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/$b "$@"; }
lscpu | grep -E "Model name|^CPU\(s\)|L2|L3|Flags" | cut -c1-200 | tee "$OUT/cpu.txt"
MODELS=${MODELS:-m94 m23}
[[ $MODELS == *m94* ]] && python3 tools/make_bench_model.py /tmp/m94
[[ $MODELS == *m23* ]] && python3 tools/make_bench_model.py /tmp/m23 512 8 1376
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}   # the pack runs through the loader: clm cannot re-run itself
for m in $MODELS; do
  run clm serve --model /tmp/$m --port 8097 --slots 16 --ctx 512 --queue 64 ${THREADS:+--threads $THREADS} >"$OUT/serve_$m.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do run clm_bench_serve --port 8097 --clients 1 --requests 1 --max-tokens 1 >/dev/null 2>&1 && break; sleep 0.5; done
  for _ in $(seq ${ROUNDS:-3}); do
    timeout ${BENCH_S:-300} /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_serve \
      --port 8097 --clients 1,4,16 --requests ${REQUESTS:-4} --max-tokens 64 --label "$m, H200 host CPU (${THREADS:-all} threads${OMP_WAIT_POLICY:+, OMP_WAIT_POLICY=$OMP_WAIT_POLICY})" \
      --out "$OUT/serve_bench.jsonl"
  done
  kill "$pid"; wait "$pid"
done
