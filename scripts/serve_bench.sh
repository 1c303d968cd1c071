#!/usr/bin/env bash
# Serving load test: starts `clm serve` on MODEL, runs bench/clm_bench_serve at 1, 4 and 16
# concurrent streaming clients, ROUNDS times in turn, appends its JSON lines to OUT, stops the server.
#   scripts/serve_bench.sh MODEL OUT [LABEL] [ROUNDS]       env: SLOTS (16), PORT (8097), REQUESTS (4),
#                                                           MAX_TOKENS (64), CTX (512), BUILD (build)
# Plot: build/clm plot OUT -o serve.svg
set -euo pipefail
MODEL=$1 OUT=$2 LABEL=${3:-$(basename "$1")} ROUNDS=${4:-3}
B=${BUILD:-build} PORT=${PORT:-8097}
"$B/clm" serve --model "$MODEL" --port "$PORT" --slots "${SLOTS:-16}" --ctx "${CTX:-512}" --queue 64 >"/tmp/clm-serve-$PORT.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 150); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.2; done
for _ in $(seq "$ROUNDS"); do
  "$B/bench/clm_bench_serve" --port "$PORT" --clients 1,4,16 --requests "${REQUESTS:-4}" --max-tokens "${MAX_TOKENS:-64}" \
    --label "$LABEL" --out "$OUT"
done
