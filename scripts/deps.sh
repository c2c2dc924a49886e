#!/usr/bin/env bash
# deps.sh - install the Debian packages medrek needs to build and test.
# Idempotent and quiet when everything is present. Usage: scripts/deps.sh [--dev]
#   --dev  also the tools for regenerating references (python3-torch,
#          python3-sentencepiece, node) - not needed to build or test.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-dev libomp-dev
      libopenblas-dev libcjson-dev libsqlite3-dev libpcre2-dev libutf8proc-dev)
if [[ "${1:-}" == "--dev" ]]; then
  pkgs+=(python3-torch python3-sentencepiece python3-numpy nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
