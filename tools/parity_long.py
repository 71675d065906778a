"""How many steps would RE-Net need for parity? (issue 23; docs/training-dynamics.md)

Trains RE-Net (the table's own row: fixed PCC, the demo's settings) for one long cosine schedule
on each fold of a table's dataset and task, validating every ``steps / evals`` steps with no
early stopping, and sets each validation score against ResNet-18's best validation score in the
demo's own run of the same fold (the table's budget; ResNet-18 is flat after 250-750 steps). A
fold is at parity from the first evaluation within ``board.PARITY_TOLERANCE`` of it. Validation
decides; the test score of the weights validation picked is reported, never used.

Writes ``<out>/<name>.md``, ``<name>.csv`` (one row per fold) and ``<name>_curves.csv`` (every
evaluation). The runs are kept in the profile's store under their own identities, so a rerun
reuses them and a run cut short resumes from its checkpoint.

    RENET_CACHE=<cache> python tools/parity_long.py --table table1 --steps 5000 --evals 10
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore, run
from renet_core.study.board import PARITY_TOLERANCE, best_validation, validation_history
from renet_core.study.configs import spec_configs
from renet_core.study.tables import TABLES


def history(cfg) -> list[tuple[int, float]]:
    """``[(step, validation score), ...]`` of a finished run, in order."""
    return [(epoch * int(cfg.steps_per_epoch or 0), score)
            for epoch, score in validation_history(ResultsStore(cfg.results_dir), cfg)]


def first_parity(curve: list[tuple[int, float]], reference: float, tolerance: float = PARITY_TOLERANCE) -> int | None:
    """The first step whose validation score is within ``tolerance`` of ``reference``; None if none is."""
    return next((step for step, score in curve if score >= reference - tolerance), None)


def test_score(rows: pd.DataFrame, task: str) -> float:
    """The run's mean test F1 (occurrence) or ICC (intensity) over AUs."""
    metric = "f1" if task == "occurrence" else "icc"
    return float(rows.loc[rows["metric"] == metric, "value"].mean())


def study(table: str, profile: str = "demo", steps: int = 5000, evals: int = 10, folds=(1, 2, 3)):
    """Train (or reuse) the long RE-Net runs; return ``(per-fold frame, curves frame, spec)``."""
    if steps < evals or evals < 1:
        raise ValueError(f"steps={steps}, evals={evals}: expected 1 <= evals <= steps")
    spec = TABLES[table]
    demo = spec_configs(spec, profile, folds=list(folds))
    long = spec_configs(spec, profile, folds=list(folds), epochs=evals, steps_per_epoch=steps // evals,
                        patience=evals)["renet"]
    records, curves = [], []
    for fold, ref_cfg, demo_renet, renet_cfg in zip(folds, demo["resnet18"], demo["renet"], long):
        store = ResultsStore(ref_cfg.results_dir)
        reference = best_validation(store, ref_cfg)
        if reference is None:
            raise RuntimeError(f"ResNet-18's {spec.name} run of fold {fold} ({ref_cfg.config_hash()}) is not finished "
                               f"in {ref_cfg.results_dir}; run the demo first (./run_all.sh) or set RENET_CACHE")
        print(f"{spec.name} fold {fold}: RE-Net {steps} steps [run {renet_cfg.config_hash()}]", flush=True)
        rows = run(renet_cfg).rows
        curve = history(renet_cfg)
        best_step, best = max(curve, key=lambda p: p[1])
        records.append({"table": spec.name, "dataset": spec.dataset, "task": spec.task, "fold": fold,
                        "resnet18_best_val": reference, "resnet18_steps": ref_cfg.epochs * ref_cfg.steps_per_epoch,
                        "renet_demo_best_val": best_validation(store, demo_renet), "renet_best_val": best,
                        "renet_best_step": best_step, "gap_at_best": best - reference,
                        "first_parity_step": first_parity(curve, reference), "renet_test": test_score(rows, spec.task),
                        "steps": steps, "eval_every": renet_cfg.steps_per_epoch, "config_hash": renet_cfg.config_hash()})
        curves += [{"fold": fold, "step": s, "val": v, "gap": v - reference} for s, v in curve]
    return pd.DataFrame.from_records(records), pd.DataFrame.from_records(curves), spec


def _f(x, scale=100.0, digits=1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{scale * float(x):+.{digits}f}"


def render(per_fold: pd.DataFrame, curves: pd.DataFrame, spec, profile: str, name: str) -> str:
    """The Markdown page: per fold and on the mean over folds."""
    steps = int(per_fold["steps"].iloc[0])
    mean = curves.groupby("step")["gap"].mean()
    unit = "F1 points" if spec.task == "occurrence" else "ICC x 100"
    lines = [f"# How many steps would RE-Net need for parity? {spec.title.split(':')[0]} ({spec.dataset}, {spec.task})", "",
             f"Data: SynthAU {profile} twin of {spec.dataset} (**synthetic**), the demo's settings (48 px, batch 32, "
             f"lr 1e-3 cosine, AU-specific lr x C, stand-in start, float32). RE-Net (fixed PCC) trained for one "
             f"{steps}-step cosine schedule per fold, validated every {int(per_fold['eval_every'].iloc[0])} "
             "steps, no early stopping; ResNet-18 is the demo's own run of the same fold "
             f"({int(per_fold['resnet18_steps'].iloc[0])} steps). Validation decides (tolerance "
             f"{100 * PARITY_TOLERANCE:g} {unit}); test is reported, never used. Made by `tools/parity_long.py` "
             f"(`--table {spec.name} --steps {steps}`), on 2 CPU cores.", "",
             f"| fold | ResNet-18 best val | RE-Net best val at the demo budget | RE-Net best val, {steps} steps (step) | "
             f"gap at best ({unit}) | first step within tolerance | RE-Net test (val-picked) |",
             "|---|---|---|---|---|---|---|"]
    for _, r in per_fold.iterrows():
        lines.append(f"| {r['fold']} | {r['resnet18_best_val']:.3f} | {r['renet_demo_best_val']:.3f} | "
                     f"{r['renet_best_val']:.3f} ({int(r['renet_best_step'])}) | {_f(r['gap_at_best'])} | "
                     f"{'never' if pd.isna(r['first_parity_step']) else int(r['first_parity_step'])} | "
                     f"{r['renet_test']:.3f} |")
    lines += ["", f"Mean gap over folds at each evaluation ({unit}): "
              + ", ".join(f"{int(s)}: {_f(g)}" for s, g in mean.items()) + ".", "",
              "Every evaluation, per fold: `" + f"{name}_curves.csv" + "` beside this file."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default="table1", choices=("table1", "table2", "table3"))
    p.add_argument("--profile", default="demo")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--evals", type=int, default=10, help="validation passes over the schedule")
    p.add_argument("--folds", default="1,2,3")
    p.add_argument("--out", default="results")
    p.add_argument("--name", default=None, help="output name (default parity_long_<table>_<steps>)")
    a = p.parse_args(argv)
    folds = [int(f) for f in a.folds.split(",")]
    name = a.name or f"parity_long_{a.table}_{a.steps}"
    per_fold, curves, spec = study(a.table, a.profile, a.steps, a.evals, folds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    to_csv_atomic(per_fold, out / f"{name}.csv")
    to_csv_atomic(curves, out / f"{name}_curves.csv")
    page = render(per_fold, curves, spec, a.profile, name)
    write_text_atomic(out / f"{name}.md", page)
    print(page)
    print(f"mean gap at best: {100 * np.mean(per_fold['gap_at_best']):+.1f}")


if __name__ == "__main__":
    main()
