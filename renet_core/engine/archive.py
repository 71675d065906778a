"""Run records that outlive a machine: finished runs exported from a store to a folder that git
keeps, and imported into another store (issue 33's long computation spans sittings whose machines
do not share a cache).

A run's *record* is everything a table, the scoreboard or a convergence curve reads of it, and
nothing it trains from::

    <archive>/<config_hash>/
        config.json        the full config (its identity is checked on import)
        environment.json   where it computed (processor, libraries, threads)
        predictions.npz    test-set labels and scores (tables are rebuilt from these); Fig. 3's
                           features only for the runs ``features`` names (RE-Net's are ~3 MB a
                           run, the rest of a record ~0.1 MB; the command line keeps those of
                           Fig. 3's own runs, Table 1's, by default)
        rows.csv           its rows of the store's results.csv
        done.json          written last: history, steps, seconds, test summary

Checkpoints (``last.pt``, ``best.pt``: tens of MB each) stay behind, so an imported run can be
read but not re-evaluated or fine-tuned; a run that needs its weights is trained again under a
``--force``. Only finished runs travel: a run cut mid-training resumes from its checkpoints on
the machine that holds them, or starts again elsewhere.

    python -m renet_core archive export --profile demo --archive results/archive/demo
    python -m renet_core archive import --profile demo --archive results/archive/demo
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from renet_core.base.io import atomic_path, to_csv_atomic, write_bytes_atomic
from renet_core.engine.config import ExperimentConfig
from renet_core.engine.store import ResultsStore

#: A record's files besides its rows, in the order they are copied; ``done.json`` goes last.
FILES = ("config.json", "environment.json", "predictions.npz")
DONE = "done.json"
ROWS = "rows.csv"
#: What stays behind, and is removed where a record arrives over an unfinished attempt.
CHECKPOINTS = ("last.pt", "best.pt", "part.pt")


#: Config fields that name folders of the machine that ran it (not in the identity): left empty.
LOCAL_FIELDS = ("results_dir", "cache_dir")
#: The arrays of predictions.npz that only Fig. 3 (t-SNE) reads.
FEATURES = ("features", "features_index")


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target, suffix=source.suffix) as tmp:
        shutil.copyfile(source, tmp)


def _copy_predictions(source: Path, target: Path, features: bool) -> None:
    """predictions.npz, without Fig. 3's features unless ``features``."""
    with np.load(source, allow_pickle=False) as saved:
        if features or not any(k in saved.files for k in FEATURES):
            return _copy(source, target)
        arrays = {k: saved[k] for k in saved.files if k not in FEATURES}
    with atomic_path(target, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def has_features(predictions: Path) -> bool:
    """Whether a saved ``predictions.npz`` holds Fig. 3's features (False: none, or no file)."""
    if not predictions.exists():
        return False
    with np.load(predictions, allow_pickle=False) as saved:
        return "features" in saved.files


def featureless(store: ResultsStore, key: str) -> bool:
    """Whether the finished run ``key`` lacks the test features its config asked for
    (``save_features`` > 0): a record imported without them (:func:`export_runs`). Such a run
    serves its tables, but not Fig. 3; it is trained again to give them (``./run_all.sh`` does so
    before Table 1 reads it: :func:`renet_core.runall.plan.reopen_featureless`)."""
    run_dir = store.run_dir(key)
    if not store.is_done(key) or not (run_dir / "predictions.npz").exists():
        return False
    try:
        wanted = int(json.loads((run_dir / "config.json").read_text()).get("save_features") or 0)
    except (OSError, ValueError):
        return False
    return wanted > 0 and not has_features(run_dir / "predictions.npz")


def finished_runs(store: ResultsStore) -> list[str]:
    """The identities of the store's finished runs (a ``done.json`` in their folder), sorted."""
    runs = store.root / "runs"
    return sorted(p.parent.name for p in runs.glob(f"*/{DONE}")) if runs.is_dir() else []


def export_runs(store: ResultsStore, archive: str | os.PathLike, keys=None, features: bool | Iterable[str] = False
                ) -> list[str]:
    """Copy the records of ``keys`` (default: every finished run of ``store``) into ``archive``,
    Fig. 3's features left behind except for the runs ``features`` names (an iterable of
    identities, or True for all); a record already there with the same ``done.json`` is left as
    it is, unless it lacks the features it should now carry. Returns the identities written. A key
    that is not a finished run of the store is an error naming it."""
    archive = Path(archive)
    keep = (lambda key: True) if features is True else (lambda key, named=frozenset(features or ()): key in named)
    done = finished_runs(store)
    keys = done if keys is None else list(keys)
    missing = sorted(set(keys) - set(done))
    if missing:
        raise ValueError(f"{store.root}: no finished run {missing}; expected identities of runs with a {DONE}")
    rows = store.load()
    written = []
    for key in keys:
        source, target = store.run_dir(key), archive / key
        summary = (source / DONE).read_bytes()
        same = (target / DONE).exists() and (target / DONE).read_bytes() == summary
        lacks = keep(key) and has_features(source / "predictions.npz") and not has_features(target / "predictions.npz")
        if same and not lacks:
            continue
        (target / DONE).unlink(missing_ok=True)   # a record being replaced is unfinished meanwhile
        for name in FILES:
            if name == "config.json":
                values = json.loads((source / name).read_text())
                values.update(dict.fromkeys(LOCAL_FIELDS))
                write_bytes_atomic(target / name, json.dumps(values, indent=2, default=str).encode())
            elif name == "predictions.npz" and (source / name).exists():
                _copy_predictions(source / name, target / name, keep(key))
            elif (source / name).exists():
                _copy(source / name, target / name)
        to_csv_atomic(rows[rows["config_hash"] == key], target / ROWS, index=False)
        write_bytes_atomic(target / DONE, summary)
        written.append(key)
    return written


def _check_identity(record: Path, store: ResultsStore) -> str | None:
    """Why the record's config does not make the identity it is filed under (None: it does)."""
    try:
        values = json.loads((record / "config.json").read_text())
        values.update(results_dir=str(store.root), cache_dir=None, progress=False)
        made = ExperimentConfig.from_dict(values).config_hash()
    except (OSError, ValueError, TypeError) as exc:
        return f"its config.json cannot be read here ({exc})"
    return None if made == record.name else f"its config.json makes run {made}, not {record.name}"


def import_runs(archive: str | os.PathLike, store: ResultsStore) -> tuple[list[str], dict[str, str]]:
    """Copy every finished record of ``archive`` that ``store`` has not finished into it: files,
    then rows, then ``done.json`` last, so an import cut short leaves runs unfinished, never half
    served. A record whose config does not make its identity, or that lacks a file the tables
    read, is left out with a warning. Returns ``(imported identities, {left out: why})``."""
    archive = Path(archive)
    if not archive.is_dir():
        raise FileNotFoundError(f"{archive}: no run archive here; expected a folder of <config_hash>/ records "
                                f"written by 'python -m renet_core archive export'")
    imported, skipped = [], {}
    for record in sorted(p.parent for p in archive.glob(f"*/{DONE}")):
        key = record.name
        if store.is_done(key):
            continue
        lacking = [n for n in ("config.json", "predictions.npz", ROWS) if not (record / n).exists()]
        why = f"it lacks {lacking}" if lacking else _check_identity(record, store)
        if why:
            skipped[key] = why
            warnings.warn(f"{record}: not imported: {why}")
            continue
        for name in CHECKPOINTS:   # an unfinished attempt's weights are not this record's
            (store.run_dir(key) / name).unlink(missing_ok=True)
        for name in FILES:
            if (record / name).exists():
                _copy(record / name, store.run_dir(key) / name)
        store.add_rows(pd.read_csv(record / ROWS, dtype={"config_hash": str}))
        _copy(record / DONE, store.run_dir(key) / DONE)
        imported.append(key)
    return imported, skipped
