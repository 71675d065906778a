"""Paper tables rebuilt from this run's results, beside the paper's own numbers.

For each table of the paper (Tables 1-8) :func:`build_table` turns the engine's tidy result rows
(``renet_core.results``: columns ``dataset, task, method, fold, au, metric, value, data_source,
synthetic, ...``) into one DataFrame with a column per AU as in the paper plus ``Avg``, and for
every compared method three rows:

* ``paper``: the value the paper reports (``renet_core.paper``; empty where the paper gives none
  or where its text is illegible, e.g. most of Table 8),
* ``this run``: this run's value (F1 in percent like the paper; ICC(3,1) and MAE as numbers),
* ``difference``: this run minus the paper,

and a ``data source`` column in words ("SynthAU demo (synthetic), cpu, 3 folds"). The AU columns
are per-AU means over folds; ``Avg`` is the mean over folds of each fold's mean over AUs
(:func:`renet_core.results.summary_table`, as ``renet_core.metrics.paper_average``).

:func:`write_table` writes ``<out>/<name>.csv`` and a rendered ``<out>/<name>.md`` atomically.
A table built on synthetic data opens with a sentence saying it is NOT a reproduction of the
paper's numbers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import to_csv_atomic, write_text_atomic
from .paper import PAPER_AUS as AUS  # the AU columns of each table's dataset and task
from .paper import paper_values

#: Engine metric names -> the paper's, and the factor from the engine's scale to the paper's.
METRICS = {"f1": ("F1", 100.0), "icc": ("ICC", 1.0), "mae": ("MAE", 1.0)}
ROW_KINDS = ("paper", "this run", "difference")

SYNTHETIC_WARNING = (
    "**These numbers come from SynthAU, a synthetic stand-in dataset, and are NOT a reproduction "
    "of the paper's numbers.** They show that the pipeline runs end to end; the paper's rows are "
    "printed beside them only for orientation. Run the `paper` profile on the real datasets to "
    "reproduce the paper."
)


@dataclass(frozen=True)
class Compared:
    """One compared method: its label here, the engine's method name, the paper's row label."""

    label: str
    method: str                       # engine method name (ExperimentConfig.method_name())
    paper: str | None = None          # the paper's row label, None where the paper has no row
    remark: str = ""


@dataclass(frozen=True)
class TableSpec:
    """What a paper table compares (section 4)."""

    name: str
    paper_table: str
    title: str
    dataset: str
    task: str
    compared: tuple[Compared, ...]
    metrics: tuple[str, ...] = ("f1",)
    remarks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def aus(self) -> list[int]:
        return AUS[(self.dataset, self.task)]


_DETECTION = (Compared("ResNet-18", "resnet18", "ResNet18"), Compared("RE-Net (ours)", "renet", "Ours"))

TABLE_SPECS: dict[str, TableSpec] = {
    "table1": TableSpec("table1", "1", "Table 1: AU detection F1 (%) on BP4D, 12 AUs", "bp4d", "occurrence", _DETECTION),
    "table2": TableSpec("table2", "2", "Table 2: AU detection F1 (%) on DISFA, 8 AUs", "disfa", "occurrence", _DETECTION),
    "table3": TableSpec("table3", "3", "Table 3: AU detection F1 (%) on BP4D+, 12 AUs", "bp4dplus", "occurrence", _DETECTION),
    "table4": TableSpec(
        "table4", "4", "Table 4: AU intensity ICC(3,1) and MAE on BP4D, 5 AUs", "bp4d", "intensity",
        (Compared("ResNet-18", "resnet18", None, "not in the paper's table"), Compared("RE-Net (ours)", "renet", "Ours")),
        metrics=("icc", "mae")),
    "table5": TableSpec(
        "table5", "5", "Table 5: AU intensity ICC(3,1) and MAE on DISFA, 12 AUs", "disfa", "intensity",
        (Compared("ResNet-18", "resnet18", None, "not in the paper's table"), Compared("RE-Net (ours)", "renet", "Ours")),
        metrics=("icc", "mae")),
    "table6": TableSpec(
        "table6", "6", "Table 6: RE-Net F1 (%) on BP4D with one AU removed from training (Eq. 4-5 transfer)",
        "bp4d", "occurrence",
        (Compared("RE-Net, AU23 unseen", "renet-unseenAU23", "Ours (row 1)",
                  "paper row 1; that AU23 is its removed AU is an assumption (see notes)"),
         Compared("RE-Net, AU24 unseen", "renet-unseenAU24", "Ours (row 2)",
                  "paper row 2; that AU24 is its removed AU is an assumption (see notes)"),
         Compared("RE-Net, all AUs trained", "renet", None, "reference: Table 1 setting")),
        remarks=("The paper marks the removed AU by colour, which the text source lost; row 1 is taken to "
                 "remove AU23 and row 2 AU24 (the lower of the two in each row).",)),
    "table7": TableSpec(
        "table7", "7", "Table 7: where the AU relation is applied, F1 (%) on BP4D", "bp4d", "occurrence",
        (Compared("ResNet-18 (no relation)", "resnet18", "ResNet18"),
         Compared("RE-Net, Eq. 3 only (AU-specific BN, no relation)", "renet-none", None,
                  "section 4.6 discusses it; no number printed"),
         Compared("RE-Net, fixed PCC relation", "renet", "Ours"),
         Compared("RE-Net, learnable relation", "renet-learnable", "Ours+learnable")),
        remarks=("The paper's Table 7 gives only the Avg column; the AU columns of this run are shown "
                 "for completeness.",)),
    "table8": TableSpec(
        "table8", "8", "Table 8: data augmentation (duplication of AU1, 2, 15, 23, 24) ablation, F1 (%) on BP4D",
        "bp4d", "occurrence",
        (Compared("ResNet-18 w/o DA", "resnet18", "ResNet18 w/o DA", "row empty in the paper's text source"),
         Compared("ResNet-18 + DA", "resnet18+DA", "ResNet18 + DA", "row empty in the paper's text source"),
         Compared("RE-Net w/o DA", "renet", "Ours w/o DA"),
         Compared("RE-Net + DA", "renet+DA", "Ours + DA", "row missing from the paper's text source")),
        remarks=("Only the paper's 'Ours w/o DA' row survives in the text source; the text says ResNet18 "
                 "gains 1.3 F1 with DA and RE-Net changes by 0.1.",)),
}


# ----------------------------------------------------------------------------------- building

def _paper_row(spec: TableSpec, compared: Compared, metric: str) -> tuple[pd.Series, list[str]]:
    """The paper's printed values (indexed "AU1".."Avg") and its notes; empty if none."""
    if compared.paper is None:
        return pd.Series(dtype=float), []
    sel = paper_values(spec.paper_table)
    sel = sel[(sel["method"] == compared.paper) & (sel["metric"] == METRICS[metric][0])]
    fragments = [part.strip() for note in sel["note"] for part in str(note).split("; ")]
    notes = [n for n in dict.fromkeys(fragments) if n]
    return pd.Series(sel["value"].to_numpy(), index=sel["au"].to_numpy()), notes


def _run_values(rows: pd.DataFrame, spec: TableSpec, compared: Compared, metric: str) -> tuple[pd.Series, pd.DataFrame]:
    """This run's per-AU fold means and paper-style Avg (scaled to the paper's units)."""
    from .results import summary_table

    sel = rows[(rows["dataset"] == spec.dataset) & (rows["task"] == spec.task)
               & (rows["method"] == compared.method) & (rows["metric"] == metric)]
    if sel.empty:
        return pd.Series(dtype=float), sel
    table = summary_table(sel, metric)
    values = table.loc[compared.method].drop(labels=["folds"], errors="ignore").astype(float)
    return values * METRICS[metric][1], sel


def describe_data(sel: pd.DataFrame, device: str | None = None) -> str:
    """The data source in words: "SynthAU demo (synthetic), cpu, 3 folds"."""
    if sel.empty:
        return "not run"
    sources = sorted(set(sel["data_source"].astype(str))) if "data_source" in sel else ["unknown data"]
    words = [" + ".join(sources)]
    if device:
        words.append(str(device))
    folds = sel["fold"].nunique()
    words.append(f"{folds} fold{'s' if folds != 1 else ''}")
    seeds = sel["seed"].nunique() if "seed" in sel else 1
    if seeds > 1:
        words.append(f"{seeds} seeds")
    return ", ".join(words)


def is_synthetic(rows: pd.DataFrame) -> bool:
    """Whether any of the rows came from synthetic data (the ``synthetic`` column, or a source
    that names SynthAU)."""
    if rows.empty:
        return False
    if "synthetic" in rows:
        flags = rows["synthetic"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
        if flags.any():
            return True
    return bool("data_source" in rows and rows["data_source"].astype(str).str.contains("synth", case=False).any())


def build_table(rows: pd.DataFrame, name: str, device: str | None = None) -> pd.DataFrame:
    """Table ``name`` ("table1".."table8") from the engine's result rows.

    Returns a DataFrame with columns ``method, paper method, metric, row, AU..., Avg, data
    source, remark`` and three rows (``paper``, ``this run``, ``difference``) per compared
    method and metric. ``df.attrs`` holds ``synthetic`` (bool), ``title``, ``notes`` (the
    paper's notes on the cells used) and ``remarks``.
    """
    if name not in TABLE_SPECS:
        raise ValueError(f"unknown table {name!r}; expected one of {sorted(TABLE_SPECS)}")
    missing = [c for c in ("dataset", "task", "method", "fold", "au", "metric", "value") if c not in rows.columns]
    if missing:
        raise ValueError(f"result rows lack columns {missing}; expected the tidy rows of renet_core.results")
    spec = TABLE_SPECS[name]
    columns = [f"AU{a}" for a in spec.aus] + ["Avg"]
    records, notes, used = [], [], []
    for compared in spec.compared:
        for metric in spec.metrics:
            paper, paper_notes = _paper_row(spec, compared, metric)
            run, sel = _run_values(rows, spec, compared, metric)
            notes.extend(paper_notes)
            used.append(sel)
            paper = paper.reindex(columns).astype(float)
            run = run.reindex(columns).astype(float)
            base = {"method": compared.label, "paper method": compared.paper or "",
                    "metric": METRICS[metric][0]}
            source = describe_data(sel, device)
            for kind, values in zip(ROW_KINDS, (paper, run, run - paper)):
                record = dict(base, row=kind, **values.to_dict())
                paper_source = "the paper (real data)" if compared.paper else "not in the paper"
                record["data source"] = {"paper": paper_source, "this run": source,
                                         "difference": "this run - paper"}[kind]
                record["remark"] = compared.remark if kind == "paper" else ""
                records.append(record)
    table = pd.DataFrame.from_records(records, columns=["method", "paper method", "metric", "row", *columns,
                                                        "data source", "remark"])
    used_rows = pd.concat(used, ignore_index=True) if used else rows.iloc[:0]
    table.attrs.update(name=name, title=spec.title, synthetic=is_synthetic(used_rows),
                       notes=list(dict.fromkeys(notes)), remarks=list(spec.remarks),
                       heldout=_heldout_note(used_rows))
    return table


def _heldout_note(rows: pd.DataFrame) -> str:
    if rows.empty or "heldout" not in rows:
        return ""
    held = rows[rows["heldout"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))]
    pairs = sorted({(m, int(a)) for m, a in zip(held["method"], held["au"])})
    return "; ".join(f"{m}: AU{a} never trained on" for m, a in pairs)


# ---------------------------------------------------------------------------------- rendering

def _fmt(value, metric: str, signed: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    digits = 1 if metric == "F1" else 2
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_grid(header: list[str], body: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (no third-party renderer needed)."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def render_markdown(table: pd.DataFrame, provenance: str | None = None) -> str:
    """The table as a markdown document: title, synthetic warning, comparison, notes."""
    attrs = table.attrs
    au_cols = [c for c in table.columns if c.startswith("AU") or c == "Avg"]
    parts = [f"# {attrs.get('title', attrs.get('name', 'table'))}", ""]
    if attrs.get("synthetic"):
        parts += [SYNTHETIC_WARNING, ""]
    if provenance:
        parts += [provenance, ""]
    header = ["method", "metric", "row", *au_cols, "data source"]
    body = []
    for _, r in table.iterrows():
        signed = r["row"] == "difference"
        body.append([r["method"] if r["row"] == "paper" else "", r["metric"], r["row"],
                     *[_fmt(r[c], r["metric"], signed) for c in au_cols],
                     r["data source"] + (f" ({r['remark']})" if r["remark"] else "")])
    parts += [markdown_grid(header, body), ""]
    parts += ["AU columns: mean over folds. Avg: per fold the mean over AUs, then the mean over folds "
              "(as the compared methods' code does); the paper's Avg is as printed. "
              "Difference: this run minus the paper. Empty cells: no value.", ""]
    extra = list(attrs.get("remarks", []))
    if attrs.get("heldout"):
        extra.append(f"Held out in this run: {attrs['heldout']}.")
    extra += [f"Paper transcription: {n}." for n in attrs.get("notes", [])]
    if extra:
        parts += ["Notes:", ""] + [f"- {n}" for n in extra] + [""]
    return "\n".join(parts)


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike = "results", name: str | None = None,
                provenance: str | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.csv`` and ``<out_dir>/<name>.md`` atomically; return both paths."""
    name = name or table.attrs.get("name")
    if not name:
        raise ValueError("write_table needs a name (none given and none in table.attrs)")
    out = Path(out_dir)
    frame = table.copy()
    frame.insert(0, "data", "synthetic" if table.attrs.get("synthetic") else "real")
    csv_path = to_csv_atomic(frame, out / f"{name}.csv", float_format="%.4f")
    md_path = write_text_atomic(out / f"{name}.md", render_markdown(table, provenance))
    return csv_path, md_path


def report_table(rows: pd.DataFrame, name: str, out_dir: str | os.PathLike = "results",
                 device: str | None = None, provenance: str | None = None) -> pd.DataFrame:
    """:func:`build_table` then :func:`write_table`; returns the table."""
    table = build_table(rows, name, device=device)
    write_table(table, out_dir, name, provenance)
    return table


# --------------------------------------------------------------------------------- efficiency

def efficiency_table(measured: pd.DataFrame, device: str) -> pd.DataFrame:
    """Section 4.7: ms/image for 12 AUs, the paper's figure (2080Ti GPU) beside this machine's.

    ``measured`` has columns ``variant`` (e.g. "RE-Net, loop of C passes (paper)"), ``batch`` and
    ``ms_per_image``. The paper reports 5.4 ms/image (183 FPS) for its loop over 12 AUs and no
    number for ResNet-18.
    """
    need = {"variant", "batch", "ms_per_image"}
    if not need <= set(measured.columns):
        raise ValueError(f"efficiency measurements need columns {sorted(need)}; got {list(measured.columns)}")
    paper = paper_values("4.7", metric="ms_per_image")["value"].iloc[0]
    out = measured.copy()
    out["FPS"] = 1000.0 / out["ms_per_image"]
    out["device"] = device
    out["paper ms/image (2080Ti)"] = np.where(out["variant"].str.contains("loop"), paper, np.nan)
    out.attrs.update(name="efficiency", title="Section 4.7: inference time for 12 AUs", synthetic=False)
    return out


def render_efficiency(table: pd.DataFrame) -> str:
    header = list(table.columns)
    body = [[f"{v:.2f}" if isinstance(v, float) and not math.isnan(v) else ("" if isinstance(v, float) else str(v))
             for v in row] for row in table.itertuples(index=False)]
    return "\n".join([
        "# Section 4.7: inference time for 12 AUs", "",
        "Measured on this machine with random input images (timing does not depend on the data). The paper "
        "reports about 5.4 ms/image (183 FPS) for RE-Net run once per AU on an NVIDIA GeForce 2080Ti GPU; "
        "a different machine gives different absolute numbers, so compare the ratios between variants.", "",
        markdown_grid(header, body), ""])


def write_efficiency(table: pd.DataFrame, out_dir: str | os.PathLike = "results") -> tuple[Path, Path]:
    out = Path(out_dir)
    return (to_csv_atomic(table, out / "efficiency.csv", float_format="%.4f"),
            write_text_atomic(out / "efficiency.md", render_efficiency(table)))
