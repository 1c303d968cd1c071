#!/usr/bin/env bash
# The KV-eviction study on a vision-language model from `clm train --task shapes`: every policy at
# several budgets on the short answers (image understanding) and on the descriptions (long
# generation), HAE's prefill stage alone and with its decode stage, each question kind with the full
# cache; JSONL rows, markdown tables (tools/kv_table.py) and SVG plots in OUT.
# Usage: [ITEMS=300] [BUDGETS="0.3 0.4 ..."] [THREADS=2] scripts/kv_vlm.sh MODEL OUT
set -euo pipefail
model=$1; out=$2
clm=${CLM:-./build/clm}
items=${ITEMS:-300}; threads=${THREADS:-2}
read -r -a budgets <<< "${BUDGETS:-0.3 0.4 0.5 0.6 0.7 0.8 0.9}"
mkdir -p "$out"
kv() { echo "== kv-bench $*" >&2; $clm kv-bench --model "$model" --threads "$threads" --seed 1 "$@"; }
# every question kind with the whole cache: what the model knows before anything is evicted
for k in color shape count where exists describe; do
  kv --kind $k --items "$items" --policies full --budgets 1 --out "$out/kinds.jsonl"
done
# short answers: the baselines and HAE with its defaults, then HAE's prefill stage alone read at
# layers 0 (the paper's first layer), 1 and 2
short=(--items "$items" --budgets "${budgets[@]}" --out "$out/short.jsonl")
kv "${short[@]}" --policies full fastv h2o hae pyramidkv snapkv streaming tova
for layer in 0 1 2; do
  kv "${short[@]}" --policies hae --kv-opt hae.decode=false --kv-opt hae.layer=$layer
done
# descriptions (2-12 answer tokens): the ratio budget follows the tokens seen while decoding
kv --kind describe --items $((items / 3)) --budgets "${budgets[@]}" --out "$out/describe.jsonl" \
  --policies full fastv h2o hae pyramidkv snapkv streaming tova
for f in short describe; do
  /usr/bin/python3 tools/kv_table.py "$out/$f.jsonl" > "$out/$f.md"
  $clm plot "$out/$f.jsonl" -o "$out/$f.svg"
done
echo "tables: $out/short.md $out/describe.md; rows: $out/*.jsonl" >&2
