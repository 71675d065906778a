#!/usr/bin/env bash
# Issue 33's long computation: measure the converged budget of every (dataset, task, variant)
# behind a claim, one variant at a time, each with tools/convergence_curves.py --record. Resumable:
# rerun the same line; finished runs are found by identity in $RENET_CACHE, a cut run resumes from
# its checkpoint, and a variant whose budget is recorded is measured again in seconds (no training).
# Order: Table 1 first (the headline claim and the cross-machine check), then the cheap ResNet-18
# variants, RE-Net intensity, and RE-Net detection. RE-Net on BP4D: its ladder from the demo's 1250
# steps (1250 to 9510 on an Intel Xeon, 2026-12-03, records lost with that machine; 1250 again on
# an AMD EPYC) stayed more than a point under the curve's maximum (0.626 at 6340; 0.640-0.647 at
# 14265-21400; docs/findings.md), so the line measures from 14265 to its three-rung horizon 48150
# (--anchor 14265 --below 0 --above 3) instead of retraining the rungs below (~4.5 h); the page
# from every record there is: --from-store with --anchor 1250 --below 0 --above 9;
# RE-Net intensity's ladder, from 365, reaches 14265: a budget of 4225).
# The climb stops at the first budget the rule accepts.
# RE-Net's other detection variants (DISFA, BP4D+, Tables 6-8, section 3.4) check one candidate,
# the budget recorded for RE-Net on BP4D (--check-from bp4d:renet: that budget and its 3.375x
# horizon, 46% of a ladder's steps; docs/reproduction-notes.md, "The convergence rule"); a variant
# whose check fails, or that runs before RE-Net's budget is recorded, says so and the rest go on.
#
# The cache need not outlive the machine: finished runs' records (no checkpoints) are imported from
# results/archive/demo at the start and exported there as each run finishes (renet_core.engine.archive);
# commit that folder at the end of a sitting and the next machine starts where this one stopped
# (a run cut mid-training starts again there).
#
#   RENET_CACHE=/work/cache nohup tools/convergence_all.sh > /work/cache/convergence.log 2>&1 &
#   tools/convergence_all.sh --plan      # what each variant has done and would train; trains nothing
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  source tools/ensure_venv.sh
fi
: "${RENET_CACHE:?set RENET_CACHE to a kept cache folder (the runs live there)}"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
VARIANTS=(
  "bp4d occurrence resnet18 --below 3"
  "bp4d occurrence renet --anchor 14265 --below 0 --above 3"
  "bp4d occurrence resnet18+DA --below 3"
  "disfa occurrence resnet18 --below 3"
  "bp4dplus occurrence resnet18 --below 3"
  "bp4d intensity resnet18 --below 3"
  "disfa intensity resnet18 --below 3"
  "bp4d intensity renet --below 3 --above 6"
  "disfa intensity renet --below 3 --above 6"
  "disfa occurrence renet --check-from bp4d:renet"
  "bp4dplus occurrence renet --check-from bp4d:renet"
  "bp4d occurrence renet-learnable --check-from bp4d:renet"
  "bp4d occurrence renet-none --check-from bp4d:renet"
  "bp4d occurrence renet+DA --check-from bp4d:renet"
  "bp4d occurrence renet-unseenAU23 --check-from bp4d:renet"
  "bp4d occurrence renet-unseenAU24 --check-from bp4d:renet"
  "bp4d occurrence renet-all --check-from bp4d:renet"
)
ARCHIVE=results/archive/demo
if [ "${1:-}" != "--plan" ] && [ -d "$ARCHIVE" ]; then
  "$PY" -m renet_core archive import --profile demo --archive "$ARCHIVE" || echo "[convergence] some records were left out (above)"
fi
status=0
for spec in "${VARIANTS[@]}"; do
  read -r dataset task variant ladder <<<"$spec"
  echo "[convergence] $(date -u '+%F %T') $dataset $task $variant"
  if [ "${1:-}" = "--plan" ]; then
    "$PY" tools/convergence_curves.py --dataset "$dataset" --task "$task" --variant "$variant" $ladder --plan || status=1
  else
    "$PY" tools/convergence_curves.py --dataset "$dataset" --task "$task" --variant "$variant" $ladder --record --archive "$ARCHIVE" \
      || { status=1; echo "[convergence] $variant on $dataset $task failed; going on with the next"; }
  fi
done
echo "[convergence] $(date -u '+%F %T') all variants tried (exit $status)"
exit $status
