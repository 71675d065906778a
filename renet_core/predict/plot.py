"""Plots of a prediction table: AU time series per input (probability or intensity against
time), as py-feat and LibreFace show them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_au_series(table: pd.DataFrame, input: str | None = None, face_id: int = 0, aus=None, ax=None):
    """One line per AU: ``AUxx_p`` (occurrence probability) or ``AUxx_r`` (intensity) of one
    input (default: the first) and face against ``timestamp``; frames without a face are gaps.
    Returns the matplotlib Figure."""
    if table.empty:
        raise ValueError("the prediction table is empty: nothing to plot")
    name = input if input is not None else table["input"].iloc[0]
    rows = table[(table["input"] == name) | (table["input"].map(lambda p: str(p).startswith(str(name))))]
    rows = rows[(rows["face_id"] == face_id) | (rows["success"] == 0)].sort_values(["timestamp", "frame"])
    suffix = "_p" if any(c.endswith("_p") for c in table.columns) else "_r"
    columns = [c for c in table.columns if c.endswith(suffix)]
    if aus is not None:
        wanted = {f"AU{int(a):02d}{suffix}" for a in aus}
        columns = [c for c in columns if c in wanted]
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.5))
    else:
        fig = ax.figure
    times = rows["timestamp"].to_numpy(dtype=float)
    for column in columns:
        values = rows[column].to_numpy(dtype=float)
        ax.plot(times, np.where(rows["success"].to_numpy() == 1, values, np.nan), label=column[:-2], lw=1.2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability" if suffix == "_p" else "intensity (0-5)")
    ax.set_title(f"AU time series: {name}", fontsize=9)
    ax.legend(ncol=min(6, max(1, len(columns))), fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
