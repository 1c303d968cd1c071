#!/usr/bin/env bash
# The quantization table for one model: calibrate once, then perplexity on a corpus split for each
# method and format, one JSON line per run in OUT/report.jsonl (clm plot --quant makes the figure).
# Usage: [FULL=1] [SKIP=n] [FLAGS=...] scripts/quant_report.sh MODEL DATA_DIR OUT_DIR [WINDOW] [CALIB_WINDOWS]
#   e.g. scripts/quant_report.sh runs/wt2 ../shared/data/wikitext-2 runs/wt2-quant 128 128
#   FLAGS: more flags for calibrate and every eval, e.g. FLAGS="--tokenizer tok512.bin" for a llama2.c model
set -euo pipefail
model=$1; data=$2; out=$3; win=${4:-128}; cw=${5:-128}
clm=${CLM:-./build/clm}
mkdir -p "$out"
[ -f "$out/calib.json" ] || $clm calibrate --model "$model" --data "$data" --split train --windows "$cw" --window "$win" ${FLAGS:-} --out "$out/calib.json"
n_ev=0
ev() {
  n_ev=$((n_ev + 1))
  [ "$n_ev" -le "${SKIP:-0}" ] && return 0  # resume a sweep: the first SKIP rows are in report.jsonl
  echo "== $*"
  local calib=()
  [ "$1" = --quant ] && calib=(--calib "$out/calib.json")
  /usr/bin/time -f "   %e s" $clm eval --model "$model" --data "$data" --split test --window "$win" \
    "${calib[@]}" ${FLAGS:-} --report "$out/report.jsonl" "$@" 2>&1 | grep -v '^$'
}
# the table's rows, most telling first (FULL=1 adds the secondary ones)
ev --infer
ev --quant rtn --quant-opt w=int8 --quant-opt a=int8
ev --quant crossquant --quant-opt alpha=0.5
ev --quant smoothquant --quant-opt alpha=0.5
ev --quant rtn --quant-opt w=nvfp4 --quant-opt a=nvfp4
ev --quant arcquant
ev --quant rtn --quant-opt w=mxfp4 --quant-opt a=mxfp4
ev --quant crossquant --quant-opt alpha=0.5 --quant-opt mode=dynamic
ev --quant rtn --quant-opt w=mxfp8 --quant-opt a=mxfp8
ev --quant arcquant --quant-opt thr=signed --quant-opt w_scale=signed_max --quant-opt residual=bf16
if [ "${FULL:-0}" = 1 ]; then
  ev --quant crossquant --quant-opt alpha=0.25
  ev --quant crossquant --quant-opt alpha=0.75
  ev --quant rtn --quant-opt w=e4m3 --quant-opt a=e4m3
  ev --quant rtn --quant-opt w=int4/g128
  ev --quant rtn --quant-opt w=int8
fi
