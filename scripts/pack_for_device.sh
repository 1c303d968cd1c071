#!/usr/bin/env bash
# Packs $BUILD/clm (BUILD defaults to build; build-cuda for the CUDA backend) with the loader and shared libraries it links (the device image has none of the
# engine's Debian libraries) and a corpus folder into devpack/pack.tar.xz (git-ignored).
# Usage: scripts/pack_for_device.sh [CORPUS_DIR[:CORPUS_DIR...] [EXTRA_BINARY...]]   (default ../shared/data/wikitext-2)
# e.g. scripts/pack_for_device.sh ../shared/data/wikitext-2 build/tests/test_quant build/bench/clm_bench_decode
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-../shared/data/wikitext-2}
shift || true
rm -rf /tmp/devpack && mkdir -p /tmp/devpack/devlib /tmp/devpack/devdata devpack
BUILD=${BUILD:-build}
# CUDA's own libraries (cuBLAS, the driver) are the device image's: too big to carry, and they must match its driver.
for l in $(ldd $BUILD/clm | awk '/=>/{print $3} /ld-linux/{print $1}' | grep -v -E 'libcublas|libcudart|libcuda\.so|libnccl'); do
  cp -L "$l" /tmp/devpack/devlib/
done
cp $BUILD/clm "$@" /tmp/devpack/devlib/
IFS=: read -ra corpora <<< "$corpus"
for c in "${corpora[@]}"; do cp -r "$c" /tmp/devpack/devdata/; done
tar -cJf devpack/pack.tar.xz -C /tmp/devpack devlib devdata
ls -la devpack/pack.tar.xz
