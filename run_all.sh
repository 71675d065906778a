#!/usr/bin/env bash
# Regenerate every table into results/ and every figure into figures/.
# Creates .venv on first use, writes the SynthAU datasets when no real dataset is configured
# (RENET_BP4D, RENET_DISFA, RENET_BP4DPLUS), then runs every notebook with papermill.
# Options (passed through): --profile {smoke,demo,paper}  --only NAME  --jobs N
set -euo pipefail
cd "$(dirname "$0")"
source tools/ensure_venv.sh
export MPLBACKEND=Agg
if "$PY" -c "import renet_core.runall" 2>/dev/null; then
  exec "$PY" -m renet_core.runall "$@"
fi
echo "renet_core.runall is not available in this checkout: no tables can be produced yet." >&2
echo "Running what exists: the model benchmark." >&2
"$PY" -m renet_core.bench model
exit 1
