#!/usr/bin/env bash
# SEE's two-stage compression of a trained model's embedding, beside the baselines at the same
# embedding budget: each variant is fitted to the original table (stage 1), trained STEPS more steps
# with half distillation from the original (stage 2), then scored on the whole valid and test splits.
# Two runs at a time, one thread each; logs, run folders and one JSON line per run in OUT.
# Usage: [STEPS=600] [ONLY="name ..."] [budget variables] scripts/see_compress.sh DENSE_CKPT DATA_DIR UNITS_FILE OUT_DIR
#   e.g. scripts/see_compress.sh runs/ptb-dense/step-00000900 ../shared/data/ptb runs/ptb.wordnet.units runs/see10
# (units: clm units --data DATA_DIR --source wordnet --out UNITS_FILE). The defaults are the 10x
# budget on PTB (V = 10,000, d = 256: 2,560,000 dense parameters): SEE rows 5000 + word gains
# (GAIN_ROWS) 255,512; SEE rows 5200 (ROWS) 255,312; factorised k = 24 (K) 251,904; hashed 922
# buckets x 2 (BUCKETS) 256,032. WikiText-2 at 10x (V = 33,278: 8,519,168 dense parameters):
#   GAIN_ROWS=16690 ROWS=17375 K=25 BUCKETS=3067 SEQ=128 BATCH=16 WINDOW=128 scripts/see_compress.sh ...
# (851,600 / 851,887 / 838,350 / 851,708 parameters). SEQ x BATCH and WINDOW: the original's.
# -h: stage 1 with the hidden-state term too (--fit-hidden FH, default 1). INIT_FLAGS: more flags for every
# train, e.g. --init-tokenizer FILE for a llama2.c original (then UNITS_FILE is unused: the SEE variants
# for a BPE vocabulary are the see-hash ones).
# see-o2-*: order 2, rank 3, q = 16 (16^2 = d), O2_ROWS 5100 rows: 255,312 parameters with the gains on PTB.
set -euo pipefail
dense=$1; data=$2; units=$3; out=$4
steps=${STEPS:-600}
clm=${CLM:-./build/clm}
mkdir -p "$out"
# every compressed variant learns half from the original model; the dense control only from the data
common=(--init-from "$dense" --data "$data" --fit-steps 500 --fit-lr 1e-2 --steps "$steps" --lr 5e-4
        --warmup 10 --seq-len "${SEQ:-256}" --batch-size "${BATCH:-8}" --eval-every 0 --threads 1 ${INIT_FLAGS:-})
# the variants' flags, built from parts: SEE (std 0.3) with ROWS rows, or GAIN_ROWS rows plus per-word gains
see="--embedding see --embedding-opt std=0.3"
rows="--embedding-opt rows=${ROWS:-5200}" gain="--embedding-opt rows=${GAIN_ROWS:-5000} --embedding-opt word_gain=1"
wordnet="--embedding-opt units=$units" hash="--embedding-opt units=hash" fw="--fit-weight ${FW:-0.5}"
declare -A runs=(
  [see-wordnet-gain]="$see $gain $wordnet"
  [see-wordnet-gain-fw]="$see $gain $wordnet $fw"
  [see-wordnet-gain-fw-h]="$see $gain $wordnet $fw --fit-hidden ${FH:-1}"
  [see-o2-wordnet-gain-fw]="$see --embedding-opt order=2 --embedding-opt rank=3 --embedding-opt rows=${O2_ROWS:-5100} --embedding-opt word_gain=1 $wordnet $fw"
  [see-wordnet]="$see $rows $wordnet"
  [see-hash]="$see $rows $hash"
  [see-hash-gain]="$see $gain $hash"
  [see-hash-gain-fw]="$see $gain $hash $fw"
  [factorized]="--embedding factorized --embedding-opt k=${K:-24}"
  [factorized-fw]="--embedding factorized --embedding-opt k=${K:-24} $fw"
  [hashed]="--embedding hashed --embedding-opt buckets=${BUCKETS:-922}"
  [dense]="--embedding standard"
)
order=(see-wordnet-gain factorized see-hash-gain dense see-wordnet hashed)  # -fw: the fit weighted by frequency^FW (ONLY= to run them)
[ -n "${ONLY:-}" ] && read -r -a order <<< "$ONLY"
one() {
  local name=$1 distill=(--distill-alpha 0.5)
  [ "$name" = dense ] && distill=()
  # shellcheck disable=SC2086  # the variant's flags split on spaces
  $clm train "${common[@]}" "${distill[@]}" ${runs[$name]} --out "$out/$name" > "$out/$name.log" 2>&1
  local ck
  ck=$(ls -d "$out/$name"/step-* | tail -1)
  for split in valid test; do
    $clm eval --model "$ck" --data "$data" --split "$split" --window "${WINDOW:-256}" --report "$out/report.jsonl" >> "$out/$name.log" 2>&1
  done
  echo "$name done: $(grep -E 'ppl' "$out/$name.log" | tail -2 | tr '\n' ' ')"
}
running=0
for name in "${order[@]}"; do
  one "$name" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
