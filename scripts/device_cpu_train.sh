#!/usr/bin/env bash
# Runs the CPU trainer on the device machine's host (16 cores, AVX-512): the CUDA image lacks the
# engine's Debian libraries, so scripts/pack_for_device.sh packs the binary with its own loader and
# libraries (and the corpus) into devpack/pack.tar.xz, carried by the device tool.
# Usage there: scripts/device_cpu_train.sh SECONDS OUT_DIR [clm train flags...]
set -euo pipefail
secs=$1; out=$2; shift 2
mkdir -p /tmp/dev && tar -xJf devpack/pack.tar.xz -C /tmp/dev
clm() { /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm "$@"; }
lscpu > "$out/lscpu.txt"
t0=$(date +%s.%N)
clm train --data /tmp/dev/devdata/wikitext-2 "$@" --steps 20 --eval-every 0 --sample-tokens 0 --out /tmp/probe >/dev/null
t1=$(date +%s.%N)
steps=$(python3 -c "print(int(20*$secs/($t1-$t0)))")
echo "probe: 20 steps in $(python3 -c "print(round($t1-$t0,1))") s -> $steps steps for $secs s"
clm train --data /tmp/dev/devdata/wikitext-2 "$@" --steps "$steps" --out /tmp/run 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -40
ls -la /tmp/run /tmp/run/*
