#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test. Tests that need ../shared skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ctest --test-dir "${BUILD:-build}" --output-on-failure -j"$(nproc)"
