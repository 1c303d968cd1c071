#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build-fuzz, then runs each in turn for SECONDS (default 20) from
# its seed corpus (fuzz/corpus/<target>; new inputs go to build-fuzz/corpus/<target>).
# Exits non-zero on any finding: a crash, a sanitizer report, an input running over 10 s, or more
# than 4 GB of memory. The input that caused it is saved as build-fuzz/findings/<target>/<kind>-<sha1>;
# reproduce with build-fuzz/fuzz/fuzz_<target> <that file>.
#   scripts/fuzz.sh [seconds-per-target] [target ...]     (JOBS=n for the build, NICE=n for both)
#   RUNS=1000000 scripts/fuzz.sh 3600                      (the long run: 10^6 inputs per target, at most an hour each)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift $(($# > 0 ? 1 : 0))
TARGETS=(safetensors config tokenizer_json gpt2 llama2c_bin llama2c_tokenizer gguf quant)
(($#)) && TARGETS=("$@")
B=${BUILD:-build-fuzz}
RUN=(nice -n "${NICE:-0}")

# clang and its runtimes (libFuzzer, sanitizers); the other dependencies come from scripts/setup.sh.
PKGS=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "fuzz: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

t0=$SECONDS
"${RUN[@]}" cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 -DCLM_FUZZ=ON >/dev/null
"${RUN[@]}" cmake --build "$B" --target fuzzers -j"${JOBS:-$(nproc)}"
echo "fuzz: build took $((SECONDS - t0)) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$B/corpus/$t" "$B/findings/$t" "$B/logs"
  dict=()
  case $t in
    safetensors|config|tokenizer_json|gpt2) dict=(-dict=fuzz/json.dict) ;;
    gguf) dict=(-dict=fuzz/gguf.dict) ;;
  esac
  log="$B/logs/$t.log"
  rc=0
  runs=(); [ -n "${RUNS:-}" ] && runs=(-runs="$RUNS")
  "${RUN[@]}" "$B/fuzz/fuzz_$t" "${runs[@]}" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$B/findings/$t/" "${dict[@]}" "$B/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  if ((rc)); then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; log $log:"
    grep -E -A25 '^==[0-9]+==|runtime error|ERROR: libFuzzer' "$log" | head -60
    echo "fuzz: the input: $B/findings/$t/$(ls -t "$B/findings/$t" | head -1)"
  else
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    echo "fuzz: $t ok: ${execs:-?} executions in ${secs:-$SECS} s ($cov)"
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}"
  exit 1
fi
echo "fuzz: no findings (${#TARGETS[@]} targets, ${SECS} s each; $((SECONDS - t0)) s in all)"
