"""A tidy, crash-safe store of experiment results.

Layout under one results root (e.g. ``results/demo``)::

    results.csv                one row per (run identity, au, metric)
    runs/<config_hash>/        one folder per run (a config and its fold)
        config.json            the full config that produced it
        last.pt, best.pt       checkpoints (resume; the selected model)
        predictions.npz        test-set labels, scores and predictions (tables and t-SNE are
                               rebuilt from these without retraining)
        done.json              written last: the run is finished and is skipped next time

Every file is written atomically (``renet_core.base.io``). Rows are keyed by the run identity
(``config_hash``, which covers the data and every setting that changes numbers) and the AU and
metric: re-running a run replaces its rows, and two configs never overwrite each other's rows,
whatever their method label. Tables select rows by the configs they ask for
(``renet_core.study``), never by label.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import atomic_path, locked, to_csv_atomic, write_text_atomic
from renet_core.base.metrics import fold_mean

KEY_COLUMNS = ["config_hash", "au", "metric"]
COLUMNS = ["dataset", "task", "method", "fold", "au", "metric", "seed", "value", "config_hash",
           "package_version", "data_source", "synthetic", "profile", "n_test", "epochs_trained"]


class ResultsStore:
    """Results, predictions and checkpoints of many runs under one ``root`` folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.csv = self.root / "results.csv"

    # -- per-run folders ------------------------------------------------------------------
    def run_dir(self, config_hash: str) -> Path:
        return self.root / "runs" / config_hash

    def is_done(self, config_hash: str) -> bool:
        return (self.run_dir(config_hash) / "done.json").exists()

    def mark_done(self, config_hash: str, summary: dict) -> None:
        write_text_atomic(self.run_dir(config_hash) / "done.json", json.dumps(summary, indent=2, default=str))

    def done_summary(self, config_hash: str) -> dict:
        return json.loads((self.run_dir(config_hash) / "done.json").read_text())

    def save_config(self, config_hash: str, config: dict) -> None:
        write_text_atomic(self.run_dir(config_hash) / "config.json", json.dumps(config, indent=2, default=str))

    # -- predictions ----------------------------------------------------------------------
    def save_predictions(self, config_hash: str, **arrays) -> Path:
        """Save test-set arrays (labels with NaN, scores, predictions, ids, features) as .npz."""
        target = self.run_dir(config_hash) / "predictions.npz"
        with atomic_path(target, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        return target

    def load_predictions(self, config_hash: str) -> dict:
        """The run's saved test arrays; a missing or damaged file is an error naming it."""
        path = self.run_dir(config_hash) / "predictions.npz"
        if not path.exists():
            raise FileNotFoundError(f"no saved predictions for run {config_hash}: {path} is missing")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception as exc:   # BadZipFile, EOFError, ValueError, zlib.error ...
            raise ValueError(f"{path}: the saved predictions of run {config_hash} are damaged ({type(exc).__name__}: "
                             f"{exc}); re-evaluate the run from its best.pt (renet_core.engine.evaluate, or "
                             "python -m renet_core evaluate with its config) to write them again") from None

    # -- the tidy table -------------------------------------------------------------------
    def load(self) -> pd.DataFrame:
        """All result rows (an empty frame with the right columns if there are none). A last line
        cut short (a copy or a disk that failed mid-write) and rows without their key are left
        out, with a warning: the runs they belonged to are rebuilt from their saved predictions
        when asked for (:func:`renet_core.engine.execute.finished`)."""
        if not self.csv.exists():
            return pd.DataFrame(columns=COLUMNS)
        text = self.csv.read_text(errors="replace")
        problems = []
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
            problems.append("its last line is cut short")
        if not text.strip():
            return pd.DataFrame(columns=COLUMNS)
        try:
            rows = pd.read_csv(io.StringIO(text), dtype={"config_hash": str})
        except Exception as exc:  # pragma: no cover - a hand-edited or foreign file
            raise ValueError(f"{self.csv} is not a readable results CSV ({exc}); expected columns {COLUMNS}") from exc
        keyless = rows[[c for c in KEY_COLUMNS if c in rows]].isna().any(axis=1)
        if keyless.any():
            problems.append(f"{int(keyless.sum())} row(s) lack their run, AU or metric")
            rows = rows[~keyless].reset_index(drop=True)
        if problems:
            warnings.warn(f"{self.csv}: {'; '.join(problems)}: left out (the runs they belong to are rebuilt from "
                          "their saved predictions when a table asks for them)", stacklevel=2)
        return rows

    def done_rows(self) -> pd.DataFrame:
        """The rows of finished runs only (:meth:`load` less every row whose run has no
        ``done.json``): what tables, the scoreboard and the results index may show. A run whose
        folder was deleted, or that a ``force`` retrain has reopened (running, killed or failed),
        keeps its old rows in results.csv until it is done again, but they are not served."""
        rows = self.load()
        if rows.empty:
            return rows
        keys = rows["config_hash"].astype(str)
        done = {key: self.is_done(key) for key in keys.unique()}
        return rows[keys.map(done).astype(bool)].reset_index(drop=True)

    def add_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Merge ``rows`` into results.csv atomically; a row with an existing key replaces it."""
        missing = [c for c in KEY_COLUMNS + ["value"] if c not in rows.columns]
        if missing:
            raise ValueError(f"result rows lack columns {missing}")
        with locked(self.root / ".results.lock"):
            old = self.load()
            merged = pd.concat([old, rows], ignore_index=True) if len(old) else rows.copy()
            key = merged[KEY_COLUMNS].astype(str).agg("|".join, axis=1)
            merged = merged[~key.duplicated(keep="last")].reset_index(drop=True)
            cols = [c for c in COLUMNS if c in merged.columns] + [c for c in merged.columns if c not in COLUMNS]
            to_csv_atomic(merged[cols], self.csv)
        return merged


def per_fold_means(rows: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """The per-fold "Avg" (:func:`renet_core.metrics.fold_mean`, the mean over AUs) of each
    (``by``, metric, fold)."""
    group = [by, "metric", "fold"]
    return rows.groupby(group, as_index=False)["value"].agg(fold_mean)


def summary_table(rows: pd.DataFrame, metric: str, by: str = "method") -> pd.DataFrame:
    """A paper-style table for one metric: one row per ``by`` value (method label, or a study's
    row), a column per AU (mean over folds), "Avg" -- the papers' average
    (:func:`renet_core.metrics.paper_average`: per fold the mean over AUs, then the mean over
    folds) -- the sample standard deviation of the per-fold averages "Avg sd" (NaN for one
    fold) and the number of "folds".
    ``rows`` should hold one dataset and task.
    """
    sel = rows[rows["metric"] == metric]
    if sel.empty:
        return pd.DataFrame()
    per_au = sel.groupby([by, "au"])["value"].mean().unstack("au")
    per_au.columns = [f"AU{int(c)}" for c in per_au.columns]
    fold_avg = per_fold_means(sel, by).groupby(by)["value"]
    per_au["Avg"] = fold_avg.mean()
    per_au["Avg sd"] = fold_avg.std(ddof=1)
    per_au["folds"] = sel.groupby(by)["fold"].nunique()
    return per_au


def is_synthetic(rows: pd.DataFrame) -> bool:
    """Whether any of the result rows came from synthetic data (the ``synthetic`` column, or a
    source that names SynthAU)."""
    if rows.empty:
        return False
    if "synthetic" in rows:
        flags = rows["synthetic"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
        if flags.any():
            return True
    return bool("data_source" in rows and rows["data_source"].astype(str).str.contains("synth", case=False).any())
