"""Run every reproduction notebook with papermill and write ``results/README.md``.

    python -m renet_core.runall --profile demo [--only NAME ...] [--jobs N]

Each notebook in ``notebooks/`` is executed (some once per dataset, e.g. ``01_detection`` for
BP4D, DISFA and BP4D+; an opt-in one, ``jobs.OPT_IN``, only when ``--only`` names it) with the parameters ``profile``, the output folders and the dataset
roots from ``$RENET_BP4D``, ``$RENET_DISFA``, ``$RENET_BP4DPLUS`` (a dataset that is not
configured falls back to its SynthAU twin, and its tables say so). Executed copies go to
``results/notebooks/``; their logs, status and outputs manifests (and the last full run's
``total.json``) to ``results/notebooks/records/`` (:mod:`renet_core.runall.records`), a folder
a reader can skip. A failing notebook does not stop the others; the exit status is non-zero
if any failed. ``--jobs N`` runs N notebooks at a time, spread over the GPUs with
``CUDA_VISIBLE_DEVICES`` when there are several. The ``preview`` profile (a quick look, every
claim not converged) writes to ``results/preview/`` and ``figures/preview/`` unless
``--results`` / ``--figures`` say otherwise (:func:`output_dirs`).

What each notebook reproduces is declared in ``renet_core.study``; a notebook lists what it
wrote in a small manifest (:func:`renet_core.study.record_outputs`) that the index
(:mod:`renet_core.runall.index`) reads into the README; the jobs are run by
:mod:`renet_core.runall.jobs`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import signal
import sys
import threading
import time
from pathlib import Path

from renet_core.base.io import TIME_FORMAT, write_text_atomic
from renet_core.engine import PROFILE_NAMES, profile_setting
from renet_core.runall.index import copy_store_rows, git_commit, write_readme
from renet_core.runall.jobs import OPT_IN, REPO, discover_jobs, run_jobs, select_jobs
from renet_core.runall.plan import Reporter, make_plan, progress_line, reopen_featureless
from renet_core.runall.records import TOTAL, record_path, records_dir
from renet_core.runall.pool import train_ahead


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m renet_core.runall", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="demo", choices=PROFILE_NAMES)
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only the job NAME (repeatable): a whole job name (01_detection_bp4d), a "
                        "notebook's name (01_detection: every dataset), a glob ('01_*'), or the start of "
                        "exactly one job's name (04_relation); the only way to run an opt-in notebook "
                        "(--list marks them)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks at a time (one GPU each when there are several)")
    p.add_argument("--notebooks", default=str(REPO / "notebooks"))
    p.add_argument("--results", default=None,
                   help="tables folder (default results/, or results/<subdir> for a profile with an output_subdir: "
                        "the preview writes to results/preview/, never over the committed study)")
    p.add_argument("--figures", default=None, help="figures folder (default figures/, or figures/<subdir> likewise)")
    p.add_argument("--store", default=None, help="runs folder (default $RENET_CACHE/runs/<profile>)")
    p.add_argument("--folds", default=None, help="e.g. 1,2,3 (default: all three)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per notebook")
    p.add_argument("--train-jobs", type=int, default=0, metavar="N",
                   help="train the notebooks' runs first, N processes at a time (0: the notebooks train them)")
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
    args = p.parse_args(argv)
    args.results, args.figures = output_dirs(args.profile, args.results, args.figures)
    return args


def output_dirs(profile: str, results: str | None = None, figures: str | None = None) -> tuple[str, str]:
    """Where run_all writes tables and figures: the folders given, else ``results/`` and
    ``figures/`` of the repository, each under the profile's ``output_subdir`` when it has one
    (the preview: ``results/preview/``, ``figures/preview/``), so that a quick look never
    overwrites the committed study."""
    sub = profile_setting(profile, "output_subdir") or ""   # Path("results") / "" is results/ itself
    return results or str(REPO / "results" / sub), figures or str(REPO / "figures" / sub)


@contextlib.contextmanager
def signals_as_interrupts(received: list[int]):
    """SIGINT and SIGTERM (kill, a scheduler, a closed session) raise KeyboardInterrupt in the main
    thread, so the running notebooks are stopped, their processes ended and their status recorded
    as "interrupted" (:func:`renet_core.runall.jobs.run_jobs`); the signal goes to ``received``."""
    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None) -> int:
    args = parse_args(argv)
    all_jobs = discover_jobs(Path(args.notebooks), args.only)   # opt-in notebooks only when named
    jobs = select_jobs(all_jobs, args.only)
    if args.list:
        listed = jobs if args.only else discover_jobs(Path(args.notebooks), True)
        print("\n".join(j.name + (f"  (opt-in: --only {j.notebook.stem})" if j.notebook.stem in OPT_IN else "")
                        for j in listed))
        return 0
    if not jobs:
        print(f"no notebooks found in {args.notebooks}", file=sys.stderr)
        return 1
    results, figures = Path(args.results).resolve(), Path(args.figures).resolve()
    store = Path(args.store).resolve() if args.store else None
    extra: dict = {"store_dir": store and str(store), "device": args.device,
                   "folds": [int(f) for f in args.folds.split(",")] if args.folds else None}
    extra = {k: v for k, v in extra.items() if v is not None}
    names = [j.name for j in discover_jobs(Path(args.notebooks), True)]   # the README keeps opt-in results
    reopen_featureless([j.name for j in jobs], args.profile, store, folds=extra.get("folds"),
                       say=lambda line: print(line, flush=True))   # before the plan counts them done
    plan = make_plan([j.name for j in jobs], args.profile, store, folds=extra.get("folds"))
    print(progress_line(plan), flush=True)
    reporter = Reporter(plan, say=lambda line: print(line, flush=True))
    received: list[int] = []
    started, commit = time.perf_counter(), git_commit()   # the code the notebooks run (before they write)
    try:
        with signals_as_interrupts(received):
            if args.train_jobs:
                train_ahead(plan, args.train_jobs, say=lambda line: print(line, flush=True))
            reporter.start()
            outcome = run_jobs(jobs, args.profile, results, figures, args.jobs, extra, args.timeout, commit)
    except KeyboardInterrupt:
        reporter.stop()
        signum = received[0] if received else signal.SIGINT
        copy_store_rows(args.profile, results, store)
        readme = write_readme(results, names, args.profile, store)
        print(f"[runall] interrupted ({signal.Signals(signum).name}); the running notebooks were stopped "
              f"and recorded as interrupted; see {readme}", file=sys.stderr)
        return 128 + int(signum)
    reporter.stop()
    copy_store_rows(args.profile, results, store)
    if len(outcome) == len(all_jobs):   # a full study: its total time goes into the README
        write_text_atomic(record_path(results, TOTAL), json.dumps(
            {"seconds": round(time.perf_counter() - started, 1), "notebooks": len(outcome), "profile": args.profile,
             "commit": commit, "finished": dt.datetime.now().strftime(TIME_FORMAT),
             **({"store": str(store)} if store else {})}, indent=2))
    readme = write_readme(results, names, args.profile, store)
    failed = [r.job.name for r in outcome if r.status != "ok"]
    print(f"[runall] {len(outcome) - len(failed)} ok, {len(failed)} failed; see {readme}")
    if failed:
        print(f"[runall] failed: {', '.join(failed)} (logs in {records_dir(results)})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
