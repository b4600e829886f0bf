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
ondevice verify artifacts --data data/synth
ondevice profile --device sim://executorch artifacts/mitsis_executorch_int8.pte --runs 50 --out profile
