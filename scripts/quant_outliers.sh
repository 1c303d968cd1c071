#!/usr/bin/env bash
# How ARCQuant's gain and KE grow with the strength of activation outliers: the same run's
# checkpoints at several training lengths, each calibrated and scored in f32, RTN NVFP4 W4A4 and
# ARCQuant (ratio rule), one JSON line per (checkpoint, method) in OUT/report.jsonl; the outlier
# statistics come from each checkpoint's calibration (scripts/quant_outliers.py makes the table).
# Usage: scripts/quant_outliers.sh RUN_DIR DATA_DIR OUT_DIR [TEST_FILE] [STEPS...]
#   e.g. scripts/quant_outliers.sh runs/wt2-d256-l4 ../shared/data/wikitext-2 runs/outliers /tmp/wt2_test_head.txt
# CLM: the clm binary; WINDOW: the evaluation and calibration window (128); EVAL_FLAGS: added to every
# clm eval (e.g. "--device cuda": scored through the GPU decoder).
set -euo pipefail
run=$1; data=$2; out=$3; test_file=${4:-}; shift 4 || shift $#
clm=${CLM:-./build/clm}
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || mapfile -t steps < <(ls "$run" | grep '^step-' | sed 's/step-0*//')
eval_src=(--data "$data" --split test)
[ -n "$test_file" ] && eval_src=(--file "$test_file")
for s in "${steps[@]}"; do
  ck=$(printf "%s/step-%08d" "$run" "$s")
  cal="$out/calib-$s.json"
  [ -f "$cal" ] || $clm calibrate --model "$ck" --data "$data" --split train --windows 64 --window "${WINDOW:-128}" --out "$cal" > /dev/null
  for q in "--infer" "--quant rtn --quant-opt w=nvfp4 --quant-opt a=nvfp4" "--quant arcquant"; do
    extra=()
    [[ $q == --quant* ]] && extra=(--calib "$cal")
    # shellcheck disable=SC2086
    $clm eval --model "$ck" "${eval_src[@]}" --window "${WINDOW:-128}" ${EVAL_FLAGS:-} $q "${extra[@]}" --report "$out/report.jsonl" |
      grep -E "perplexity" | sed "s|^|step $s: |"
  done
done
