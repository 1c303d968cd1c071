#!/usr/bin/env bash
# Training and decoding on a machine where another process keeps one core busy (issue #8): the
# real commands (clm train, clm generate) timed idle with 1 thread, idle with 2, and with
# `yes > /dev/null` running, with 2 threads under each thread policy; the PyTorch peer (Debian's
# python3-torch, OMP_WAIT_POLICY=PASSIVE, its best setting under load) beside it, idle with 1 thread
# and busy with 2. The bar: busy 2-thread speed >= 0.9x idle 1-thread speed.
#   bench/busy_core.sh [ROUNDS] > results.jsonl       (BUILD=build; W=/tmp/busy for the files)
# One JSON line per measurement: {"round","what":"train"|"decode","impl","load","threads","policy","tok_s"}.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}; W=${W:-/tmp/busy}; ROUNDS=${1:-1}
mkdir -p "$W"
CLM=$PWD/$B/clm
# The 110M-shape Llama of bench_decode (random weights) as a llama2.c file, and a byte tokenizer
[ -f "$W/m110.bin" ] || "$B/bench/clm_bench_decode" --prompt 4 --tokens 4 --export-llama2c "$W/m110.bin" >/dev/null
if [ ! -f "$W/tok/tokenizer.json" ]; then
  "$CLM" train --steps 1 --out "$W/tokrun" --d-model 16 --n-layers 1 --n-heads 2 --n-kv-heads 2 --d-ff 32 --seq-len 8 --batch-size 1 \
    --threads 1 --sample-tokens 0 --eval-every 0 >/dev/null 2>&1
  mkdir -p "$W/tok" && cp "$W/tokrun/step-00000001/tokenizer.json" "$W/tok/"
fi
TRAIN=(--d-model 256 --n-layers 6 --n-heads 8 --n-kv-heads 4 --d-ff 688 --seq-len 256 --batch-size 8 --steps ${STEPS:-40}
       --log-every 5 --eval-every 0 --sample-tokens 0)
PROMPT="Once upon a time there was a little robot who lived in a garden full of flowers and"
busy_pid=""
load() { if [ "$1" = busy ]; then yes > /dev/null & busy_pid=$!; sleep 1; fi; }
unload() { [ -n "$busy_pid" ] && kill "$busy_pid" && wait "$busy_pid" 2>/dev/null || true; busy_pid=""; }
trap unload EXIT
line() { echo "{\"round\":$1,\"what\":\"$2\",\"impl\":\"$3\",\"load\":\"$4\",\"threads\":$5,\"policy\":\"$6\",\"tok_s\":$7}"; }
clm_train() {  # median tokens/s of the logged windows after the first
  rm -rf "$W/run" && "$CLM" --thread-policy "$2" train "${TRAIN[@]}" --threads "$1" --out "$W/run" >/dev/null 2>&1
  python3 -c "import json,statistics,sys; r=[json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if 'tokens_per_s' in l]; print(round(statistics.median(r[1:]),1))" "$W/run/metrics.jsonl"
}
clm_decode() {
  "$CLM" --thread-policy "$2" generate --model "$W/m110.bin" --tokenizer "$W/tok/tokenizer.json" --prompt "$PROMPT" --max-new-tokens 128 \
    --temperature 0 --threads "$1" 2>&1 >/dev/null | sed -n 's/.*decode [0-9]* tokens: \([0-9.]*\) tok\/s.*/\1/p'
}
torch_train() { OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$1 /usr/bin/python3 bench/torch_train.py --threads "$1" --vocab 259 --steps 20 2>/dev/null | python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['tokens_per_s'],1))"; }
torch_decode() { OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$1 TORCH_THREADS=$1 /usr/bin/python3 bench/torch_decode.py "$W/m110.bin" 128 2>/dev/null | python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['decode_tok_s'],1))"; }
have_torch=0; /usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
for r in $(seq "$ROUNDS"); do
  for cond in "idle 1 adaptive" "idle 2 adaptive" "idle 2 fixed" "busy 2 fixed" "busy 2 adaptive" "busy 1 fixed"; do
    set -- $cond
    load "$1"; t=$(clm_train "$2" "$3"); d=$(clm_decode "$2" "$3"); unload
    line "$r" train clm "$1" "$2" "$3" "$t"; line "$r" decode clm "$1" "$2" "$3" "$d"
  done
  if ((have_torch)); then
    for cond in "idle 1" "busy 2"; do
      set -- $cond
      load "$1"; t=$(torch_train "$2"); d=$(torch_decode "$2"); unload
      line "$r" train pytorch "$1" "$2" passive "$t"; line "$r" decode pytorch "$1" "$2" passive "$d"
    done
  fi
done
