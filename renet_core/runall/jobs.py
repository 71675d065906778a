"""Job supervision of ``run_all``: every notebook in ``notebooks/`` executed with papermill in
its own process (some once per dataset), ``n`` at a time, one GPU each when there are several;
each job's status recorded as soon as it ends; Ctrl-C or SIGTERM stops every running notebook
and its kernel."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import fnmatch
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import papermill
import psutil
import torch
import yaml

from renet_core.base.io import TIME_FORMAT, write_text_atomic
from renet_core.runall.index import git_commit
from renet_core.runall.records import RECORDS, notebooks_dir, record_path, records_dir

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    """One notebook execution: ``name`` is the executed copy's name."""

    name: str
    notebook: Path
    parameters: dict = field(default_factory=dict)


#: Notebooks run once per dataset, with a ``dataset`` parameter.
PER_DATASET = {"01_detection": ("bp4d", "disfa", "bp4dplus"), "02_intensity": ("bp4d", "disfa")}
#: Opt-in notebooks: not in the default ``./run_all.sh`` (beyond the demo's time budget), run
#: when ``--only`` names them (``./run_all.sh --only 11_relation_premise``).
OPT_IN = {"11_relation_premise", "12_predict"}


def discover_jobs(notebooks_dir: Path, opt_in: Sequence[str] | bool = ()) -> list[Job]:
    """Every ``notebooks/NN_*.ipynb`` in order; per-dataset notebooks once per dataset; an
    :data:`OPT_IN` notebook only when ``opt_in`` is True or names it (as ``--only`` does)."""
    jobs = []
    for nb in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        if nb.stem in OPT_IN and not (opt_in is True or any(nb.stem.startswith(o) for o in opt_in or ())):
            continue
        if nb.stem in PER_DATASET:
            jobs += [Job(f"{nb.stem}_{ds}", nb, {"dataset": ds}) for ds in PER_DATASET[nb.stem]]
        else:
            jobs.append(Job(nb.stem, nb))
    return jobs


def select_jobs(jobs: list[Job], only: Sequence[str] | None) -> list[Job]:
    """The jobs that ``only`` names, each NAME matching: a job's whole name
    (``01_detection_bp4d``, never also ``01_detection_bp4dplus``); else a notebook's name (every
    dataset of ``01_detection``); else a glob (``01_*``); else the start of exactly one job's name
    (``04_relation``). A NAME that matches nothing, or the start of several jobs' names, is an
    error listing the candidates."""
    if not only:
        return jobs
    names = [j.name for j in jobs]
    chosen: set[str] = set()
    for o in only:
        exact = [j.name for j in jobs if j.name == o] or [j.name for j in jobs if j.notebook.stem == o]
        if not exact and any(c in o for c in "*?["):
            exact = [n for n in names if fnmatch.fnmatchcase(n, o)]
        if not exact:
            exact = [n for n in names if n.startswith(o)]
            if len(exact) > 1:
                raise SystemExit(f"--only {o} is the start of several jobs' names {exact}; give a whole "
                                 f"name, or a glob such as '{o}*' to run them all")
        if not exact:
            raise SystemExit(f"--only {o} matches no notebook; available: {names}")
        chosen.update(exact)
    return [j for j in jobs if j.name in chosen]


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    return set(papermill.inspect_notebook(str(notebook)).keys())


def job_parameters(job: Job, profile: str, results: Path, figures: Path, extra: dict) -> dict:
    """The papermill parameters of one job, limited to those the notebook declares. Folders are
    given relative to the notebook's folder (where papermill runs it), so that the executed copy
    shows paths of the repository, not of the machine that ran it."""
    here = job.notebook.parent.resolve()
    params = {"profile": profile, "tables_dir": relative_to(results, here), "figures_dir": relative_to(figures, here),
              "manifest": relative_to(record_path(results, f"{job.name}.outputs.json"), here),
              **extra, **job.parameters}
    declared = declared_parameters(job.notebook)
    return {k: v for k, v in params.items() if k in declared}


def relative_to(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` where they share a root (else absolute)."""
    try:
        return os.path.relpath(Path(path).resolve(), base)
    except ValueError:   # another drive (Windows)
        return str(Path(path).resolve())


@dataclass
class JobResult:
    job: Job
    status: str           # "ok" | "failed"
    seconds: float
    log: Path
    error: str = ""
    gpu: str | None = None


def _process_tree(pid: int) -> list:
    """A process and all its descendants (psutil.Process objects: safe from pid reuse)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:   # already gone
        return []


def end_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop papermill as Ctrl-C would (SIGINT: it stops the notebook and saves the executed copy),
    then terminate and kill what is still alive of it, its kernel (a session of its own) and their
    children: nothing keeps running."""
    procs = _process_tree(proc.pid)
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
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


def run_job(job: Job, params: dict, out_dir: Path, env: dict, timeout: float | None,
            stop=None, log_dir: Path | None = None) -> JobResult:
    """Execute one notebook with papermill in a subprocess (its own environment, e.g.
    ``CUDA_VISIBLE_DEVICES``); the executed copy goes to ``out_dir/<name>.ipynb``, its log (and
    the parameters while it runs) to ``log_dir`` (default ``out_dir/records``,
    :mod:`renet_core.runall.records`).

    The job ends early, status "interrupted", when ``stop`` (a ``threading.Event``) is set or this
    thread is interrupted (Ctrl-C, or SIGTERM through :func:`renet_core.runall.__main__.main`);
    after ``timeout`` seconds, status "failed". Either way :func:`end_process` stops it."""
    log_dir = out_dir / RECORDS if log_dir is None else log_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    out_nb, log = out_dir / f"{job.name}.ipynb", log_dir / f"{job.name}.log"
    param_file = log_dir / f".{job.name}.params.yaml"
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
                        end_process(proc)
                        status, note = "interrupted", "runall: interrupted; the notebook was stopped"
                        break
                    if timeout is not None and time.perf_counter() - start > timeout:
                        end_process(proc)
                        status, note = "failed", f"runall: timed out after {timeout} s"
                        break
            except KeyboardInterrupt:   # Ctrl-C / SIGTERM (main) in this thread
                end_process(proc)
                status, note = "interrupted", "runall: interrupted; the notebook was stopped"
            except BaseException:
                end_process(proc)
                raise
    finally:
        param_file.unlink(missing_ok=True)
    if note:
        with open(log, "a") as fh:
            fh.write(f"\n{note}\n")
    for written in (out_nb, log):
        scrub_paths(written)
    seconds = time.perf_counter() - start
    error = "" if status == "ok" else note if status == "interrupted" else _error_summary(log)
    return JobResult(job, status, seconds, log, error, env.get("CUDA_VISIBLE_DEVICES"))


def scrub_paths(path: Path, repo: Path = REPO) -> None:
    """Rewrite the machine's own paths in an executed notebook or log (papermill's metadata,
    warnings, printed paths): a cache given by ``RENET_CACHE`` becomes ``$RENET_CACHE``, the
    repository's root relative, the home folder ``~``, so a committed copy shows no path of the
    machine that ran it."""
    if not path.is_file():
        return
    text = path.read_text(errors="replace")
    scrubbed = text
    if os.environ.get("RENET_CACHE"):
        scrubbed = scrubbed.replace(f"{Path(os.environ['RENET_CACHE']).resolve()}{os.sep}", f"$RENET_CACHE{os.sep}")
    scrubbed = scrubbed.replace(f"{repo.resolve()}{os.sep}", "").replace(f"{Path.home().resolve()}{os.sep}", f"~{os.sep}")
    if scrubbed != text:
        write_text_atomic(path, scrubbed)


def _error_summary(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    errors = [line for line in text if "Error" in line or "Exception" in line]
    return " / ".join((errors or text)[-lines:])[:500]


def gpu_count() -> int:
    return torch.cuda.device_count()


def run_jobs(jobs: list[Job], profile: str, results: Path, figures: Path, n_jobs: int = 1,
             extra: dict | None = None, timeout: float | None = None, commit: str | None = None) -> list[JobResult]:
    """Run the jobs, ``n_jobs`` at a time; with several GPUs each running job gets one. Each
    job's status is written to ``results/notebooks/records/<job>.status.json`` as soon as it ends.

    Interrupted (Ctrl-C, or SIGTERM through :func:`main`), the running notebooks are stopped and
    their processes ended (:func:`run_job`), their status is recorded as "interrupted", no
    further job starts, and KeyboardInterrupt is raised again."""
    commit = commit or git_commit()
    stop = threading.Event()
    extra = extra or {}
    gpus = gpu_count()
    slots: queue.Queue = queue.Queue()
    for i in range(max(1, n_jobs)):
        slots.put(str(i % gpus) if gpus > 1 else None)
    out_dir, log_dir = notebooks_dir(results), records_dir(results)

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
            result = run_job(job, params, out_dir, env, timeout, stop, log_dir)
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


def write_status(result: JobResult, profile: str, results: Path, commit: str) -> Path:
    """``results/notebooks/records/<job>.status.json``: what README.md reports for this notebook run."""
    status = {"name": result.job.name, "notebook": result.job.notebook.name, "status": result.status,
              "seconds": round(result.seconds, 1), "error": result.error, "profile": profile, "commit": commit,
              "finished": dt.datetime.now().strftime(TIME_FORMAT), "gpu": result.gpu}
    return write_text_atomic(record_path(results, f"{result.job.name}.status.json"), json.dumps(status, indent=2))
