"""The claims scoreboard of a profile's finished runs: every table's rows found in the store by
run identity (nothing is run), the claims of :mod:`renet_core.study.claims` measured on them,
and whether each claim is converged (issue 33: every one of its runs trained at least the
converged budget measured for its dataset, task and model variant,
:func:`renet_core.study.convergence.claim_convergence`), with, as information only, the validation
gap between RE-Net and ResNet-18 that its own runs reached."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from renet_core.engine import ResultsStore, fingerprints_once
from renet_core.engine.execute import stored_rows
from renet_core.engine.store import is_synthetic
from renet_core.study import claims
from renet_core.study.budgets import au_steps, budgets_profile, recorded_budgets
from renet_core.study.configs import chance_rows, select_rows, spec_configs, table_configs
from renet_core.study.convergence import claim_convergence
from renet_core.study.figures import feature_inputs
from renet_core.study.preview import notice, preview_mark
from renet_core.study.tables import CHANCE_ENTRIES, TABLE_OF, TABLES, TSNE_AUS

#: RE-Net is at parity when its best validation score is at most this far below ResNet-18's
#: (2 F1 points; 0.02 ICC), the criterion notebook 09's curves use. Information only: it decides
#: no mark of the scoreboard (issue 33: the budget rule looks at each model's own curve).
PARITY_TOLERANCE = 0.02


@fingerprints_once()
def finished_rows(profile: str, store_dir=None, roots: dict | None = None, configs_by_table: dict | None = None,
                  **changes) -> tuple[dict, dict]:
    """Every table's rows that are already in the store (nothing is run), with ``entry`` and the
    chance rows, for the folds the table runs under ``profile`` (:func:`default_folds`, so a
    claim uses what its table shows): ``({table: rows}, {table: synthetic?})``, for
    :mod:`renet_core.study.claims`. ``configs_by_table`` (:func:`table_configs`) saves building the
    configs again when the caller has them."""
    if configs_by_table is None:
        configs_by_table = table_configs(profile, store_dir, roots, **changes)
    rows_by_table, synthetic = {}, {}
    for name, spec in TABLES.items():
        configs = configs_by_table[name]
        store = ResultsStore(next(iter(configs.values()))[0].results_dir)
        for cfg in (c for cfgs in configs.values() for c in cfgs):
            if store.is_done(cfg.config_hash()):
                try:
                    stored_rows(cfg, store)   # rows lost from results.csv come back from the predictions
                except ValueError as exc:
                    warnings.warn(str(exc), stacklevel=2)
        rows = select_rows(store.done_rows(), configs)   # finished runs only
        if rows.empty:
            continue
        if spec.chance:
            rows = pd.concat([rows, chance_rows(configs, spec, rows)], ignore_index=True)
        rows_by_table[name], synthetic[name] = rows, is_synthetic(rows[~rows["entry"].isin(
            list(CHANCE_ENTRIES))])
    return rows_by_table, synthetic


@fingerprints_once()
def scoreboard(profile: str, store_dir=None, roots: dict | None = None, **changes) -> pd.DataFrame:
    """The claims scoreboard (:func:`renet_core.study.claims.scoreboard`) of the runs in the store,
    with Fig. 3's silhouette claim over the folds whose two Table 1 runs are there, whether each
    claim is converged (:func:`convergence_marks`: ``converged``, and ``convergence`` in words)
    and the validation gap of its dataset and task (``val_gap``, information only)."""
    configs_by_table = table_configs(profile, store_dir, roots, **changes)
    rows_by_table, synthetic = finished_rows(profile, store_dir, roots, configs_by_table, **changes)
    table1 = configs_by_table[FEATURE_TABLE]
    store = ResultsStore(table1["renet"][0].results_dir)
    features = {}
    for renet, resnet in zip(*(table1[key] for key in FEATURE_ROWS)):
        pair = {"renet": renet, "resnet18": resnet}
        if all(store.is_done(c.config_hash()) for c in pair.values()):
            pred = {k: store.load_predictions(c.config_hash()) for k, c in pair.items()}
            if all("features" in p for p in pred.values()):
                features[renet.fold] = feature_inputs(pred)
    claim = claims.silhouette_claim(features, TSNE_AUS)
    claim["data"] = ("synthetic" if synthetic.get("table1") else "real") if features else ""

    def predictions(table: str, entry: str) -> dict | None:
        """A row's saved test predictions per fold (``{fold: arrays}``), or None."""
        rows = rows_by_table.get(table)
        if rows is None or "config_hash" not in rows:
            return None
        runs = rows.loc[rows["entry"] == entry, ["fold", "config_hash"]].dropna().drop_duplicates()
        if runs.empty or not all(store.is_done(str(h)) for h in runs["config_hash"]):
            return None
        return {int(f): store.load_predictions(str(h)) for f, h in zip(runs["fold"], runs["config_hash"])}

    board = claims.scoreboard(rows_by_table, synthetic, [claim], predictions)
    gap = {}
    for name, spec in TABLES.items():
        main = TABLE_OF[(spec.task, spec.dataset)]     # Tables 6-8 and 3.4 share Table 1's gap: read it once
        gap[name] = gap[main] if main in gap else validation_gap(configs_by_table[main], store)
    gap["fig3"] = gap["table1"]                       # Fig. 3 uses Table 1's runs
    marks = convergence_marks(claim_runs(configs_by_table), profile)
    board["val_gap"] = [gap.get(t) for t in board["table"]]
    board["converged"] = [bool(marks.get(c, (False, ""))[0]) for c in board["claim"]]
    board["convergence"] = [marks.get(c, (False, "no runs"))[1] for c in board["claim"]]
    if notice(profile):
        board.attrs["notice"] = notice(profile)   # claims.render: a preview says so above its table
    return board


def claim_runs(configs_by_table: dict[str, dict]) -> dict[str, list]:
    """``{claim: [run config, ...]}``: the runs behind each claim, every fold its table runs: its
    two table rows (a chance row is no run) and, for Fig. 3's silhouette, Table 1's two rows."""
    out = {}
    for c in claims.CLAIMS:
        rows = configs_by_table.get(c.table, {})
        out[c.text] = [cfg for key in (c.better, c.worse) if key not in CHANCE_ENTRIES for cfg in rows.get(key, [])]
    out[claims.SILHOUETTE_CLAIM] = feature_runs(configs_by_table.get(FEATURE_TABLE, {}))
    return out


#: The table whose runs' saved test features Fig. 3 and its silhouette claim read, and its rows.
FEATURE_TABLE, FEATURE_ROWS = "table1", ("renet", "resnet18")


def feature_runs(table1: dict[str, list]) -> list:
    """The run configs whose saved test features Fig. 3 and its silhouette claim read: Table 1's
    RE-Net and ResNet-18 rows (``table1``: :func:`renet_core.study.configs.spec_configs`), every fold."""
    return [cfg for key in FEATURE_ROWS for cfg in table1.get(key, [])]


def feature_configs(profile: str, store_dir=None, root: str | None = None, folds=None) -> list:
    """:func:`feature_runs` under ``profile`` (its folds unless ``folds``; BP4D at ``root``)."""
    return feature_runs(spec_configs(TABLES[FEATURE_TABLE], profile, root, folds, store_dir))


def convergence_marks(runs_by_claim: dict[str, list], profile: str, budgets_path=None) -> dict[str, tuple[bool, str]]:
    """``{claim: (converged?, why not)}`` (:func:`renet_core.study.convergence.claim_convergence`):
    each run's one-AU steps against the budget recorded for its variant and data under the
    profile whose budgets judge ``profile`` (:func:`renet_core.study.budgets.budgets_profile`:
    the preview's are the demo's) (:func:`renet_core.study.budgets.recorded_budgets`). A
    preview's claims are never converged (:func:`renet_core.study.preview.preview_mark`)."""
    recorded, source = recorded_budgets(budgets_path), budgets_profile(profile)
    out = {}
    for claim, cfgs in runs_by_claim.items():
        runs = [{"dataset": c.dataset, "task": c.task, "variant": c.method_name(), "steps": au_steps(c)} for c in cfgs]
        budgets = {(c.dataset, c.task, c.method_name()): recorded.get((source, c.data, c.dataset, c.task,
                                                                       c.method_name())) for c in cfgs}
        out[claim] = preview_mark(profile, claim_convergence(runs, {k: v for k, v in budgets.items() if v is not None}))
    return out


def validation_gap(configs: dict[str, list], store: ResultsStore) -> float | None:
    """RE-Net's best validation score minus ResNet-18's (F1 or ICC, as early stopping scores it),
    mean over the folds where both runs are finished: whether the budget brought RE-Net to
    parity (within :data:`PARITY_TOLERANCE`) on the runs of this very table. Validation only,
    never test. None when the table has no such pair or no finished fold."""
    if "renet" not in configs or "resnet18" not in configs:
        return None
    gaps = []
    for renet, resnet in zip(configs["renet"], configs["resnet18"]):
        best = [best_validation(store, c) for c in (renet, resnet)]
        if None not in best:
            gaps.append(best[0] - best[1])
    return float(np.mean(gaps)) if gaps else None


def validation_history(store: ResultsStore, cfg) -> list[tuple[int, float]]:
    """``[(epoch, validation score), ...]`` of a finished run's history (F1 or ICC, as early
    stopping scores it), in order, epochs without a finite score left out; [] when the run is not
    finished."""
    key = cfg.config_hash()
    if not store.is_done(key):
        return []
    return [(int(e["epoch"]), float(e["val"])) for e in store.done_summary(key).get("history", [])
            if e.get("val") is not None and math.isfinite(float(e["val"]))]


def best_validation(store: ResultsStore, cfg) -> float | None:
    """The best validation score in a finished run's history (:func:`validation_history`); None
    when the run is not finished or never validated."""
    scores = [score for _, score in validation_history(store, cfg)]
    return max(scores) if scores else None
