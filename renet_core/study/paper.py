"""The paper's reported numbers (Yang & Yin, ACCV 2020, Tables 1-8 and section 4.7), transcribed once.

The numbers live in ``renet_core/resources/paper_tables.csv``, one tidy row per printed cell:

=========  =================================================================================
table      "1" ... "8" (Tables 1-8) or "4.7" (the speed claim of section 4.7)
dataset    "bp4d" | "disfa" | "bp4dplus"
task       "occurrence" | "intensity"
metric     "F1" (percent, Tables 1-3, 6-8), "ICC" (ICC(3,1)), "MAE" (Tables 4-5),
           "ms_per_image" / "FPS" (section 4.7)
method     the row label as printed ("Ours", "ResNet18", "LSVM", "Ours (row 1)", ...)
ref        the reference number printed after the method, if any
au         "AU1", "AU2", ... or "Avg" (the paper's "Avg", "Avg." or, in Table 8, "Total")
value      the number as printed (typos such as "42.3." are recorded as 42.3 with a note)
marker     "second best" for bracketed cells, "best" where bold survived in the text source
note       where the source text is incomplete or ambiguous (Tables 6 and 8), typos, and where
           the paper's Avg differs from the mean of its own AU columns
=========  =================================================================================

Nothing at run time reads the paper itself; this file is the project's copy.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

TABLES = ("1", "2", "3", "4", "5", "6", "7", "8", "4.7")
COLUMNS = ["table", "dataset", "task", "metric", "method", "ref", "au", "value", "marker", "note"]


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    path = resources.files("renet_core") / "resources" / "paper_tables.csv"
    with resources.as_file(path) as p:
        frame = pd.read_csv(p, dtype={"table": str, "ref": str}, keep_default_na=False,
                            na_values={"value": [""]})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: expected columns {COLUMNS}, missing {missing}")
    frame["value"] = frame["value"].astype(float)
    return frame[COLUMNS]


def all_paper_values() -> pd.DataFrame:
    """Every transcribed cell of the paper (a copy)."""
    return _load().copy()


def paper_values(table, method: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """The transcribed cells of one table (``1``-``8``, ``"4.7"``), optionally of one method
    (as printed, e.g. ``"Ours"``) and one metric (``"F1"``, ``"ICC"``, ``"MAE"``).

    Raises ``ValueError`` for an unknown table, or a method/metric the table does not have.
    """
    key = str(table).replace("Table", "").strip()
    if key not in TABLES:
        raise ValueError(f"unknown paper table {table!r}; expected one of {list(TABLES)}")
    frame = _load()
    sel = frame[frame["table"] == key]
    if method is not None:
        if method not in set(sel["method"]):
            raise ValueError(f"Table {key} has no method {method!r}; it has {sorted(set(sel['method']))}")
        sel = sel[sel["method"] == method]
    if metric is not None:
        if metric not in set(sel["metric"]):
            raise ValueError(f"Table {key} has no metric {metric!r} for this selection; "
                             f"it has {sorted(set(sel['metric']))}")
        sel = sel[sel["metric"] == metric]
    return sel.reset_index(drop=True)


def paper_row(table, method: str, metric: str) -> pd.Series:
    """One printed row as a Series indexed by AU ("AU1", ..., "Avg"), in the paper's order."""
    sel = paper_values(table, method=method, metric=metric)
    return pd.Series(sel["value"].to_numpy(), index=sel["au"].to_numpy(), name=method)
