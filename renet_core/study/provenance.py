"""Which environments made a table's runs (issue 32): read each run's ``environment.json``
(:mod:`renet_core.base.environment`) and say it where the results are read.

* :func:`table_environments` -- a table's data source names the environment(s) of its runs and
  says so when they differ (a table mixing processors or torch versions is not one measurement);
* :func:`environment_rows` / :func:`merge_environments` -- ``results/<profile>_environments.csv``,
  one row per run identity with its environment key and fields, so that committed results carry
  the environments that made them (the cache with the run folders is never committed);
* :func:`environments_section` -- the list of environments behind the results for
  ``results/README.md``.

A run made before environments were recorded reads "environment not recorded", never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from renet_core.base.environment import KEY_FIELDS, describe_environment, environment_key, read_environment
from renet_core.base.io import to_csv_atomic
from renet_core.engine import ResultsStore
from renet_core.study.report import markdown_grid

NOT_RECORDED = "not recorded"
#: Columns of ``<profile>_environments.csv`` after ``config_hash`` and ``environment`` (the key).
FIELDS = (*KEY_FIELDS, "commit", "dirty", "recorded", "machine", "os")


def run_environments(run_dirs: Mapping[str, str | os.PathLike]) -> dict[str, dict | None]:
    """``{config_hash: record or None}`` from each run folder's ``environment.json``; a damaged
    record is an error naming its file (:func:`renet_core.base.environment.read_environment`)."""
    return {key: read_environment(folder) for key, folder in run_dirs.items()}


def config_run_dirs(configs: Mapping[str, list]) -> dict[str, Path]:
    """``{config_hash: run folder}`` of a table's configs (``{row key: [config, ...]}``)."""
    out = {}
    for cfgs in configs.values():
        for cfg in cfgs:
            key = cfg.config_hash()
            out[key] = ResultsStore(cfg.results_dir).run_dir(key)
    return out


def environment_labels(records: Mapping[str, dict | None]) -> dict[str, str]:
    """``{config_hash: environment key}`` ("environment not recorded" for a run without one), for
    a table's data source column (``renet_core.study.report.describe_data``)."""
    return {run: record["key"] if record else "environment not recorded" for run, record in records.items()}


def table_environments(records: Mapping[str, dict | None], subject: str = "table",
                       parts: str = "rows") -> tuple[str, str]:
    """``(label, paragraph)`` for a table made of the runs ``records`` (``{config_hash: record}``):
    the label for its data source column ("env-1a2b3c4d5e", "2 environments (mixed): env-.., env-..",
    "environment not recorded") and a Markdown paragraph that describes each environment and how
    many of the runs it made. ``subject`` and ``parts`` name what the runs make ("table" and
    "rows"; a convergence page's "ladder" and "rungs")."""
    groups: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for run, record in sorted(records.items()):
        key = record["key"] if record else NOT_RECORDED
        groups.setdefault(key, []).append(run)
        described[key] = describe_environment(record)
    recorded = sorted(k for k in groups if k != NOT_RECORDED)
    if not groups:
        return "", ""
    if len(groups) == 1:
        label = recorded[0] if recorded else "environment not recorded"
    else:
        label = f"{len(groups)} environments (mixed): " + ", ".join(recorded + ([NOT_RECORDED] if NOT_RECORDED in
                                                                                 groups else []))
    lines = []
    for key in recorded + ([NOT_RECORDED] if NOT_RECORDED in groups else []):
        n = len(groups[key])
        lines.append(f"- {n} run{'s' if n != 1 else ''}: {described[key]}")
    head = (f"Environment of this {subject}'s runs (`<run dir>/environment.json`):" if len(groups) == 1 else
            f"**This {subject} mixes {len(groups)} environments**: its runs were not all made with the same "
            f"libraries, processor, threads or precision, so differences between its {parts} may come from "
            "the environment (`<run dir>/environment.json`):")
    return label, "\n".join([head, "", *lines])


def environment_rows(records: Mapping[str, dict | None]) -> pd.DataFrame:
    """One row per run: ``config_hash``, ``environment`` (its key or "not recorded"), the
    record's :data:`FIELDS` (empty for a run without a record) and ``earlier``: the keys of the
    environments an earlier part of the run was made in (a run resumed or rescored elsewhere;
    the engine keeps their records under ``earlier``), empty for a run made in one."""
    out = []
    for run, record in sorted(records.items()):
        record = record or {}
        earlier = " ".join(environment_key(e) for e in record.get("earlier") or [] if isinstance(e, dict))
        out.append({"config_hash": run, "environment": record.get("key", NOT_RECORDED),
                    **{f: record.get(f) for f in FIELDS}, "earlier": earlier})
    return pd.DataFrame(out, columns=["config_hash", "environment", *FIELDS, "earlier"])


def store_environments(store: str | os.PathLike, hashes: Iterable[str]) -> pd.DataFrame:
    """:func:`environment_rows` of the runs ``hashes`` of the store under ``store``."""
    runs = ResultsStore(store)
    return environment_rows(run_environments({h: runs.run_dir(h) for h in sorted(set(map(str, hashes)))}))


def merge_environments(new: pd.DataFrame, target: Path) -> pd.DataFrame:
    """``new`` merged into the environments CSV ``target``: a run in both takes ``new``'s row (the
    store that made its result rows), the others are kept (runs of committed tables made
    elsewhere)."""
    if not target.is_file():
        return new
    try:
        old = pd.read_csv(target, dtype={"config_hash": str})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{target}: not a readable environments CSV ({exc}); expected columns "
                         f"config_hash, environment, {', '.join(FIELDS)}") from None
    merged = pd.concat([old, new], ignore_index=True)
    return merged.drop_duplicates("config_hash", keep="last").sort_values("config_hash").reset_index(drop=True)


def write_environments(profile: str, results: str | os.PathLike, store: str | os.PathLike,
                       hashes: Iterable[str]) -> Path | None:
    """``results/<profile>_environments.csv``: the environments of the runs ``hashes`` of the store
    under ``store`` (:func:`store_environments`) merged into the committed file
    (:func:`merge_environments`); ``None`` when there is no run."""
    new = store_environments(store, hashes)
    if new.empty:
        return None
    target = Path(results) / f"{profile}_environments.csv"
    return to_csv_atomic(merge_environments(new, target), target, index=False)


def read_environments_csv(path: Path) -> pd.DataFrame:
    """``<profile>_environments.csv`` as written by run_all; an error naming the file when it is
    not one."""
    try:
        frame = pd.read_csv(path, dtype={"config_hash": str, "environment": str})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable environments CSV ({exc})") from None
    if not {"config_hash", "environment"} <= set(frame.columns):
        raise ValueError(f"{path}: expected columns config_hash and environment (an environments CSV written by "
                         f"./run_all.sh); got {list(frame.columns)}")
    frame["environment"] = frame["environment"].fillna(NOT_RECORDED)
    return frame


def summarise_environments(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per environment of an environments CSV: its key, processor, ISA flags, torch,
    device, threads, precision, the commits its runs were made at and how many runs."""
    rows = []
    for key, group in frame.groupby("environment", sort=True):
        first = group.iloc[0]
        value = lambda f: "" if f not in group or pd.isna(first.get(f)) else str(first[f])  # noqa: E731
        commits = sorted({str(c)[:12] + (" + changes" if str(d).lower() == "true" else "")
                          for c, d in zip(group.get("commit", []), group.get("dirty", [])) if not pd.isna(c)})
        device = value("device") + (f" ({value('device_name')})" if value("device") not in ("", "cpu") else "")
        rows.append({"environment": key, "processor": value("processor"), "ISA flags": value("isa_flags"),
                     "torch": value("torch"), "device": device, "threads": value("threads").removesuffix(".0"),
                     "precision": value("precision"), "commits": ", ".join(commits), "runs": len(group)})
    return pd.DataFrame(rows, columns=["environment", "processor", "ISA flags", "torch", "device", "threads",
                                       "precision", "commits", "runs"])


def environments_section(results: Path, profile: str) -> str:
    """``results/README.md``'s list of the environments behind the results, from
    ``results/<profile>_environments.csv`` (starting with a blank line); empty when there is none."""
    path = Path(results) / f"{profile}_environments.csv"
    if not path.is_file():
        return ""
    try:
        summary = summarise_environments(read_environments_csv(path))
    except ValueError as exc:
        return f"\n## Environments behind the results\n\nNot read: {exc}\n"
    if summary.empty:
        return ""
    body = [[str(v) for v in row] for row in summary.itertuples(index=False)]
    lines = ["", "## Environments behind the results", "",
             f"Where the {profile} profile's runs were computed (`{path.name}`: one row per run identity, from "
             "each run's `environment.json`). The key hashes what changes the arithmetic: library versions, "
             "torch's build, processor and instruction-set flags, device, threads, precision. "
             "\"not recorded\": runs made before environments were recorded.", "",
             markdown_grid(list(summary.columns), body), ""]
    if len(summary) > 1:
        lines += [f"The results come from {len(summary)} environments; each table's Markdown says which made "
                  "its runs.", ""]
    return "\n".join(lines)
