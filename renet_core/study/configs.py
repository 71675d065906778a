"""From a table's spec to its runs: one config per row and fold (the profile's settings and
budgets, the dataset root or its SynthAU twin), the runs' rows found by run identity, the chance
rows from their saved test labels, and the training budget in words."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from renet_core.base.metrics import always_positive_f1
from renet_core.engine import ExperimentConfig, ResultsStore, profile_setting, run
from renet_core.engine.store import is_synthetic
from renet_core.study.budgets import au_steps, with_budget
from renet_core.study.tables import TABLES, TableSpec


def config(profile: str, dataset: str, task: str = "occurrence", root: str | None = None,
           store_dir: str | os.PathLike | None = None, **changes):
    """One run's config: :meth:`ExperimentConfig.build` with the profile, the dataset root (else
    ``$RENET_<DATASET>``, else the SynthAU twin) and ``changes`` (``None`` values ignored); runs
    are kept in ``store_dir`` (default: :func:`default_store`)."""
    changes = {**profile_setting(profile, "table_budgets", (dataset, task), {}), **changes}
    return ExperimentConfig.build(profile=profile, root=root, dataset=dataset, task=task,
                                  results_dir=str(store_dir) if store_dir else None, **changes)


def under_trained(configs: dict[str, list], profile: str) -> tuple[int | None, bool]:
    """``(fewest one-AU steps of the table's RE-Net runs, whether that is below the profile's
    parity steps for their dataset and task)``; ``(None, False)`` when no RE-Net run is capped or
    the profile has no parity figure (:func:`parity_steps`)."""
    renet = [c for cfgs in configs.values() for c in cfgs if c.model == "renet"]
    steps = [s for s in (au_steps(c) for c in renet) if s is not None]
    if not steps:
        return None, False
    fewest = min(steps)
    parity = parity_steps(profile, renet[0].dataset, renet[0].task)
    return fewest, parity is not None and fewest < parity


def parity_steps(profile: str, dataset: str, task: str) -> int | None:
    """One-AU steps RE-Net needs to come within 2 validation points of ResNet-18 on (dataset,
    task) under ``profile`` (its ``parity_steps``; None where it has no figure)."""
    return profile_setting(profile, "parity_steps", (dataset, task))


def default_store(profile: str) -> Path:
    """Where a profile's runs keep checkpoints, predictions and results.csv: outside the
    repository (checkpoints are large), ``<cache>/runs/<profile>``."""
    return Path(ExperimentConfig(profile=profile).results_dir)


def default_folds(name: str, profile: str) -> list[int]:
    """The folds table ``name`` runs under ``profile`` when none are given (the profile's
    ``folds``: all three, section 4.1, unless the profile says otherwise)."""
    return list(profile_setting(profile, "folds", name, (1, 2, 3)))


def row_fields(spec: TableSpec) -> list[str]:
    """The config fields that define the table's rows (any row sets them, e.g. Table 7's
    ``model`` and ``relation_mode``): what makes each row measure what its label says."""
    return sorted({k for row in spec.rows for k in row.config})


def spec_configs(spec: TableSpec, profile: str = "demo", root: str | None = None, folds: Sequence[int] | None = None,
                 store_dir=None, **changes) -> dict[str, list]:
    """``{row key: [config of fold f, ...]}``: the runs a table needs; ``folds=None`` takes
    :func:`default_folds`. ``changes`` apply to every row, but never to a field that defines
    the table's rows (:func:`row_fields`): such an override would turn a labelled row into
    another row's run (Table 7's "fixed PCC" into its "learnable"), so it is refused by name.
    Where the profile trains each run at its own converged budget (its ``per_run_budgets``) and
    one is recorded for the row's variant, the row gets it (:func:`renet_core.study.budgets.with_budget`),
    unless ``changes`` set ``epochs`` or ``steps_per_epoch``."""
    clash = sorted(k for k, v in changes.items() if k in row_fields(spec) and v is not None)
    if clash:
        defined = "; ".join(f"{r.key}: " + ", ".join(f"{k}={r.config[k]!r}" for k in clash if k in r.config)
                            for r in spec.rows if any(k in r.config for k in clash))
        raise ValueError(f"{spec.name}: the override(s) {', '.join(f'{k}={changes[k]!r}' for k in clash)} would change "
                         f"what its rows measure: {', '.join(clash)} define(s) its rows ({defined}); remove "
                         "them from the overrides (each row sets its own)")
    folds = list(folds) if folds else default_folds(spec.name, profile)
    own_budget = any(changes.get(k) is not None for k in ("epochs", "steps_per_epoch"))
    out = {}
    for row in spec.rows:
        base = config(profile, spec.dataset, spec.task, root, store_dir, **{**changes, **row.config})
        scale = row.scale(len(base.resolved_aus()))
        if scale != 1.0 and base.steps_per_epoch:
            base = base.replace(steps_per_epoch=max(1, int(round(base.steps_per_epoch * scale))))
        if not own_budget:
            base = with_budget(base, profile)
        out[row.key] = [base.replace(fold=int(f)) for f in folds]
    return out


def training_budget(configs: dict[str, list]) -> str:
    """The training budget of a table's runs in words (its Markdown says it): steps of a batch
    per run where the profile caps them, else epochs with early stopping."""
    parts = {}
    for key, cfgs in configs.items():
        c = cfgs[0]
        if c.steps_per_epoch:
            words = f"{c.epochs * c.steps_per_epoch} steps of batch {c.batch_size}"
        else:
            words = f"up to {c.epochs} epochs of batch {c.batch_size}, early stopping (patience {c.patience})"
        parts.setdefault(words, []).append(key)
    if len(parts) == 1:
        return f"Training budget: {next(iter(parts))} per run."
    return "Training budget: " + "; ".join(f"{w} ({', '.join(keys)})" for w, keys in parts.items()) + "."


def select_rows(results: pd.DataFrame, configs: dict[str, list]) -> pd.DataFrame:
    """The result rows of exactly these configs, found by run identity, with the table row's key
    in a column ``entry`` (a run shared by two table rows appears under both)."""
    parts = []
    for key, cfgs in configs.items():
        hashes = {c.config_hash() for c in cfgs}
        part = results[results["config_hash"].astype(str).isin(hashes)].copy()
        part["entry"] = key
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else results.iloc[:0].assign(entry=[])


def run_configs(configs: dict[str, list], progress: Callable[[str], None] = print) -> pd.DataFrame:
    """Run (or reuse) every config; return their rows with ``entry`` (:func:`select_rows`)."""
    rows, done = [], {}
    for key, cfgs in configs.items():
        for cfg in cfgs:
            ident = cfg.config_hash()
            if ident not in done:
                progress(f"{key} on {cfg.dataset} ({cfg.task}), fold {cfg.fold} [run {ident}]")
                done[ident] = run(cfg).rows
            rows.append(done[ident].assign(entry=key))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def chance_rows(configs: dict[str, list], spec: TableSpec, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Always-positive and label-prior F1 per AU and fold, from the test labels saved with the
    table's own runs (one run per fold is enough: every run of a fold has the same test frames);
    ``runs`` (their result rows) name the data: "test labels of <their data source>"."""
    source, synthetic = "this run's test labels", False
    if runs is not None and len(runs) and "data_source" in runs:
        source = "test labels of " + " + ".join(sorted(set(runs["data_source"].astype(str))))
        synthetic = is_synthetic(runs)
    by_fold = {}
    for cfgs in configs.values():
        for cfg in cfgs:
            store = ResultsStore(cfg.results_dir)
            if cfg.fold not in by_fold and store.is_done(cfg.config_hash()):
                by_fold[cfg.fold] = store.load_predictions(cfg.config_hash())
    records = []
    for fold, pred in sorted(by_fold.items()):
        y = np.asarray(pred["y_true"], dtype=float)
        always = always_positive_f1(y)
        for j, au in enumerate(int(a) for a in pred["aus"]):
            labels = y[:, j][~np.isnan(y[:, j])]
            p = float((labels > 0).mean()) if len(labels) else float("nan")
            for entry, value in (("always-positive", float(always[j])), ("label-prior", p)):
                records.append({"entry": entry, "dataset": spec.dataset, "task": spec.task, "method": entry,
                                "fold": fold, "au": au, "metric": "f1", "seed": 0, "value": value,
                                "data_source": source, "synthetic": synthetic})
    return pd.DataFrame.from_records(records)


def table_configs(profile: str, store_dir=None, roots: dict | None = None, **changes) -> dict[str, dict]:
    """Every table's run configs under ``profile``, for the folds it runs (:func:`default_folds`):
    ``{table: {row key: [config per fold]}}``."""
    roots = roots or {}
    return {name: spec_configs(spec, profile, roots.get(spec.dataset), None, store_dir, **changes)
            for name, spec in TABLES.items()}
