"""Run every reproduction notebook with papermill and write ``results/README.md``.

    python -m renet_core.runall --profile demo [--only NAME ...] [--jobs N]

Each notebook in ``notebooks/`` is executed (some once per dataset, e.g. ``01_detection`` for
BP4D, DISFA and BP4D+) with the parameters ``profile``, the output folders and the dataset
roots from ``$RENET_BP4D``, ``$RENET_DISFA``, ``$RENET_BP4DPLUS`` (a dataset that is not
configured falls back to its SynthAU twin, and its tables say so). Executed copies go to
``results/notebooks/``. A failing notebook does not stop the others; the exit status is non-zero
if any failed. ``--jobs N`` runs N notebooks at a time, spread over the GPUs with
``CUDA_VISIBLE_DEVICES`` when there are several.

What each notebook reproduces is declared in ``renet_core.study``; a notebook lists what it
wrote in a small manifest (:func:`record_outputs`) that this module reads into the README.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import queue
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .io import TIME_FORMAT, write_text_atomic

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------- jobs

@dataclass
class Job:
    """One notebook execution: ``name`` is the executed copy's name."""

    name: str
    notebook: Path
    parameters: dict = field(default_factory=dict)


#: Notebooks run once per dataset, with a ``dataset`` parameter.
PER_DATASET = {"01_detection": ("bp4d", "disfa", "bp4dplus"), "02_intensity": ("bp4d", "disfa")}


def discover_jobs(notebooks_dir: Path) -> list[Job]:
    """Every ``notebooks/NN_*.ipynb`` in order; per-dataset notebooks once per dataset."""
    jobs = []
    for nb in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        if nb.stem in PER_DATASET:
            jobs += [Job(f"{nb.stem}_{ds}", nb, {"dataset": ds}) for ds in PER_DATASET[nb.stem]]
        else:
            jobs.append(Job(nb.stem, nb))
    return jobs


def select_jobs(jobs: list[Job], only: Sequence[str] | None) -> list[Job]:
    """Jobs whose name starts with (or whose notebook stem equals) one of ``only``."""
    if not only:
        return jobs
    chosen = [j for j in jobs if any(j.name.startswith(o) or j.notebook.stem == o for o in only)]
    if not chosen:
        raise SystemExit(f"--only {list(only)} matches no notebook; available: {[j.name for j in jobs]}")
    return chosen


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)).keys())


def job_parameters(job: Job, profile: str, results: Path, figures: Path, extra: dict) -> dict:
    """The papermill parameters of one job, limited to those the notebook declares."""
    params = {"profile": profile, "tables_dir": str(results), "figures_dir": str(figures),
              "manifest": str(results / "notebooks" / f"{job.name}.outputs.json"), **extra, **job.parameters}
    declared = declared_parameters(job.notebook)
    return {k: v for k, v in params.items() if k in declared}


@dataclass
class JobResult:
    job: Job
    status: str           # "ok" | "failed"
    seconds: float
    log: Path
    error: str = ""
    gpu: str | None = None


def run_job(job: Job, params: dict, out_dir: Path, env: dict, timeout: float | None,
            stop=None) -> JobResult:
    """Execute one notebook with papermill in a subprocess (its own environment, e.g.
    ``CUDA_VISIBLE_DEVICES``); the executed copy goes to ``out_dir/<name>.ipynb``.

    The job ends early, status "interrupted", when ``stop`` (a ``threading.Event``) is set or this
    thread is interrupted (Ctrl-C, or SIGTERM through :func:`main`); after ``timeout`` seconds,
    status "failed". Either way papermill gets SIGINT (it stops the notebook and saves the
    executed copy), and a few seconds later papermill, its kernel (which runs in a session of its
    own) and their children still alive are terminated, then killed: nothing keeps running."""
    import contextlib
    import signal

    import yaml

    def tree(pid: int) -> list:
        """papermill and all its descendants (psutil.Process objects: safe from pid reuse)."""
        try:
            import psutil

            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except Exception:   # psutil missing (it comes with ipykernel) or papermill gone
            return []

    def end(proc: subprocess.Popen, grace: float = 5.0) -> None:
        procs = tree(proc.pid)
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            alive = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    if p.is_running():
                        alive += [p, *p.children(recursive=True)]
            alive = list({p.pid: p for p in alive}.values())
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.terminate()
            _, alive = psutil.wait_procs(alive, timeout=3)
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(alive, timeout=3)
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    out_dir.mkdir(parents=True, exist_ok=True)
    out_nb, log = out_dir / f"{job.name}.ipynb", out_dir / f"{job.name}.log"
    param_file = out_dir / f".{job.name}.params.yaml"
    write_text_atomic(param_file, yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "papermill", str(job.notebook), str(out_nb), "-f", str(param_file),
           "--cwd", str(job.notebook.parent), "--log-output", "--no-progress-bar", "-k", "python3"]
    start = time.perf_counter()
    note = ""
    try:
        with open(log, "w") as fh:
            # a session of its own: a Ctrl-C at the terminal reaches runall alone, which ends the job
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=os.name == "posix")
            try:
                while True:
                    try:
                        code = proc.wait(timeout=0.5)
                        status = "ok" if code == 0 else "failed"
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if stop is not None and stop.is_set():
                        end(proc)
                        status, note = "interrupted", "runall: interrupted; the notebook was stopped"
                        break
                    if timeout is not None and time.perf_counter() - start > timeout:
                        end(proc)
                        status, note = "failed", f"runall: timed out after {timeout} s"
                        break
            except KeyboardInterrupt:   # Ctrl-C / SIGTERM (main) in this thread
                end(proc)
                status, note = "interrupted", "runall: interrupted; the notebook was stopped"
            except BaseException:
                end(proc)
                raise
    finally:
        param_file.unlink(missing_ok=True)
    if note:
        with open(log, "a") as fh:
            fh.write(f"\n{note}\n")
    seconds = time.perf_counter() - start
    error = "" if status == "ok" else note if status == "interrupted" else _error_summary(log)
    return JobResult(job, status, seconds, log, error, env.get("CUDA_VISIBLE_DEVICES"))


def _error_summary(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    errors = [line for line in text if "Error" in line or "Exception" in line]
    return " / ".join((errors or text)[-lines:])[:500]


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        return 0


def run_jobs(jobs: list[Job], profile: str, results: Path, figures: Path, n_jobs: int = 1,
             extra: dict | None = None, timeout: float | None = None, commit: str | None = None) -> list[JobResult]:
    """Run the jobs, ``n_jobs`` at a time; with several GPUs each running job gets one. Each
    job's status is written to ``results/notebooks/<job>.status.json`` as soon as it ends.

    Interrupted (Ctrl-C, or SIGTERM through :func:`main`), the running notebooks are stopped and
    their processes ended (:func:`run_job`), their status is recorded as "interrupted", no
    further job starts, and KeyboardInterrupt is raised again."""
    import threading

    commit = commit or git_commit()
    stop = threading.Event()
    extra = extra or {}
    gpus = gpu_count()
    slots: queue.Queue = queue.Queue()
    for i in range(max(1, n_jobs)):
        slots.put(str(i % gpus) if gpus > 1 else None)
    out_dir = results / "notebooks"

    def one(job: Job) -> JobResult | None:
        slot = slots.get()
        try:
            if stop.is_set():
                return None
            env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
            if slot is not None:
                env["CUDA_VISIBLE_DEVICES"] = slot
            print(f"[runall] start {job.name}" + (f" on GPU {slot}" if slot is not None else ""), flush=True)
            params = job_parameters(job, profile, results, figures, extra)
            result = run_job(job, params, out_dir, env, timeout, stop)
            if result.status == "interrupted":
                stop.set()
            write_status(result, profile, results, commit)
            print(f"[runall] {result.status:6s} {job.name} ({result.seconds:.0f} s)"
                  + (f": {result.error}" if result.error else ""), flush=True)
            return result
        finally:
            slots.put(slot)

    outcome: list[JobResult | None] = []
    if n_jobs <= 1:
        for job in jobs:
            outcome.append(one(job))
            if stop.is_set():
                break
    else:
        with cf.ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(one, job) for job in jobs]
            try:
                while not all(f.done() for f in futures):
                    cf.wait(futures, timeout=0.5)
            except KeyboardInterrupt:   # in this (main) thread: stop the jobs in the others
                stop.set()
                cf.wait(futures)
            outcome = [f.result() for f in futures]
    if stop.is_set():
        raise KeyboardInterrupt("run_all interrupted")
    return [r for r in outcome if r is not None]


# ----------------------------------------------------------------------------------- README

def git_commit(repo: Path = REPO) -> str:
    """``<sha>`` of HEAD, with "+ uncommitted changes" when the tree is dirty; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" + uncommitted changes" if dirty else "")


def write_status(result: JobResult, profile: str, results: Path, commit: str) -> Path:
    """``results/notebooks/<job>.status.json``: what README.md reports for this notebook run."""
    status = {"name": result.job.name, "notebook": result.job.notebook.name, "status": result.status,
              "seconds": round(result.seconds, 1), "error": result.error, "profile": profile, "commit": commit,
              "finished": dt.datetime.now().strftime(TIME_FORMAT), "gpu": result.gpu}
    return write_text_atomic(results / "notebooks" / f"{result.job.name}.status.json", json.dumps(status, indent=2))


def load_statuses(results: Path, names: Sequence[str]) -> list[dict]:
    """The recorded status of every job in ``names`` that has run (in that order), with the
    outputs its notebook recorded (only for successful runs)."""
    out = []
    for name in names:
        path = results / "notebooks" / f"{name}.status.json"
        if not path.exists():
            continue
        try:
            status = json.loads(path.read_text())
        except ValueError:
            continue
        manifest = results / "notebooks" / f"{name}.outputs.json"
        status["outputs"] = []
        if status.get("status") == "ok" and manifest.exists():
            try:
                status["outputs"] = json.loads(manifest.read_text())
            except ValueError:
                pass
        out.append(status)
    return out


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), base.resolve())
    except ValueError:
        return str(path)


def readme_text(statuses: list[dict], results: Path, device: str, provenance: str = "") -> str:
    """The text of ``results/README.md``: every table and figure with its notebook's status, run
    time, profile, data source and commit; ``provenance`` (:func:`run_provenance`) says which of
    the tables' runs the last full run trained and which it found finished in the store."""
    from .report import markdown_grid

    n_failed = sum(s["status"] != "ok" for s in statuses)
    lines = ["# Regenerated tables and figures", "",
             "Written by `python -m renet_core.runall` (`./run_all.sh`). Each table is a CSV and a rendered "
             "markdown file with the paper's values, this run's values and their difference; figures are PNG.", "",
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
        common = [nb, s["status"], f"{s['seconds']:.0f} s", s["profile"], f"`{s['commit']}`"]
        if not s["outputs"]:
            body.append(["", "(none recorded)", *common, s.get("error", "")])
        for o in s["outputs"]:
            body.append([o.get("kind", ""), f"[{o['name']}]({_rel(o['path'], results)})", *common, o["data_source"]])
    header = ["kind", "output", "notebook", "status", "run time", "profile", "commit", "data source / error"]
    lines += [markdown_grid(header, body), ""]
    lines += ["Run time is the notebook's wall time; a run already finished by an earlier notebook (e.g. "
              "RE-Net on BP4D, shared by Tables 1, 6, 7 and 8 and Fig. 3) is reused, not retrained.", ""]
    return "\n".join(lines)


def _total_line(results: Path) -> list[str]:
    """The wall time of the last full ``run_all`` (every notebook, SynthAU writing included)."""
    path = results / "notebooks" / "total.json"
    try:
        total = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [f"- total time of the last full run: {total['seconds'] / 60:.1f} min for {total['notebooks']} notebooks "
            f"({total['profile']} profile, commit `{total['commit']}`, finished {total['finished']}; after "
            "installation, SynthAU writing included)"]


def run_provenance(results: Path, profile: str, store: Path | None = None) -> str:
    """A README line: of the runs the tables use, how many finished during the last full run
    (trained by it) and how many were already in the store (reused by run identity: a rerun on a
    kept cache trains only what changed, so its total time is not a fresh run's; the reused runs'
    recorded epoch times give the fresh-cache estimate, :func:`_typical_run_seconds`). From the
    runs' ``done.json`` ("finished", "history") and ``total.json``; empty when either is missing."""
    from . import study
    from .results import ResultsStore

    try:
        total = json.loads((results / "notebooks" / "total.json").read_text())
        end = dt.datetime.strptime(total["finished"], TIME_FORMAT)
        start = end - dt.timedelta(seconds=float(total["seconds"]))
        rows_by_table, _ = study.finished_rows(profile, store_dir=store)
    except Exception:  # noqa: BLE001 - a line of the README; the README must still be written
        return ""
    hashes = {h for rows in rows_by_table.values() if "config_hash" in rows
              for h in rows["config_hash"].dropna().astype(str)}
    runs = ResultsStore(study.default_store(profile) if store is None else store)
    trained = reused = later = 0
    reused_seconds = 0.0
    for key in sorted(hashes):
        path = runs.run_dir(key) / "done.json"
        try:
            done = json.loads(path.read_text())
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
    line = f"- runs behind the tables: {trained + reused + later}; the last full run trained {trained}"
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


def describe_device() -> str:
    from .device import pick_device

    device = str(pick_device())
    if device.startswith("cuda"):
        import torch

        return device + f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible)"
    return device + f" ({os.cpu_count()} cores)"


def write_readme(results: Path, names: Sequence[str], profile: str | None = None, store: Path | None = None) -> Path:
    """``results/README.md``: the index of outputs and, given the ``profile`` whose runs are in
    ``store``, the claims scoreboard computed from their rows (also ``results/claims.csv``)."""
    provenance = run_provenance(results, profile, store) if profile else ""
    text = readme_text(load_statuses(results, names), results, describe_device(), provenance)
    if profile:
        text += "\n" + claims_section(profile, results, store)
    return write_text_atomic(results / "README.md", text)


def claims_section(profile: str, results: Path, store: Path | None = None) -> str:
    """The scoreboard of ``renet_core.claims`` as markdown; a failure to compute it is reported
    in its place (the index is still written)."""
    from . import claims, study
    from .io import to_csv_atomic

    try:
        board = study.scoreboard(profile, store_dir=store)
    except Exception as exc:  # noqa: BLE001 - the README must still be written
        return f"## Claims scoreboard\n\nNot computed: {type(exc).__name__}: {exc}\n"
    to_csv_atomic(board, results / "claims.csv", index=False, float_format="%.4f")
    return claims.render(board)


def copy_store_rows(profile: str, results: Path, store: Path | None = None) -> Path | None:
    """Merge the profile's tidy result rows into ``results/<profile>_runs.csv``: rows of runs
    already there (same config hash, method, fold, AU, metric) are replaced, the others kept,
    so that ``--only`` on another machine or store never drops the rows of committed tables."""
    import pandas as pd

    from .io import to_csv_atomic

    from .study import default_store

    src = (store or default_store(profile)) / "results.csv"
    if not src.exists():
        return None
    target = results / f"{profile}_runs.csv"
    rows = pd.read_csv(src)
    if target.exists():
        rows = pd.concat([pd.read_csv(target), rows], ignore_index=True)
        key = [c for c in ("config_hash", "dataset", "task", "method", "fold", "au", "metric", "seed")
               if c in rows.columns]
        rows = rows.drop_duplicates(subset=key, keep="last")
    to_csv_atomic(rows, target, index=False)
    return target


# -------------------------------------------------------------------------------------- CLI

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m renet_core.runall", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="demo", choices=("smoke", "demo", "paper"))
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only notebooks whose name starts with NAME (repeatable), e.g. 01_detection_bp4d")
    p.add_argument("--jobs", type=int, default=1, help="notebooks at a time (one GPU each when there are several)")
    p.add_argument("--notebooks", default=str(REPO / "notebooks"))
    p.add_argument("--results", default=str(REPO / "results"))
    p.add_argument("--figures", default=str(REPO / "figures"))
    p.add_argument("--store", default=None, help="runs folder (default $RENET_CACHE/runs/<profile>)")
    p.add_argument("--folds", default=None, help="e.g. 1,2,3 (default: all three)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per notebook")
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    jobs = select_jobs(discover_jobs(Path(args.notebooks)), args.only)
    if args.list:
        print("\n".join(j.name for j in jobs))
        return 0
    if not jobs:
        print(f"no notebooks found in {args.notebooks}", file=sys.stderr)
        return 1
    results, figures = Path(args.results).resolve(), Path(args.figures).resolve()
    extra: dict = {"store_dir": args.store and str(Path(args.store).resolve()), "device": args.device}
    if args.folds:
        extra["folds"] = [int(f) for f in args.folds.split(",")]
    extra = {k: v for k, v in extra.items() if v is not None}
    store = Path(args.store).resolve() if args.store else None
    # SIGTERM (kill, a scheduler, a closed session) as Ctrl-C: the running notebooks are stopped,
    # their processes ended and their status recorded as "interrupted" (run_jobs, run_job)
    import signal
    import threading

    received: list[int] = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, interrupt) for sig in handled}
    started, commit = time.perf_counter(), git_commit()   # the code the notebooks run (before they write)
    try:
        outcome = run_jobs(jobs, args.profile, results, figures, args.jobs, extra, args.timeout, commit)
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        copy_store_rows(args.profile, results, store)
        readme = write_readme(results, [j.name for j in discover_jobs(Path(args.notebooks))], args.profile, store)
        print(f"[runall] interrupted ({signal.Signals(signum).name}); the running notebooks were stopped "
              f"and recorded as interrupted; see {readme}", file=sys.stderr)
        return 128 + int(signum)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    copy_store_rows(args.profile, results, store)
    all_jobs = discover_jobs(Path(args.notebooks))
    if len(outcome) == len(all_jobs):   # a full study: its total time goes into the README
        write_text_atomic(results / "notebooks" / "total.json", json.dumps(
            {"seconds": round(time.perf_counter() - started, 1), "notebooks": len(outcome), "profile": args.profile,
             "commit": commit, "finished": dt.datetime.now().strftime(TIME_FORMAT)}, indent=2))
    readme = write_readme(results, [j.name for j in all_jobs], args.profile, store)
    failed = [r.job.name for r in outcome if r.status != "ok"]
    print(f"[runall] {len(outcome) - len(failed)} ok, {len(failed)} failed; see {readme}")
    if failed:
        print(f"[runall] failed: {', '.join(failed)} (logs in {results / 'notebooks'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
