#!/usr/bin/env bash
# Set up everything ondevice needs on a fresh Debian machine: system packages (as root), a venv, pinned pip deps.
# Usage: bash scripts/setup.sh [--with-tests]     Idempotent; re-running skips what is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
with_tests=0; [ "${1:-}" = "--with-tests" ] && with_tests=1

APT_PKGS="espeak-ng sox qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib gcc make"
[ $with_tests = 1 ] && APT_PKGS="$APT_PKGS kotlin chromium clang libclang-rt-14-dev default-jdk-headless"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] apt-get install:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "[setup] missing system packages:$missing" >&2
    echo "[setup] run as root, or: sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
. .venv/bin/activate
# torch first, from the pinned CPU build: a looser pin would pull a multi-GB CUDA build.
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || { echo "[setup] pip install torch==2.13.0"; pip install -q torch==2.13.0; }
extras="ios_none"
if [ $with_tests = 1 ]; then extras="dev,reference"; fi
stamp=".venv/.ondevice-$(sha256sum pyproject.toml setup.py | sha256sum | cut -c1-12)-$extras"
if [ ! -f "$stamp" ]; then
  echo "[setup] pip install -e .[$extras]"
  if [ $with_tests = 1 ]; then pip install -q -e ".[dev,reference]"; else pip install -q -e .; fi 2>&1 \
    | grep -v "^WARNING: Location" || true
  python -c "import ondevice, torch, executorch, litert_torch" >/dev/null
  touch "$stamp"
fi
echo "[setup] ready: $(ondevice --version | tr '\n' ' ')"
