"""Compare two result sets, as ``./run_all.sh`` writes them to ``results/`` (issue 32)::

    python -m renet_core compare COMMITTED_RESULTS RERUN_RESULTS

Reads each folder's ``<profile>_runs.csv`` (one row per run identity, AU and metric),
``claims.csv`` (the scoreboard), ``table*.csv`` (the paper tables) and
``<profile>_environments.csv`` (where each run computed, :mod:`renet_core.study.provenance`), and
reports in Markdown:

* the environments of both sides, and how many of the runs in both were made in the same one;
* the runs, matched by run identity (``config_hash``, never by label): how many are in both, how
  many give bit-identical values, the largest changes, and the runs found on one side only;
* per table, each row's Avg on both sides and its change (rerun - committed);
* per claim, the rerun's paired difference against the committed 95% interval: inside or not.

The first folder is the reference (the committed results), the second the rerun.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from renet_core.study.provenance import read_environments_csv, summarise_environments
from renet_core.study.report import markdown_grid

RUN_KEY = ["config_hash", "au", "metric"]
TABLE_COLUMNS = {"entry", "method", "metric", "row", "Avg"}
CLAIM_COLUMNS = {"claim", "difference", "ci_low", "ci_high", "verdict"}
WHAT = ("a results folder as ./run_all.sh writes it (results/: <profile>_runs.csv, claims.csv, table*.csv, "
        "<profile>_environments.csv)")
LISTED = 20   # runs on one side only: at most this many listed by name
CLAIM_REPORT = ["claim", "metric", "committed", "ci_low", "ci_high", "verdict_a", "rerun", "verdict_b", "inside",
                "status"]


@dataclass
class ResultSet:
    """One results folder, read."""

    folder: Path
    runs: dict[str, pd.DataFrame] = field(default_factory=dict)          # profile -> rows
    environments: dict[str, pd.DataFrame] = field(default_factory=dict)  # profile -> one row per run
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)        # name -> its "this run" rows
    claims: pd.DataFrame | None = None


def _read_csv(path: Path, need: set[str], what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"config_hash": str})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc}); expected {what}") from None
    missing = sorted(need - set(frame.columns))
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}; expected {what}")
    return frame


def load_results(folder: str | os.PathLike) -> ResultSet:
    """Read ``folder``; an error naming it (or the file) when it is not a results folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; expected {WHAT}")
    out = ResultSet(folder)
    for path in sorted(folder.glob("*_runs.csv")):
        profile = path.name[: -len("_runs.csv")]
        out.runs[profile] = _read_csv(path, set(RUN_KEY) | {"value"}, "the run rows run_all copies from the store")
        env = folder / f"{profile}_environments.csv"
        if env.is_file():
            out.environments[profile] = read_environments_csv(env)
    for path in sorted(folder.glob("table*.csv")):
        table = _read_csv(path, TABLE_COLUMNS, "a paper table (renet_core.study.report.write_table)")
        out.tables[path.stem] = table[table["row"] == "this run"]
    if (folder / "claims.csv").is_file():
        out.claims = _read_csv(folder / "claims.csv", CLAIM_COLUMNS, "the claims scoreboard")
    if not (out.runs or out.tables or out.claims is not None):
        raise ValueError(f"{folder} is not a results folder: it holds no <profile>_runs.csv, claims.csv or "
                         f"table*.csv; expected {WHAT}")
    return out


# ---------------------------------------------------------------------------------- comparing

def compare_runs(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Runs matched by run identity: ``{"both": n, "identical": n (every value equal), "changes":
    per (run, metric) the largest |change| of a value, "only_a"/"only_b": the runs of one side}``."""
    describe = ["config_hash"] + [c for c in ("dataset", "task", "method", "fold") if c in a and c in b]
    runs_a = a[describe].drop_duplicates("config_hash")
    runs_b = b[describe].drop_duplicates("config_hash")
    both = sorted(set(runs_a["config_hash"]) & set(runs_b["config_hash"]))
    merged = a[a["config_hash"].isin(both)].merge(b[b["config_hash"].isin(both)], on=RUN_KEY, how="outer",
                                                   suffixes=(" a", " b"))
    merged["change"] = merged["value b"] - merged["value a"]
    same = (merged["value a"] == merged["value b"]) | (merged["value a"].isna() & merged["value b"].isna())
    per_run = (~same).groupby(merged["config_hash"]).any()   # a value missing on one side differs too
    changes = (merged.assign(abs_change=merged["change"].abs())
               .sort_values("abs_change", ascending=False).drop_duplicates(["config_hash", "metric"]))
    changes = changes[changes["abs_change"] > 0]
    return {"both": len(both), "identical": int((~per_run).sum()), "changes": changes,
            "only_a": runs_a[~runs_a["config_hash"].isin(both)], "only_b": runs_b[~runs_b["config_hash"].isin(both)]}


def compare_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per table in both and per row of it ("this run"), the Avg on each side and its change."""
    out = []
    for name in sorted(set(a) & set(b)):
        merged = a[name].merge(b[name], on=["entry", "metric"], how="left", suffixes=(" a", " b"))
        extra = b[name].merge(a[name][["entry", "metric"]], on=["entry", "metric"], how="left", indicator=True)
        extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge")   # rows of the rerun only
        merged = pd.concat([merged, extra.rename(columns={c: f"{c} b" for c in ("method", "Avg")})],
                           ignore_index=True)   # in the committed table's order
        for _, r in merged.iterrows():
            label = r["method a"] if isinstance(r.get("method a"), str) else r.get("method b")
            out.append({"table": name, "method": label, "metric": r["metric"], "avg_a": r.get("Avg a"),
                        "avg_b": r.get("Avg b"), "change": r.get("Avg b") - r.get("Avg a")})
    return pd.DataFrame(out, columns=["table", "method", "metric", "avg_a", "avg_b", "change"])


def compare_claims(a: pd.DataFrame | None, b: pd.DataFrame | None) -> pd.DataFrame:
    """Per claim, the committed difference and 95% interval (``a``), the rerun's difference
    (``b``) and whether it lies inside that interval (``None``: no interval or no rerun value)."""
    if a is None or b is None:
        return pd.DataFrame(columns=CLAIM_REPORT)
    keep = ["claim", "difference", "ci_low", "ci_high", "verdict"] + (["metric"] if "metric" in a else [])
    merged = a[keep].merge(b[["claim", "difference", "verdict"]], on="claim", how="left", suffixes=(" a", " b"))
    extra = b.loc[~b["claim"].isin(a["claim"]), ["claim", "difference", "verdict"]]   # claims of the rerun only
    merged = pd.concat([merged, extra.rename(columns={"difference": "difference b", "verdict": "verdict b"})],
                       ignore_index=True)   # in the committed scoreboard's order
    rows = []
    for _, r in merged.iterrows():
        low, high, rerun = r["ci_low"], r["ci_high"], r["difference b"]
        known = not any(pd.isna(v) for v in (low, high, rerun))
        inside = bool(low <= rerun <= high) if known else None
        status = ("inside" if inside else "**outside**") if known else (
            "not in the rerun" if pd.isna(r["verdict b"]) else "not in the committed results"
            if pd.isna(r["verdict a"]) else "no committed interval" if pd.isna(low) or pd.isna(high)
            else "no rerun value")
        rows.append({"claim": r["claim"], "metric": r.get("metric", ""), "committed": r["difference a"],
                     "ci_low": low, "ci_high": high, "verdict_a": r["verdict a"], "rerun": rerun,
                     "verdict_b": r["verdict b"], "inside": inside, "status": status})
    return pd.DataFrame(rows, columns=CLAIM_REPORT)


def compare(a: str | os.PathLike | ResultSet, b: str | os.PathLike | ResultSet, profile: str | None = None) -> str:
    """The comparison of results folder ``b`` (the rerun) against ``a`` (the committed results), in
    Markdown (:func:`load_results`, :func:`compare_runs`, :func:`compare_tables`,
    :func:`compare_claims`); ``profile`` limits the runs to one profile's."""
    a = a if isinstance(a, ResultSet) else load_results(a)
    b = b if isinstance(b, ResultSet) else load_results(b)
    lines = [f"# Comparison: `{b.folder}` (rerun) against `{a.folder}` (committed)", ""]
    profiles = sorted((set(a.runs) | set(b.runs)) if profile is None else {profile})
    for p in profiles:
        lines += _profile_section(a, b, p)
    lines += _tables_section(a, b)
    lines += _claims_section(a, b)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- rendering

def _num(value, metric: str = "", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    digits = 2 if str(metric).upper() == "F1" else 4
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _environments(side: ResultSet, profile: str, name: str) -> list[str]:
    frame = side.environments.get(profile)
    if frame is None:
        return [f"- {name} `{side.folder}`: no `{profile}_environments.csv`: environments not recorded", ""]
    summary = summarise_environments(frame)
    body = [[str(v) for v in row] for row in summary.itertuples(index=False)]
    return [f"- {name} `{side.folder}`: {len(summary)} environment(s)", "", markdown_grid(list(summary.columns), body),
            ""]


def _profile_section(a: ResultSet, b: ResultSet, profile: str) -> list[str]:
    lines = [f"## Runs of the {profile} profile", ""]
    missing = [s.folder for s in (a, b) if profile not in s.runs]
    if missing:
        return lines + [f"Only one side has `{profile}_runs.csv` (missing in {', '.join(map(str, missing))}).", ""]
    runs = compare_runs(a.runs[profile], b.runs[profile])
    lines += ["Environments:", "", *_environments(a, profile, "committed"), *_environments(b, profile, "rerun")]
    lines += [_same_environment(a, b, profile), ""]
    lines += [f"Matched by run identity: {runs['both']} runs in both, {runs['identical']} of them with identical "
              f"values (every AU and metric), {runs['both'] - runs['identical']} changed; "
              f"{len(runs['only_a'])} only in the committed results, {len(runs['only_b'])} only in the rerun.", ""]
    if len(runs["changes"]):
        top = runs["changes"].head(10)
        lines += ["Largest changes (one per run and metric; value = the engine's scale, F1 in 0-1):", "",
                  markdown_grid(["run", "method", "fold", "AU", "metric", "committed", "rerun", "change"],
                                [[r["config_hash"], r.get("method a", ""), r.get("fold a", ""), r["au"], r["metric"],
                                  f"{r['value a']:.4f}", f"{r['value b']:.4f}", f"{r['change']:+.4f}"]
                                 for _, r in top.iterrows()]), ""]
    for side, name in (("only_a", "only in the committed results"), ("only_b", "only in the rerun")):
        frame = runs[side]
        if len(frame):
            listed = [" ".join(str(v) for v in row) for row in frame.head(LISTED).itertuples(index=False)]
            more = f" and {len(frame) - LISTED} more" if len(frame) > LISTED else ""
            lines += [f"Runs {name} ({len(frame)}):", "", *[f"- {x}" for x in listed], *([f"- ...{more}"] if more
                                                                                           else []), ""]
    return lines


def _same_environment(a: ResultSet, b: ResultSet, profile: str) -> str:
    ea, eb = a.environments.get(profile), b.environments.get(profile)
    if ea is None or eb is None:
        return "Same environment per run: not known (a side does not record its environments)."
    merged = ea[["config_hash", "environment"]].merge(eb[["config_hash", "environment"]], on="config_hash",
                                                      suffixes=(" a", " b"))
    same = int((merged["environment a"] == merged["environment b"]).sum())
    return (f"Runs in both made in the same environment (key): {same} of {len(merged)}"
            + (f"; {len(merged) - same} in another one" if len(merged) > same else "") + ".")


def _tables_section(a: ResultSet, b: ResultSet) -> list[str]:
    lines = ["## Tables: Avg, rerun - committed", ""]
    tables = compare_tables(a.tables, b.tables)
    if tables.empty:
        lines += ["No table in both folders.", ""]
    for name, group in tables.groupby("table", sort=True):
        lines += [f"### {name}", "", markdown_grid(["method", "metric", "committed Avg", "rerun Avg", "change"], [
            [r["method"], r["metric"], _num(r["avg_a"], r["metric"]), _num(r["avg_b"], r["metric"]),
             _num(r["change"], r["metric"], signed=True)] for _, r in group.iterrows()]), ""]
    for side, other, name in ((a, b, "committed results"), (b, a, "rerun")):
        only = sorted(set(side.tables) - set(other.tables))
        if only:
            lines += [f"Tables only in the {name}: {', '.join(only)}.", ""]
    return lines


def _claims_section(a: ResultSet, b: ResultSet) -> list[str]:
    lines = ["## Claims: the rerun's difference against the committed 95% interval", ""]
    claims = compare_claims(a.claims, b.claims)
    if claims.empty:
        return lines + ["No claims.csv on both sides.", ""]
    inside = claims["inside"]
    lines += [f"{int((inside == True).sum())} inside, {int((inside == False).sum())} outside, "  # noqa: E712
              f"{int(inside.isna().sum())} not comparable, of {len(claims)} claims.", "",
              markdown_grid(["claim", "committed [95% interval]", "verdict", "rerun", "verdict", "rerun in the interval"], [
                  [r["claim"], f"{_num(r['committed'], r['metric'], True)} [{_num(r['ci_low'], r['metric'], True)}, "
                   f"{_num(r['ci_high'], r['metric'], True)}]", _text(r["verdict_a"]), _num(r["rerun"], r["metric"], True),
                   _text(r["verdict_b"]), r["status"]]
                  for _, r in claims.iterrows()]), ""]
    return lines


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
