#!/usr/bin/env bash
# Create .venv with the project and its dev extra when it is missing (or incomplete).
# Sourced by run_all.sh and run_tests.sh; sets $PY to the environment's python.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RENET_VENV:-$repo/.venv}"
stamp="$venv/.renet-installed"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  echo "[setup] creating/updating the environment in $venv (first run takes several minutes)"
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # torch/torchvision first, pinned to versions the project supports; pip picks a local wheel
  # when one is available and otherwise downloads the matching release.
  "$venv/bin/python" -m pip install --quiet "torch>=2.1,<2.15" "torchvision>=0.16,<0.30"
  "$venv/bin/python" -m pip install --quiet -e "$repo[dev]"
  touch "$stamp"
fi
PY="$venv/bin/python"
export PY
