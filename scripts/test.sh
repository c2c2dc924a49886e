#!/usr/bin/env bash
# test.sh - install what is missing, build, and run the self-contained
# test suite (no Python, no network, no datasets needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMK_WERROR=${MK_WERROR:-ON} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD" && ctest --output-on-failure -LE data -j"$(nproc)"
