"""Where ``run_all`` keeps its machine records (issue 32, "a reader's view of the records").

A reader of ``results/notebooks/`` (in JupyterLab, on GitHub) looks for the executed notebooks
``<job>.ipynb``; the records written beside them for the machine -- each job's papermill log
``<job>.log``, its status ``<job>.status.json``, the outputs manifest its notebook writes
``<job>.outputs.json`` and the last full run's ``total.json`` -- go to one folder a reader can
skip, ``results/notebooks/records/``. Readers also find a record where an older run put it
(``results/notebooks/<file>``), so a results folder of the old layout still indexes.
"""

from __future__ import annotations

from pathlib import Path

#: The folder of the executed notebooks, under ``results/``.
NOTEBOOKS = "notebooks"
#: The folder of the machine records, under ``results/notebooks/``.
RECORDS = "records"
#: The record of the last full run (its wall time, profile, commit, store).
TOTAL = "total.json"


def notebooks_dir(results: Path) -> Path:
    """``results/notebooks``: the executed notebooks a reader opens."""
    return Path(results) / NOTEBOOKS


def records_dir(results: Path) -> Path:
    """``results/notebooks/records``: every machine record of ``run_all``."""
    return notebooks_dir(results) / RECORDS


def record_path(results: Path, filename: str) -> Path:
    """Where a writer puts the record ``filename`` (``<job>.log``, ``<job>.status.json``,
    ``<job>.outputs.json``, ``total.json``): always under :func:`records_dir`."""
    return records_dir(results) / filename


def find_record(results: Path, filename: str) -> Path:
    """Where a reader finds the record ``filename``: under :func:`records_dir`, else beside the
    executed notebooks where runs before issue 32 wrote it; the new place when neither exists
    (the caller's "missing")."""
    new = record_path(results, filename)
    if new.exists():
        return new
    old = notebooks_dir(results) / filename
    return old if old.exists() else new
