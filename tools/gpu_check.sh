#!/usr/bin/env bash
# One prepared check of a lent GPU (issue 22), at most ~5 minutes on one GPU: section 4.7's 12-AU
# inference (the paper's loop against the batched pass, bf16 and float32, channels_last, batch 1
# and 256) beside the paper's 5.4 ms/image; ~50 paper-profile training steps of each model and
# strategy on SynthAU at 224 px (the dry run: validation, test, checkpoint, resume, s/step, peak
# memory); the training loader's images/s per worker count; DDP on two processes when two GPUs
# exist. Every figure goes to results/gpu_check/gpu_check-<device>-<time>.json.
#
#   tools/gpu_check.sh                      # on the GPU (CUDA is picked automatically)
#   tools/gpu_check.sh --device cpu --quick # every section, small, on the CPU (CI; no GPU)
#   tools/gpu_check.sh --out DIR            # the JSON elsewhere
#
# Without a usable CUDA GPU the full check refuses at once (exit 2), saying why and naming --device cpu --quick.
#
# Uses $PY when set (a python with renet_core installed), else the project's .venv (created on
# first use, as run_all.sh does). Other options: python -m renet_core.bench gpu --help
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  source tools/ensure_venv.sh
fi
export MPLBACKEND=Agg
exec "$PY" -m renet_core.bench gpu "$@"
