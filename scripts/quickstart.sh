#!/usr/bin/env bash
# Set up, then run the main job on the shipped reference recipe (mitsis): data, lint, export, verify, profile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
. .venv/bin/activate
ondevice data synth --out data/synth --size 400 --seed 1
ondevice lint --recipe mitsis --target all
ondevice export --target all --out artifacts
# verify exits non-zero when an artifact misses the 99% top-1 agreement goal (near-ties set apart and counted):
# the main job stops there, and artifacts/verify_report.json says which layer differs.
ondevice verify artifacts --data data/synth
ondevice profile --device sim://executorch artifacts/mitsis_executorch_int8.pte --runs 50 --out profile/executorch
ondevice profile --device sim://litert artifacts/mitsis_tflite_int8.tflite --runs 50 --out profile/litert
ondevice profile --device qemu://mps2-an386 artifacts/mitsis_mcu_int8 --runs 5 --warmup 1 --out profile/mps2-an386
