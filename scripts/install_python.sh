#!/usr/bin/env bash
# Builds the Python module `compactlm` and installs it for the current user's system Python:
#   ./scripts/install_python.sh        then   python3 -c 'import compactlm'
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} -DPython_EXECUTABLE="$PY" >/dev/null
cmake --build "$BUILD" --target compactlm -j"$(nproc)"
SITE=$("$PY" -c 'import site; print(site.getusersitepackages())')
mkdir -p "$SITE"
cp "$BUILD"/python/compactlm*.so "$SITE"/
cd /tmp && "$PY" -c 'import compactlm; print("installed", compactlm.__file__)'
