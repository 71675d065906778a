#!/usr/bin/env bash
# Regenerate every table into results/ and every figure into figures/.
# Creates .venv on first use, writes the SynthAU datasets when no real dataset is configured
# (RENET_BP4D, RENET_DISFA, RENET_BP4DPLUS), then runs every notebook with papermill.
# Options (passed through): --profile {smoke,preview,demo,paper}  --only NAME  --jobs N  --list
set -euo pipefail
cd "$(dirname "$0")"
source tools/ensure_venv.sh
export MPLBACKEND=Agg
exec "$PY" -m renet_core.runall "$@"
