"""Converged training budgets as data (issue 33): the budget measured for each (profile, data,
dataset, task, model variant) by the convergence rule (:mod:`renet_core.study.convergence`), kept
in ``renet_core/resources/converged_budgets.csv``, and the configs of a run at a budget.

A **budget** is counted in one-AU steps (:func:`au_steps`): the steps of a run, times C for
section 3.4's strategy 1 (every AU every batch). A run at budget ``B`` is its table config with
``epochs`` = the profile's evaluations per run (:func:`evaluations`; the demo: 5) and
``steps_per_epoch`` the fewest that reach ``B`` (:func:`at_budget`), so that the run measured for
the curve at ``B`` (tools/convergence_curves.py) and the study's run at budget ``B`` are one run,
found by one identity. The **ladder** of budgets a curve is measured on (:func:`ladder`) steps by
at least :data:`convergence.LONGER` x, so that each budget is judged by the next.

The profile's ``per_run_budgets`` switch (:func:`per_run_budgets`) makes the study's configs
(:func:`renet_core.study.configs.spec_configs`) train each run at its recorded budget; off, or with
no budget recorded, the profile's own budget stays, and with it every run identity. A profile's
runs are judged against the budgets of :func:`budgets_profile` (its ``budgets_from``): the
preview's against the demo's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from renet_core.base.io import to_csv_atomic
from renet_core.engine import get_profile, profile_setting
from renet_core.study.convergence import LONGER

#: Where the measured budgets are kept (one row per profile, data, dataset, task, variant).
BUDGETS_CSV = Path(__file__).resolve().parents[1] / "resources" / "converged_budgets.csv"
#: Its columns: ``variant`` is the run's method name (``ExperimentConfig.method_name``, e.g.
#: "renet-learnable"), ``data`` "synthetic" or "real", ``steps`` the budget in one-AU steps,
#: ``source`` where it was measured (the results/convergence_*.md page).
COLUMNS = ("profile", "data", "dataset", "task", "variant", "steps", "source")


def _key(profile: str, data: str, dataset: str, task: str, variant: str) -> tuple[str, ...]:
    return (str(profile), str(data), str(dataset), str(task), str(variant))


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the converged budgets ({exc}); expected a CSV with columns "
                         f"{', '.join(COLUMNS)}") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing; expected {', '.join(COLUMNS)}")
    return frame


def recorded_budgets(path: str | os.PathLike | None = None) -> dict[tuple[str, ...], int]:
    """``{(profile, data, dataset, task, variant): steps}`` from the budgets file (default
    :data:`BUDGETS_CSV`); a clear error names the file and the row for a budget that is not a
    positive integer or a key given twice."""
    path = Path(path) if path is not None else BUDGETS_CSV
    out: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(_read(path).to_dict("records"), start=2):
        key = _key(*(row[c].strip() for c in COLUMNS[:5]))
        try:
            steps = int(row["steps"])
        except ValueError:
            steps = 0
        if steps < 1:
            raise ValueError(f"{path}, line {i}: steps={row['steps']!r}; expected a positive integer (one-AU steps)")
        if key in out:
            raise ValueError(f"{path}, line {i}: {key} recorded twice; expected one budget per key")
        out[key] = steps
    return out


def recorded_budget(profile: str, cfg, path: str | os.PathLike | None = None) -> int | None:
    """The recorded budget of run config ``cfg``'s (data, dataset, task, variant) under
    ``profile``; None when none is measured."""
    return recorded_budgets(path).get(_key(profile, cfg.data, cfg.dataset, cfg.task, cfg.method_name()))


def record_budget(profile: str, cfg, steps: int, source: str, path: str | os.PathLike | None = None) -> Path:
    """Write (or replace) ``cfg``'s variant's budget in the budgets file, atomically."""
    path = Path(path) if path is not None else BUDGETS_CSV
    frame = _read(path) if path.exists() else pd.DataFrame(columns=list(COLUMNS))
    key = _key(profile, cfg.data, cfg.dataset, cfg.task, cfg.method_name())
    same = frame[list(COLUMNS[:5])].apply(tuple, axis=1) == key if len(frame) else pd.Series([], dtype=bool)
    row = dict(zip(COLUMNS, (*key, str(int(steps)), source)))
    frame = pd.concat([frame[~same], pd.DataFrame([row])], ignore_index=True)[list(COLUMNS)]
    return to_csv_atomic(frame.sort_values(list(COLUMNS[:5])), path, index=False)


def budgets_profile(profile: str) -> str:
    """The profile whose recorded budgets judge ``profile``'s runs: its ``budgets_from`` (the
    preview's are the demo's: same data and variants, only shorter runs), else itself."""
    return profile_setting(profile, "budgets_from") or profile


def per_run_budgets(profile: str) -> bool:
    """The profile's switch: do the study's runs train at their recorded budgets?"""
    return bool(profile_setting(profile, "per_run_budgets"))


def au_steps(cfg) -> int | None:
    """A run's training in steps of one-AU batches (section 3.4's strategy 1 trains all C AUs
    per step: C each); None where the profile does not cap the steps (early stopping)."""
    if not cfg.steps_per_epoch:
        return None
    steps = cfg.epochs * cfg.steps_per_epoch
    return steps * _per_step(cfg)


def _per_step(cfg) -> int:
    return len(cfg.resolved_aus()) if cfg.strategy == "all" else 1


def evaluations(profile: str, dataset: str, task: str) -> int:
    """Validation passes (epochs) of a run at a budget: those of the profile's table budget for
    (dataset, task), else the profile's own ``epochs`` (demo 5, smoke 2)."""
    fields = profile_setting(profile, "table_budgets", (dataset, task), {}) or {}
    return int(fields.get("epochs") or get_profile(profile)["epochs"])


def at_budget(cfg, steps: int, evals: int):
    """``cfg`` trained for ``steps`` one-AU steps in ``evals`` epochs: the fewest steps per epoch
    that reach ``steps`` (:func:`au_steps` of the result is >= ``steps``, and equal to it when
    ``steps`` is one of them)."""
    if int(steps) < 1 or int(evals) < 1:
        raise ValueError(f"steps={steps}, evaluations={evals}: expected positive integers")
    own = math.ceil(int(steps) / _per_step(cfg))
    return cfg.replace(epochs=int(evals), steps_per_epoch=math.ceil(own / int(evals)))


def with_budget(cfg, profile: str, path: str | os.PathLike | None = None):
    """``cfg`` at its recorded budget when the profile's switch is on and one is recorded; else ``cfg``."""
    if not per_run_budgets(profile):
        return cfg
    budget = recorded_budget(profile, cfg, path)
    return cfg if budget is None else at_budget(cfg, budget, evaluations(profile, cfg.dataset, cfg.task))


def ladder(cfg, evals: int, anchor: int, below: int = 3, above: int = 5, longer: float = LONGER) -> list[int]:
    """The budgets (one-AU steps, ascending) a variant's curve is measured at: ``anchor``'s
    budget, ``below`` budgets under it and ``above`` over it, each at least ``longer`` x the one
    before (after :func:`at_budget`'s rounding), so each is judged by the next. Budgets under
    ``evals`` steps are left out."""
    def steps(n: int) -> int:
        return au_steps(at_budget(cfg, n, evals))

    rungs = [steps(anchor)]
    for _ in range(above):
        rungs.append(steps(math.ceil(rungs[-1] * longer)))
    for _ in range(below):
        target = math.floor(rungs[0] / longer)
        while target >= evals and steps(target) * longer > rungs[0]:
            target -= 1
        if target < evals:
            break
        rungs.insert(0, steps(target))
    return rungs
