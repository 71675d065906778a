#!/usr/bin/env bash
# Create .venv with the project and its dev extra when it is missing, incomplete or out of date.
# Sourced by run_all.sh and run_tests.sh; sets $PY to the environment's python.
#
# By default it installs requirements.lock: the exact versions (and hashes) of the environment that
# made the committed results (tools/lock.sh refreshes it), then the project itself without
# dependencies. It installs again when the lock or pyproject.toml is newer than the stamp, or the
# lock's content changed. RENET_UNLOCKED=1 installs pyproject.toml's ranges instead (the newest
# versions they allow: not the environment that made the results). RENET_VENV moves the environment.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RENET_VENV:-$repo/.venv}"
stamp="$venv/.renet-installed"
lock="$repo/requirements.lock"
if [ "${RENET_UNLOCKED:-0}" = "1" ]; then
  want="unlocked (pyproject.toml ranges)"
else
  want="locked $(cksum < "$lock" | cut -d' ' -f1)"
fi
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] \
   || [ "$lock" -nt "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] creating/updating the environment in $venv: $want (first run takes several minutes)"
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [ "${RENET_UNLOCKED:-0}" = "1" ]; then
    # torch/torchvision first, pinned to versions the project supports; pip picks a local wheel
    # when one is available and otherwise downloads the matching release.
    "$venv/bin/python" -m pip install --quiet "torch>=2.1,<2.15" "torchvision>=0.16,<0.30"
    "$venv/bin/python" -m pip install --quiet -e "$repo[dev]"
  else
    if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))'; then
      echo "[setup] requirements.lock is for Python >= 3.11.5; $venv has $("$venv/bin/python" --version 2>&1)." \
           "Remove $venv and run again with PYTHON=python3.11 (or newer), or set RENET_UNLOCKED=1 to install" \
           "pyproject.toml's ranges (other versions than those that made the committed results)" >&2
      exit 1
    fi
    "$venv/bin/python" -m pip install --quiet -r "$lock"
    "$venv/bin/python" -m pip install --quiet --no-deps -e "$repo"
  fi
  printf '%s\n' "$want" > "$stamp"
fi
PY="$venv/bin/python"
export PY
