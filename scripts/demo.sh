#!/usr/bin/env bash
# demo.sh - the main job: install what is missing, build, and run a short
# end-to-end smoke of medrek on models it writes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
M=build/medrek
OUT=${OUT:-build/demo}
mkdir -p "$OUT"
echo "== medrek --help"; $M --help
