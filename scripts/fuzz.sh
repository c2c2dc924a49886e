#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets with clang and run each for
# FUZZ_SECONDS (default 30) from its seed corpus under fuzz/corpus/NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
SECS=${FUZZ_SECONDS:-30}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMK_FUZZ=ON -DMK_SANITIZE=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
shopt -s nullglob
for src in fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  work=build-fuzz/corpus-$name
  mkdir -p "$work"
  seeds=()
  [[ -d fuzz/corpus/$name ]] && seeds=(fuzz/corpus/$name)
  echo "fuzz: $name for ${SECS}s"
  ./build-fuzz/"$name" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 \
      -artifact_prefix=build-fuzz/ "$work" "${seeds[@]}" 2>build-fuzz/"$name".log \
    || { tail -40 build-fuzz/"$name".log; echo "fuzz: $name FAILED"; exit 1; }
  tail -1 build-fuzz/"$name".log
done
