"""Paper tables rebuilt from this run's results, beside the paper's own numbers.

For each table of the paper (Tables 1-8; what each compares is declared in
``renet_core.study.tables.TABLES``) :func:`build_table` turns the engine's tidy result rows
(``renet_core.engine.store``: columns ``dataset, task, method, fold, au, metric, value, data_source,
synthetic, ...``, plus ``entry``, the table row they were selected for by run identity) into one
DataFrame with a column per AU as in the paper plus ``Avg`` (± its spread over folds), and for
every re-run method three rows:

* ``paper``: the value the paper reports (``renet_core.study.paper``; empty where the paper gives none
  or where its text is illegible, e.g. most of Table 8),
* ``this run``: this run's value (F1 in percent like the paper; ICC(3,1) and MAE as numbers),
* ``difference``: this run minus the paper,

and a ``data source`` column in words ("SynthAU demo (synthetic), cpu, 3 folds"); before them the
paper's other compared methods as printed, after them chance rows (always-positive, label
prior) from the test labels. The AU columns
are per-AU means over folds; ``Avg`` is the mean over folds of each fold's mean over AUs
(:func:`renet_core.engine.store.summary_table`, as ``renet_core.base.metrics.paper_average``).

:func:`write_table` writes ``<out>/<name>.csv`` and a rendered ``<out>/<name>.md`` atomically.
A table built on synthetic data opens with a sentence saying it is NOT a reproduction of the
paper's numbers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine.store import is_synthetic, summary_table
from renet_core.study.paper import paper_values
from renet_core.study.tables import CHANCE_ROWS, TABLES, TableSpec

#: Engine metric names -> the paper's, and the factor from the engine's scale to the paper's.
METRICS = {"f1": ("F1", 100.0), "icc": ("ICC", 1.0), "mae": ("MAE", 1.0)}
ROW_KINDS = ("paper", "this run", "difference")

SYNTHETIC_WARNING = (
    "**These numbers come from SynthAU, a synthetic stand-in dataset, and are NOT a reproduction "
    "of the paper's numbers.** They show that the pipeline runs end to end; the paper's rows are "
    "printed beside them only for orientation. Run the `paper` profile on the real datasets to "
    "reproduce the paper."
)


def _spec(name_or_spec) -> TableSpec:
    """A :class:`renet_core.study.tables.TableSpec` from itself or its name."""
    if isinstance(name_or_spec, str):
        if name_or_spec not in TABLES:
            raise ValueError(f"unknown table {name_or_spec!r}; expected one of {sorted(TABLES)}")
        return TABLES[name_or_spec]
    return name_or_spec


# ----------------------------------------------------------------------------------- building

def _paper_row(spec, paper_label: str | None, metric: str) -> tuple[pd.Series, list[str]]:
    """The paper's printed values of row ``paper_label`` (indexed "AU1".."Avg") and its notes."""
    if paper_label is None:
        return pd.Series(dtype=float), []
    sel = paper_values(spec.paper_table)
    sel = sel[(sel["method"] == paper_label) & (sel["metric"] == METRICS[metric][0])]
    fragments = [part.strip() for note in sel["note"] for part in str(note).split("; ")]
    notes = [n for n in dict.fromkeys(fragments) if n]
    return pd.Series(sel["value"].to_numpy(), index=sel["au"].to_numpy()), notes


def paper_only_methods(spec) -> list[str]:
    """The paper's compared methods of this table that are not re-run here, in the paper's
    order (rows whose label the text source lost, e.g. "(unlabelled row)", are left out)."""
    if not spec.paper_only:
        return []
    used = {r.paper for r in spec.rows}
    names = paper_values(spec.paper_table)["method"].drop_duplicates()
    return [m for m in names if m not in used and not m.startswith("(")]


def _run_values(rows: pd.DataFrame, entry: str, metric: str, aus=None) -> tuple[pd.Series, pd.DataFrame, str]:
    """This run's per-AU fold means, paper-style Avg and its spread over folds ("Avg sd"), in the
    paper's units, for the table row ``entry``, and a remark. When a fold lacks some of ``aus``
    (the table's AUs: a row lost from a damaged store), Avg and its spread are left empty and the
    remark says which: an Avg over fewer AUs is never shown as the table's Avg."""
    sel = rows[(rows["entry"] == entry) & (rows["metric"] == metric)]
    if sel.empty:
        return pd.Series(dtype=float), sel, ""
    table = summary_table(sel, metric, by="entry")
    values = table.loc[entry].drop(labels=["folds"], errors="ignore").astype(float)
    remark = ""
    if aus:
        have = sel.groupby("fold")["au"].agg(lambda a: {int(x) for x in a})
        short = {int(f): sorted(set(int(a) for a in aus) - got) for f, got in have.items()
                 if set(int(a) for a in aus) - got}
        if short:
            values[["Avg", "Avg sd"]] = np.nan
            remark = "Avg not shown: " + "; ".join(
                f"fold {f} lacks {', '.join(f'AU{a}' for a in lost)}" for f, lost in sorted(short.items())) + \
                f" (an Avg over fewer than the table's {len(aus)} AUs)"
    return values * METRICS[metric][1], sel, remark


def describe_data(sel: pd.DataFrame, device: str | None = None) -> str:
    """The data source in words: "SynthAU demo (synthetic), cpu, 3 folds"; with the runs'
    environment keys when ``sel`` has a column ``environment`` ("..., cpu, env-1a2b3c4d5e, 3 folds";
    "2 environments (mixed): ..." when its runs were made in several, issue 32)."""
    if sel.empty:
        return "not run"
    sources = sorted(set(sel["data_source"].astype(str))) if "data_source" in sel else ["unknown data"]
    words = [" + ".join(sources)]
    if device:
        words.append(str(device))
    envs = sorted(set(sel["environment"].dropna().astype(str))) if "environment" in sel else []
    if envs:
        words.append(envs[0] if len(envs) == 1 else f"{len(envs)} environments (mixed): {', '.join(envs)}")
    folds = sel["fold"].nunique()
    words.append(f"{folds} fold{'s' if folds != 1 else ''}")
    seeds = sel["seed"].nunique() if "seed" in sel else 1
    if seeds > 1:
        words.append(f"{seeds} seeds")
    return ", ".join(words)


def build_table(rows: pd.DataFrame, spec, device: str | None = None) -> pd.DataFrame:
    """A paper table (a :class:`renet_core.study.tables.TableSpec` or its name, e.g. "table1") from
    tidy result rows that carry the table row they belong to in a column ``entry`` (the spec's
    row keys; ``renet_core.study.configs.select_rows`` finds them by run identity).

    Returns a DataFrame with columns ``entry, method, paper method, metric, row, AU..., Avg,
    Avg sd, data source, remark``: first the paper's other compared methods (one ``paper`` row
    each, as printed), then three rows (``paper``, ``this run``, ``difference``) per re-run
    method and metric, then the chance rows when ``rows`` hold them (``always-positive``,
    ``label-prior``: one ``this run`` row each). ``df.attrs`` holds ``synthetic``, ``title``,
    ``notes`` (the paper's notes on the cells used), ``remarks`` and ``heldout``.
    """
    spec = _spec(spec)
    missing = [c for c in ("entry", "fold", "au", "metric", "value") if c not in rows.columns]
    if missing:
        raise ValueError(f"result rows lack columns {missing}; expected the tidy rows of renet_core.engine.store "
                         "with the table row in 'entry' (renet_core.study.configs.select_rows)")
    columns = [f"AU{a}" for a in spec.aus] + ["Avg", "Avg sd"]
    records, notes, used = [], [], []

    def add(entry, label, paper_label, metric, kinds, values, source, remark=""):
        for kind, vals in zip(kinds, values):
            record = {"entry": entry, "method": label, "paper method": paper_label or "",
                      "metric": METRICS[metric][0], "row": kind, **vals.reindex(columns).astype(float).to_dict()}
            record["data source"] = source[kind]
            record["remark"] = remark if kind == kinds[0] else ""
            records.append(record)

    for method in paper_only_methods(spec):
        for metric in spec.metrics:
            paper, paper_notes = _paper_row(spec, method, metric)
            if paper.empty:
                continue
            notes.extend(paper_notes)
            add(f"paper:{method}", method, method, metric, ("paper",), (paper,),
                {"paper": "the paper (real data); not re-run here"})
    for r in spec.rows:
        for metric in spec.metrics:
            paper, paper_notes = _paper_row(spec, r.paper, metric)
            run, sel, incomplete = _run_values(rows, r.key, metric, spec.aus)
            notes.extend(paper_notes)
            used.append(sel)
            paper, run = paper.reindex(columns).astype(float), run.reindex(columns).astype(float)
            source = {"paper": "the paper (real data)" if r.paper else "not in the paper",
                      "this run": describe_data(sel, device) + (f"; {incomplete}" if incomplete else ""),
                      "difference": "this run - paper"}
            add(r.key, r.label, r.paper, metric, ROW_KINDS, (paper, run, (run - paper).drop("Avg sd")),
                source, r.remark)
    for r in CHANCE_ROWS:
        run, sel, _ = _run_values(rows, r.key, "f1")
        if not sel.empty:
            add(r.key, r.label, None, "f1", ("this run",), (run,),
                {"this run": describe_data(sel)}, r.remark)
    table = pd.DataFrame.from_records(records, columns=["entry", "method", "paper method", "metric", "row",
                                                        *columns, "data source", "remark"])
    used_rows = pd.concat(used, ignore_index=True) if used else rows.iloc[:0]
    table.attrs.update(name=spec.name, title=spec.title, synthetic=is_synthetic(used_rows),
                       notes=list(dict.fromkeys(notes)), remarks=list(spec.remarks),
                       heldout=_heldout_note(used_rows))
    return table


def _heldout_note(rows: pd.DataFrame) -> str:
    if rows.empty or "heldout" not in rows:
        return ""
    held = rows[rows["heldout"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))]
    pairs = sorted({(m, int(a)) for m, a in zip(held["entry"], held["au"])})
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
    body, previous = [], None
    for _, r in table.iterrows():
        signed = r["row"] == "difference"
        cells = [_fmt(r[c], r["metric"], signed) for c in au_cols]
        spread = r.get("Avg sd")
        if "Avg" in au_cols and cells[-1] and spread is not None and not pd.isna(spread):
            cells[-1] += f" ± {_fmt(spread * 1.0, r['metric'], False)}"
        first = (r.get("entry", r["method"]), r["metric"]) != previous
        previous = (r.get("entry", r["method"]), r["metric"])
        body.append([r["method"] if first else "", r["metric"], r["row"], *cells,
                     r["data source"] + (f" ({r['remark']})" if r["remark"] else "")])
    parts += [markdown_grid(header, body), ""]
    parts += ["AU columns: mean over folds. Avg: per fold the mean over AUs, then the mean over folds "
              "(as the compared methods' code does), ± the standard deviation of the per-fold averages "
              "when there are several folds; the paper's Avg is as printed. Difference: this run minus "
              "the paper. Chance rows come from the test labels of this run's folds. Rows with only a "
              "'paper' line are the paper's compared methods, not re-run here. Empty cells: no value.", ""]
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


def report_table(rows: pd.DataFrame, spec, out_dir: str | os.PathLike = "results",
                 device: str | None = None, provenance: str | None = None) -> pd.DataFrame:
    """:func:`build_table` then :func:`write_table`; returns the table."""
    table = build_table(rows, spec, device=device)
    write_table(table, out_dir, table.attrs["name"], provenance)
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
    notice = [str(table.attrs["notice"]), ""] if table.attrs.get("notice") else []   # a preview's line
    return "\n".join([
        "# Section 4.7: inference time for 12 AUs", "", *notice,
        "Measured on this machine with random input images (timing does not depend on the data). The paper "
        "reports about 5.4 ms/image (183 FPS) for RE-Net run once per AU on an NVIDIA GeForce 2080Ti GPU; "
        "a different machine gives different absolute numbers, so compare the ratios between variants.", "",
        markdown_grid(header, body), ""])


def write_efficiency(table: pd.DataFrame, out_dir: str | os.PathLike = "results") -> tuple[Path, Path]:
    out = Path(out_dir)
    return (to_csv_atomic(table, out / "efficiency.csv", float_format="%.4f"),
            write_text_atomic(out / "efficiency.md", render_efficiency(table)))
