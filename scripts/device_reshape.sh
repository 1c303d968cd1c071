#!/usr/bin/env bash
# The core reshape's side-by-side measurements (issue #7) on the device machine's host CPU, a quiet
# machine (nothing else runs there; the GPU is not used). For a pack made by
#   git worktree add ../base ff1e752 && (cd ../base && cmake -S . -B build -G Ninja && cmake --build build --target clm_bench_decode clm_bench_train)
#   mkdir -p /tmp/ffbin && cp ../base/build/bench/clm_bench_decode /tmp/ffbin/ff_bench_decode && cp ../base/build/bench/clm_bench_train /tmp/ffbin/ff_bench_train
#   scripts/pack_for_device.sh tests/fixtures/gpt2_tiny build/bench/clm_bench_decode build/bench/clm_bench_train /tmp/ffbin/ff_bench_decode /tmp/ffbin/ff_bench_train
# it runs, each pinned to the same two cores with two threads:
#   1. ROUNDS rounds alternating ff1e752 (the commit before the reshape) and this commit: bench_decode
#      (110M-shape Llama: decode f32/bf16, prefill of 64 tokens) and bench_train;
#   2. the PyTorch peer of the image (2.x) with einsum attention and with scaled_dot_product_attention,
#      beside clm_bench_decode on the same model, alternating;
#   3. GPT-2's cut tokenizer's reference ids by Hugging Face's tokenizers (tools/make_gpt2_tiny.py ids).
# ROUNDS (default 3) rounds; PEERS=0 leaves out step 2.
# Results under $OUT: reshape.jsonl (one line per measurement, with "impl" and "round"), cpu.txt,
# gpt2_tiny_reference.json.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mkdir -p /tmp/dev && tar -xJf devpack/pack.tar.xz -C /tmp/dev
run() { local b=$1; shift; /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/$b "$@"; }
lscpu | grep -E "Model name|^CPU\(s\)|L2|L3|Flags" | cut -c1-200 | tee "$OUT/cpu.txt"
python3 -c "import torch, tokenizers; print('torch', torch.__version__, 'tokenizers', tokenizers.__version__)" | tee -a "$OUT/cpu.txt"
# the pack runs through the loader, so clm cannot re-run itself with OpenBLAS's kernels for the CPU
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_NUM_THREADS=2
PIN="taskset -c ${CORES:-2,3}"
J="$OUT/reshape.jsonl"
tag() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(json.loads(sys.argv[1])); print(json.dumps(d))" "$1" >> "$J"; }
mkdir -p /tmp/g && cp tests/fixtures/gpt2_tiny/encoder.json tests/fixtures/gpt2_tiny/vocab.bpe /tmp/g/ &&
  python3 tools/make_gpt2_tiny.py ids /tmp/g && cp /tmp/g/reference.json "$OUT/gpt2_tiny_reference.json"
for r in $(seq ${ROUNDS:-3}); do
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/ff_bench_decode --prompt 64 --tokens 64 | tag "{\"impl\":\"ff1e752\",\"bench\":\"decode\",\"round\":$r}"
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_decode --prompt 64 --tokens 64 --only f32 | tag "{\"impl\":\"this\",\"bench\":\"decode\",\"round\":$r}"
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_decode --prompt 64 --tokens 64 --only bf16 | tag "{\"impl\":\"this\",\"bench\":\"decode\",\"round\":$r}"
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/ff_bench_train | tag "{\"impl\":\"ff1e752\",\"bench\":\"train\",\"round\":$r}"
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_train | tag "{\"impl\":\"this\",\"bench\":\"train\",\"round\":$r}"
done
[ "${PEERS:-1}" = 0 ] && { cat "$J"; exit 0; }
# the PyTorch peer on the same model (clm_bench_decode's seed-1234 weights, exported as llama2.c)
run clm_bench_decode --tokens 4 --only f32 --export-llama2c /tmp/m110.bin > /dev/null
for r in $(seq ${ROUNDS:-3}); do
  for attn in einsum sdpa; do
    TORCH_ATTN=$attn OMP_WAIT_POLICY=PASSIVE $PIN python3 bench/torch_decode.py /tmp/m110.bin 64 64 | tag "{\"bench\":\"peer\",\"round\":$r}"
  done
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_decode --prompt 64 --tokens 64 --only f32 | tag "{\"impl\":\"this\",\"bench\":\"peer\",\"round\":$r}"
  $PIN /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm_bench_decode --prompt 64 --tokens 64 --only bf16 | tag "{\"impl\":\"this\",\"bench\":\"peer\",\"round\":$r}"
done
cat "$J"
