#!/usr/bin/env bash
# The quantization table for one model: calibrate once, then for each method and format the perplexity on a
# corpus split (clm eval: one JSON line per row in OUT/report.jsonl, with bits and the per-layer kernel), the
# quantized folder's size on disk (clm quantize) and its prefill / decode speed (clm generate, greedy, a
# prompt from the split): every row merged into OUT/table.jsonl and printed as OUT/table.md; clm plot
# OUT/report.jsonl draws perplexity against bits.
# Usage: [FULL=1] [SKIP=n] [SPEED=0] [FLAGS=...] scripts/quant_report.sh MODEL DATA_DIR OUT_DIR [WINDOW] [CALIB_WINDOWS]
#   e.g. scripts/quant_report.sh runs/wt2 ../shared/data/wikitext-2 runs/wt2-quant 128 128
#   FLAGS: more flags for every command, e.g. FLAGS="--tokenizer tok512.bin --threads 1" for a llama2.c model
#   SPEED=0: perplexity only (no folder, no generation); GEN_TOKENS (default 64) tokens are generated
set -euo pipefail
model=$1; data=$2; out=$3; win=${4:-128}; cw=${5:-128}
clm=${CLM:-./build/clm}
mkdir -p "$out"
[ -f "$out/calib.json" ] || $clm calibrate --model "$model" --data "$data" --split train --windows "$cw" --window "$win" ${FLAGS:-} --out "$out/calib.json"
prompt=
if [ "${SPEED:-1}" != 0 ]; then
  split_file=$(ls "$data"/*test* | head -1)
  prompt=$(tr -s ' \n' '  ' < "$split_file" | sed 's/^ //' | cut -d' ' -f1-40)  # the split's first 40 words
  [ "${SKIP:-0}" = 0 ] && : > "$out/table.jsonl"  # a fresh sweep: no rows of an earlier one
fi
n_ev=0
ev() {
  n_ev=$((n_ev + 1))
  [ "$n_ev" -le "${SKIP:-0}" ] && return 0  # resume a sweep: the first SKIP rows are in report.jsonl
  echo "== $*"
  local calib=()
  [ "$1" = --quant ] && calib=(--calib "$out/calib.json")
  /usr/bin/time -f "   %e s" $clm eval --model "$model" --data "$data" --split test --window "$win" \
    "${calib[@]}" ${FLAGS:-} --report "$out/report.jsonl" "$@" 2>&1 | grep -v '^$'
  [ "${SPEED:-1}" = 0 ] && return 0
  local bytes=0 err
  if [ "$1" = --quant ]; then  # the folder a user would ship: packed codes and the rest (0: no stored form)
    rm -rf "$out/q-model"
    if err=$($clm quantize --model "$model" "${calib[@]}" ${FLAGS:-} "$@" --out "$out/q-model" 2>&1 > /dev/null); then
      bytes=$(cat "$out/q-model"/*.safetensors | wc -c)
    elif [[ $err != *"has no stored form"* ]]; then
      echo "   quantize failed: ${err##*$'\n'}"
    fi
  elif [ -d "$model" ]; then  # a run folder (its latest step) or a Hugging Face folder
    local d=$model
    [ -f "$model/latest" ] && d="$model/$(cat "$model/latest")"
    bytes=$(cat "$d"/*.safetensors 2>/dev/null | wc -c || true)
  else
    bytes=$(wc -c < "$model")
  fi
  local gen
  local q=()
  [ "$1" = --quant ] && q=("$@")  # --infer is eval's; generate always runs the inference path
  gen=$($clm generate --model "$model" "${calib[@]}" ${FLAGS:-} "${q[@]}" --prompt "$prompt" --max-new-tokens "${GEN_TOKENS:-64}" --temperature 0 2>&1 > /dev/null |
        grep -o '\[prefill.*\]' | tail -1 || true)
  echo "   $bytes bytes; $gen"
  tail -1 "$out/report.jsonl" | BYTES=$bytes GEN=$gen python3 -c '
import json, os, re, sys
r = json.loads(sys.stdin.read()); r.pop("layers", None)
g = re.search(r"prefill (\d+) tokens: ([\d.]+) tok/s \| decode (\d+) tokens: ([\d.]+) tok/s \| ([^,\]]+)", os.environ["GEN"])
r.update(bytes=int(os.environ["BYTES"] or 0) or None, prefill_tokens=int(g[1]) if g else None, prefill_tok_s=float(g[2]) if g else None,
         decode_tokens=int(g[3]) if g else None, decode_tok_s=float(g[4]) if g else None, decode_path=g[5] if g else None)
print(json.dumps(r))' >> "$out/table.jsonl"
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
[ "${SPEED:-1}" = 0 ] && exit 0
rm -rf "$out/q-model"
python3 - "$out/table.jsonl" > "$out/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next((r["ppl"] for r in rows if r["method"] == "none"), None)
print("| method | options | bits W / A | ppl | vs f32 | kernel | size (MB) | prefill tok/s | decode tok/s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    o = r.get("options") or {}
    opts = " ".join(f"{k}={v}" for k, v in o.items() if k not in ("head", "kernel"))
    rel = f"{100 * (r['ppl'] / base - 1):+.2f}%" if base else ""
    size = f"{r['bytes'] / 1e6:.3f}" if r["bytes"] else "— (fake only)"
    pre = f"{r['prefill_tok_s']:.0f}" if r["prefill_tok_s"] else "—"
    dec = f"{r['decode_tok_s']:.1f}" if r["decode_tok_s"] else "—"
    print(f"| {r['method']} | {opts} | {r.get('w_bits', 32):.2f} / {r['a_bits']:.2f} | {r['ppl']:.3f} | {rel} | "
          f"{100 * r['kernel']:.2f}% | {size} | {pre} | {dec} |")
PY
cat "$out/table.md"
