#!/usr/bin/env bash
# The long fuzzing run of issue #8 (>= 10^6 executions per target) on the device machine's 16 host
# cores: the libFuzzer targets built here by scripts/fuzz.sh (clang, ASan + UBSan) run there, each
# as one or more processes (the slower targets split their executions over several processes with
# different seeds), all at once, with the limits of scripts/fuzz.sh: a finding is a crash, a
# sanitizer report, an input over 10 s or over 4 GB.
#   here:   scripts/fuzz.sh 1 && scripts/device_fuzz.sh pack      (devpack/fuzz.tar.xz, git-ignored)
#   device: scripts/device_fuzz.sh run [SECONDS]                  (run with carry devpack)
# Results under $OUT: fuzz_device.jsonl (per target: processes, executions, findings), logs/, findings/.
set -uo pipefail
cd "$(dirname "$0")/.."
TARGETS=(safetensors config tokenizer_json gpt2 llama2c_bin llama2c_tokenizer gguf)
declare -A PROCS=([safetensors]=2 [config]=1 [tokenizer_json]=6 [gpt2]=2 [llama2c_bin]=1 [llama2c_tokenizer]=2 [gguf]=1)
RUNS=${RUNS:-1000000}
if [ "${1:-}" = pack ]; then
  rm -rf /tmp/fuzzpack && mkdir -p /tmp/fuzzpack/lib devpack
  for l in $(ldd build-fuzz/fuzz/fuzz_config | awk '/=>/{print $3} /ld-linux/{print $1}'); do cp -L "$l" /tmp/fuzzpack/lib/; done
  for t in "${TARGETS[@]}"; do cp build-fuzz/fuzz/fuzz_$t /tmp/fuzzpack/; done
  cp -r fuzz/corpus fuzz/json.dict fuzz/gguf.dict /tmp/fuzzpack/
  tar -cJf devpack/fuzz.tar.xz -C /tmp/fuzzpack .
  ls -la devpack/fuzz.tar.xz
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: $0 pack | run [SECONDS]"; exit 2; }
SECS=${2:-540}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/logs" "$OUT/findings"
D=/tmp/fuzzrun; rm -rf $D && mkdir -p $D && tar -xJf devpack/fuzz.tar.xz -C $D
nproc; lscpu | grep "Model name"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
pids=()
for t in "${TARGETS[@]}"; do
  n=${PROCS[$t]}
  dict=()
  case $t in safetensors|config|tokenizer_json|gpt2) dict=(-dict=$D/json.dict) ;; gguf) dict=(-dict=$D/gguf.dict) ;; esac
  mkdir -p $D/work/$t "$OUT/findings/$t"
  for i in $(seq $n); do
    $D/lib/ld-linux-x86-64.so.2 --library-path $D/lib $D/fuzz_$t -runs=$(((RUNS + n - 1) / n)) -max_total_time=$SECS -seed=$((1000 + i)) \
      -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/findings/$t/" "${dict[@]}" \
      $D/work/$t $D/corpus/$t > "$OUT/logs/$t.$i.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait $p; done
for t in "${TARGETS[@]}"; do
  python3 - "$t" "${PROCS[$t]}" "$OUT" <<'PY' | tee -a "$OUT/fuzz_device.jsonl"
import json, os, re, sys
t, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
execs, secs, bad = 0, 0.0, []
for i in range(1, n + 1):
    log = open(f"{out}/logs/{t}.{i}.log", errors="replace").read()
    m = re.findall(r"stat::number_of_executed_units: *(\d+)", log)
    execs += int(m[-1]) if m else 0
    if re.search(r"ERROR: libFuzzer|ERROR: AddressSanitizer|runtime error|SUMMARY: ", log): bad.append(i)
found = sorted(os.listdir(f"{out}/findings/{t}"))
print(json.dumps({"target": t, "processes": n, "executions": execs, "findings": found, "failed_processes": bad}))
PY
done
