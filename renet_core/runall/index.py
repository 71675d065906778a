"""The results index of ``run_all``: ``results/README.md`` (every table and figure with its
notebook's status, run time, profile, data source and commit; which runs the last full run
trained and which it reused; the claims scoreboard), ``results/claims.csv`` and
``results/<profile>_runs.csv``, all read through the results store."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from renet_core.base.device import pick_device
from renet_core.base.io import TIME_FORMAT, to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore
from renet_core.runall.plan import fresh_cache_seconds, job_overhead, make_plan
from renet_core.runall.records import TOTAL, find_record
from renet_core.study import default_store, finished_rows, scoreboard
from renet_core.study.claims import render as render_claims
from renet_core.study.preview import notice as preview_notice
from renet_core.study.provenance import environments_section, write_environments
from renet_core.study.report import markdown_grid

REPO = Path(__file__).resolve().parents[2]


#: What decides the numbers, for the commit stamp: code, notebooks and configs (never results/,
#: figures/ or docs, which run_all itself rewrites).
CODE_PATHS = ("renet_core", "notebooks", "tools", "pyproject.toml", "run_all.sh", ":(glob)**/*.yaml",
              ":(glob)**/*.yml")


def git_commit(repo: Path = REPO) -> str:
    """``<sha>`` of HEAD, with "+ uncommitted changes" when a tracked file of the code, the
    notebooks or the configs (:data:`CODE_PATHS`) differs from it; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" + uncommitted changes" if dirty else "")


def load_statuses(results: Path, names: Sequence[str]) -> list[dict]:
    """The recorded status of every job in ``names`` that has run (in that order), with the
    outputs its notebook recorded (only for successful runs; ``path`` relative to the manifest's
    folder, :func:`output_path`). Records are read from ``results/notebooks/records/``, or from
    ``results/notebooks/`` where an older run wrote them (:func:`renet_core.runall.records.find_record`);
    a job's manifest is read from the folder of its status."""
    out = []
    for name in names:
        path = find_record(results, f"{name}.status.json")
        if not path.exists():
            continue
        try:
            status = json.loads(path.read_text())
        except ValueError:
            continue
        manifest = path.parent / f"{name}.outputs.json"
        status["outputs"] = []
        if status.get("status") == "ok" and manifest.exists():
            try:
                status["outputs"] = [dict(o, base=str(manifest.parent)) for o in json.loads(manifest.read_text())]
            except ValueError:
                pass
        out.append(status)
    return out


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), base.resolve())
    except ValueError:
        return str(path)


def output_path(path: str, results: Path, base: Path | None = None) -> Path:
    """Where a manifest's output is: manifests hold paths relative to their folder ``base``
    (``results/notebooks/records``; ``results/notebooks`` for a manifest of the old layout, the
    default); an absolute path written in another checkout (older manifests) is taken from its
    ``results/`` or ``figures/`` part on, in this one, so no link leaves the repository."""
    given = Path(path)
    if not given.is_absolute():
        return (results / "notebooks" if base is None else Path(base)) / given
    repo = results.resolve().parent
    if given.resolve().is_relative_to(repo):
        return given
    parts = given.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in (results.name, "figures"):
            return repo / Path(*parts[i:])
    return given


def readme_text(statuses: list[dict], results: Path, device: str, provenance: str = "",
                fresh: dict[str, float | None] | None = None, notice: str = "") -> str:
    """The text of ``results/README.md``: every table and figure with its notebook's status, run
    time, what it costs on a fresh cache (``fresh``: seconds per job, :func:`fresh_costs`),
    profile, data source and commit; ``provenance`` (:func:`run_provenance`) says which of the
    tables' runs the last full run trained and which it found finished in the store; ``notice``
    (a preview's, :func:`renet_core.study.preview.notice`) comes first, under the title."""
    fresh = fresh or {}
    n_failed = sum(s["status"] != "ok" for s in statuses)
    lines = ["# Regenerated tables and figures", "", *([notice, ""] if notice else []),
             "Written by `python -m renet_core.runall` (`./run_all.sh`). Each table is a CSV and a rendered "
             "markdown file with the paper's values, this run's values and their difference; figures are PNG. "
             "The executed notebooks are in `notebooks/`; their logs and run records in `notebooks/records/`.", "",
             f"- device of the last run: {device}",
             f"- notebooks: {len(statuses) - n_failed} ok, {n_failed} failed", *_total_line(results),
             *([provenance] if provenance else []), ""]
    if any(s["profile"] != "paper" for s in statuses) or any(
            "synth" in o["data_source"].lower() for s in statuses for o in s["outputs"]):
        lines += ["Outputs whose data source says SynthAU come from synthetic data: they are **not** a "
                  "reproduction of the paper's numbers, only a check that the whole study runs.", ""]
    body = []
    for s in statuses:
        nb = f"[{s['name']}](notebooks/{s['name']}.ipynb)"
        cost = fresh.get(s["name"])
        common = [nb, s["status"], f"{s['seconds']:.0f} s", "" if cost is None else f"{cost / 60:.1f} min",
                  s["profile"], f"`{s['commit']}`"]
        if not s["outputs"]:
            body.append(["", "(none recorded)", *common, s.get("error", "")])
        for o in s["outputs"]:
            path = output_path(o["path"], results, o.get("base"))
            body.append([o.get("kind", ""), f"[{o['name']}]({_rel(path, results)})", *common, o["data_source"]])
    header = ["kind", "output", "notebook", "status", "run time", "fresh cache", "profile", "commit",
              "data source / error"]
    lines += [markdown_grid(header, body), ""]
    lines += ["Run time is the notebook's wall time in the last run; a run already finished by an earlier "
              "notebook (e.g. RE-Net on BP4D, shared by Tables 1, 6, 7 and 8 and Fig. 3) is reused, not "
              "retrained. Fresh cache: what `./run_all.sh --only NAME` costs alone on an empty cache, i.e. the "
              "recorded wall seconds (`done.json`) of every training run its tables need, shared ones included, "
              "plus the notebook's own time; measured on the machine that made these runs.", ""]
    return "\n".join(lines)


def _total_line(results: Path) -> list[str]:
    """The wall time of the last full ``run_all`` (every notebook, SynthAU writing included)."""
    path = find_record(results, TOTAL)
    try:
        total = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [f"- total time of the last full run: {total['seconds'] / 60:.1f} min for {total['notebooks']} notebooks "
            f"({total['profile']} profile, commit `{total['commit']}`, finished {total['finished']}; after "
            "installation, SynthAU writing included)"]


PROVENANCE_START = "- runs behind the tables:"


def run_provenance(results: Path, profile: str, store: Path | None = None) -> str:
    """A README line: of the runs the tables use, how many finished during the last full run
    (trained by it) and how many were already in the store (reused by run identity: a rerun on a
    kept cache trains only what changed, so its total time is not a fresh run's; the reused runs'
    recorded epoch times give the fresh-cache estimate, :func:`_typical_run_seconds`). From the
    runs' ``done.json`` ("finished", "history") and ``total.json``; empty when either is missing."""
    try:
        total = json.loads(find_record(results, TOTAL).read_text())
        end = dt.datetime.strptime(total["finished"], TIME_FORMAT)
        start = end - dt.timedelta(seconds=float(total["seconds"]))
        rows_by_table, _ = finished_rows(profile, store_dir=store)
    except Exception:  # noqa: BLE001 - a line of the README; the README must still be written
        return ""
    hashes = {h for rows in rows_by_table.values() if "config_hash" in rows
              for h in rows["config_hash"].dropna().astype(str)}
    runs = ResultsStore(default_store(profile) if store is None else store)
    trained = reused = later = 0
    reused_seconds = 0.0
    for key in sorted(hashes):
        try:
            done = runs.done_summary(key)
            finished = dt.datetime.strptime(done["finished"], TIME_FORMAT)
        except (OSError, ValueError, KeyError):
            continue
        if finished < start:
            reused += 1
            reused_seconds += _typical_run_seconds(done.get("history", []))
        elif finished <= end:
            trained += 1
        else:
            later += 1
    if not trained + reused + later:
        return ""
    line = f"{PROVENANCE_START} {trained + reused + later}; the last full run trained {trained}"
    if reused:
        line += (f" and reused {reused} finished before it started (same run identity), so its total time "
                 "is not a fresh cache's")
        if reused_seconds:
            fresh = float(total["seconds"]) + reused_seconds
            line += (f"; the reused runs train in about {reused_seconds / 60:.0f} min (per run its median "
                     f"epoch time in `done.json` times its epochs), so a fresh cache needs about "
                     f"{fresh / 60:.0f} min (stand-in backbones not counted)")
    elif not later:
        line += " (all of them: a fresh cache)"
    if later:
        line += f"; {later} finished after it (later partial runs)"
    return line


def _typical_run_seconds(history: list) -> float:
    """A run's training time from its per-epoch ``seconds``: the median epoch times the number of
    epochs, so that an epoch slowed by other work on the machine does not count as the run's cost."""
    seconds = [float(h["seconds"]) for h in history if isinstance(h, dict) and "seconds" in h]
    return statistics.median(seconds) * len(seconds) if seconds else 0.0


def fresh_costs(statuses: list[dict], profile: str, store: Path | None = None) -> dict[str, float | None]:
    """Per job, what it costs alone on a fresh cache (:func:`renet_core.runall.plan.fresh_cache_seconds`
    plus its own time beyond training); an empty mapping when the estimate cannot be made."""
    try:
        the_plan = make_plan([s["name"] for s in statuses], profile, store)
        out = {}
        for s in statuses:
            runs = fresh_cache_seconds(the_plan, s["name"])
            out[s["name"]] = None if runs is None else runs + job_overhead(s, the_plan)
        return out
    except Exception:  # noqa: BLE001 - a column of the README; the README must still be written
        return {}


def describe_device() -> str:
    device = str(pick_device())
    if device.startswith("cuda"):
        return device + f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible)"
    return device + f" ({os.cpu_count()} cores)"


def write_readme(results: Path, names: Sequence[str], profile: str | None = None, store: Path | None = None) -> Path:
    """``results/README.md``: the index of outputs and, given the ``profile`` whose runs are in
    ``store``, the claims scoreboard computed from their rows (also ``results/claims.csv``).

    The scoreboard and the "runs behind the tables" line belong to the profile of the last full
    run (``total.json``; its store), whose tables the README lists: a partial run of another
    profile (``--profile smoke --only X``) leaves them to that profile. A claim this store cannot
    measure (none of its runs here, e.g. another machine's cache) keeps its committed row of
    claims.csv, and a line the store cannot give keeps the README's: nothing committed is wiped."""
    board_profile, board_store = profile, store
    try:
        total = json.loads(find_record(results, TOTAL).read_text())
    except (OSError, ValueError):
        total = {}
    if profile and total.get("profile") and total["profile"] != profile:
        board_profile = total["profile"]
        board_store = Path(total["store"]) if total.get("store") else None
    old = (results / "README.md").read_text() if (results / "README.md").is_file() else ""
    provenance = run_provenance(results, board_profile, board_store) if board_profile else ""
    if not provenance:
        provenance = next((line for line in old.splitlines() if line.startswith(PROVENANCE_START)), "")
    statuses = load_statuses(results, names)
    fresh = fresh_costs(statuses, board_profile, board_store) if board_profile else {}
    text = readme_text(statuses, results, describe_device(), provenance, fresh, preview_notice(board_profile))
    if board_profile:
        text += "\n" + claims_section(board_profile, results, board_store)
        text += environments_section(results, board_profile)
    return write_text_atomic(results / "README.md", text)


def claims_section(profile: str, results: Path, store: Path | None = None) -> str:
    """The scoreboard of ``renet_core.study.claims`` as markdown (:func:`merge_claims` with the
    committed claims.csv); a failure to compute it is reported in its place (the index and the
    committed claims.csv are kept)."""
    try:
        board = scoreboard(profile, store_dir=store)
    except Exception as exc:  # noqa: BLE001 - the README must still be written
        return f"## Claims scoreboard\n\nNot computed: {type(exc).__name__}: {exc}\n"
    board, kept = merge_claims(board, results / "claims.csv")
    to_csv_atomic(board, results / "claims.csv", index=False, float_format="%.4f")
    text = render_claims(board)
    if kept:
        text += (f"\n{kept} claim(s) above are kept from the committed `claims.csv`: this run's store ({profile} "
                 "profile) holds none of their runs.\n")
    return text


def merge_claims(board: pd.DataFrame, committed: Path) -> tuple[pd.DataFrame, int]:
    """``board`` with each claim it could not measure ("not run", or absent: Fig. 3's needs its
    runs) taken from the ``committed`` claims.csv where that one was measured; returns it and
    how many were kept."""
    if not committed.is_file():
        return board, 0
    try:
        old = pd.read_csv(committed)
    except (OSError, ValueError):
        return board, 0
    if "claim" not in old or "verdict" not in old:
        return board, 0
    old = old[old["verdict"] != "not run"].drop_duplicates("claim").set_index("claim")
    attrs, merged, kept = dict(board.attrs), [], 0
    for record in board.to_dict("records"):
        if record["verdict"] == "not run" and record["claim"] in old.index:
            record = {**record, **{k: v for k, v in old.loc[record["claim"]].to_dict().items() if k in board}}
            kept += 1
        merged.append(record)
    for claim in old.index.difference(board["claim"], sort=False):   # measured elsewhere only (Fig. 3)
        merged.append({"claim": claim, **{k: v for k, v in old.loc[claim].to_dict().items() if k in board}})
        kept += 1
    out = pd.DataFrame.from_records(merged, columns=board.columns)
    if "renet_steps" in out:
        out["renet_steps"] = pd.array([None if pd.isna(v) else int(v) for v in out["renet_steps"]], dtype="Int64")
    for flag in ("under_trained", "converged"):   # booleans as CSV text -> bool (a kept row of an older file)
        if flag in out:
            out[flag] = [str(v).strip().lower() in ("true", "1", "1.0") for v in out[flag]]
    out.attrs.update(attrs)
    return out, kept


def copy_store_rows(profile: str, results: Path, store: Path | None = None) -> Path | None:
    """Merge the profile's tidy result rows into ``results/<profile>_runs.csv``: rows of runs
    already there (same config hash, method, fold, AU, metric) are replaced, the others kept,
    so that ``--only`` on another machine or store never drops the rows of committed tables.
    Their runs' environments go to ``results/<profile>_environments.csv`` the same way
    (:func:`renet_core.study.provenance.write_environments`)."""
    rows = ResultsStore(store or default_store(profile)).done_rows()   # finished runs only
    if rows.empty:
        return None
    write_environments(profile, results, store or default_store(profile), rows["config_hash"])   # issue 32
    target = results / f"{profile}_runs.csv"
    if target.exists():
        rows = pd.concat([pd.read_csv(target), rows], ignore_index=True)
        key = [c for c in ("config_hash", "dataset", "task", "method", "fold", "au", "metric", "seed")
               if c in rows.columns]
        rows = rows.drop_duplicates(subset=key, keep="last")
    to_csv_atomic(rows, target, index=False)
    return target
