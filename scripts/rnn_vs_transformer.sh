#!/usr/bin/env bash
# TSLM and the LSTM against the transformer at equal training tokens, on one CPU thread each, run one
# after another (issue #11). The flags are plan s8's (scripts/device_variants.sh), which gave the PTB
# rows in docs/RESULTS.md "TSLM against the LSTM and the transformer": AdamW lr 1e-3, 30 warmup steps,
# tied embeddings, init std 0.05 for the recurrent models, the state carried across batches; then the
# whole valid and test splits in windows of 256 from a zero state.
#   scripts/rnn_vs_transformer.sh CORPUS_DIR OUT [SCALE]
# SCALE multiplies every run's steps (default 1: about 0.28M tokens each). ONLY="name ..." picks runs.
# Writes OUT/<name>/ (the run), OUT/<name>.log, OUT/evals.jsonl (one line per model and split).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CORPUS_DIR OUT [SCALE]" >&2; exit 2; }
D=$1; OUT=$2; SCALE=${3:-1}
CLM=${CLM:-$(dirname "$0")/../build/clm}
[ -d "$D" ] || { echo "$0: no corpus folder '$D'" >&2; exit 1; }
mkdir -p "$OUT"
COMMON="--tie-embeddings --lr 1e-3 --warmup 30 --threads 1 --sample-tokens 0 --eval-every 0"
RNN="--n-layers 2 --init-std 0.05 --seq-len 35"
# name | steps | flags
RUNS=(
  "transformer|140|--d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --seq-len 256 --max-seq-len 256 --batch-size 8"
  "tslm-512|250|--arch tslm --d-model 512 $RNN --batch-size 32"
  "tslm-256|250|--arch tslm --d-model 256 $RNN --batch-size 32"
  "lstm-200|400|--arch lstm --d-model 200 $RNN --batch-size 20"
  "lstm-400-drop|400|--arch lstm --d-model 400 $RNN --batch-size 20 --dropout 0.5"
)
for r in "${RUNS[@]}"; do
  IFS='|' read -r name steps flags <<< "$r"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  steps=$(awk -v s="$steps" -v k="$SCALE" 'BEGIN { n = int(s * k + 0.5); print (n < 2 ? 2 : n) }')
  echo "== $name: $steps steps"
  # shellcheck disable=SC2086
  "$CLM" train --data "$D" $COMMON $flags --steps "$steps" --ckpt-every "$steps" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  tr '\r' '\n' < "$OUT/$name.log" | grep '^step ' | tail -1
  for split in valid test; do
    "$CLM" eval --model "$OUT/$name" --data "$D" --split "$split" --window 256 --threads 1 --report "$OUT/evals.jsonl" 2>&1 | tail -1
  done
done
