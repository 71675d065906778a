#!/usr/bin/env bash
# Run the whole test suite in the project's environment (created on first use).
# Extra arguments go to pytest, e.g. ./run_tests.sh -k model -x
set -euo pipefail
cd "$(dirname "$0")"
source tools/ensure_venv.sh
export MPLBACKEND=Agg
exec "$PY" -m pytest -q "$@"
