"""Run every reproduction notebook with papermill and write ``results/README.md``.

    python -m renet_core.runall --profile demo [--only NAME ...] [--jobs N]

Each notebook in ``notebooks/`` is executed (some once per dataset, e.g. ``01_detection`` for
BP4D, DISFA and BP4D+) with the parameters ``profile``, the output folders and the dataset
roots from ``$RENET_BP4D``, ``$RENET_DISFA``, ``$RENET_BP4DPLUS`` (a dataset that is not
configured falls back to its SynthAU twin, and its tables say so). Executed copies go to
``results/notebooks/``. A failing notebook does not stop the others; the exit status is non-zero
if any failed. ``--jobs N`` runs N notebooks at a time, spread over the GPUs with
``CUDA_VISIBLE_DEVICES`` when there are several.

This module also holds the small helpers the notebooks share (:func:`notebook_config`,
:func:`record_outputs`), so that the notebooks stay thin.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import queue
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .experiment import ROOT_ENV
from .io import write_text_atomic

REPO = Path(__file__).resolve().parent.parent
DATASET_NAMES = {"bp4d": "BP4D", "disfa": "DISFA", "bp4dplus": "BP4D+"}


# ------------------------------------------------------------------------- notebook helpers

def dataset_root(dataset: str, given: str | None = None) -> str | None:
    """The root of a real dataset: ``given``, else ``$RENET_<DATASET>``, else None (SynthAU twin)."""
    if dataset not in ROOT_ENV:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(ROOT_ENV)}")
    return given or os.environ.get(ROOT_ENV[dataset]) or None


def default_store(profile: str) -> Path:
    """Where the runs of a profile keep checkpoints, predictions and the tidy results.csv:
    ``$RENET_CACHE/runs/<profile>`` (default ``~/.cache/renet_core``), outside the repository
    because checkpoints are large; ``results/<profile>_runs.csv`` gets a copy of the rows."""
    cache = Path(os.environ.get("RENET_CACHE") or Path.home() / ".cache" / "renet_core")
    return cache / "runs" / profile


def notebook_config(profile: str, dataset: str, task: str = "occurrence", root: str | None = None,
                    store_dir: str | os.PathLike | None = None, **changes):
    """An :class:`renet_core.experiment.ExperimentConfig` for a notebook: the profile's settings
    (``renet_core.profiles``), real data where a root is configured, else the SynthAU twin, and
    ``changes`` (model, relation_mode, holdout_aus, ...) on top; ``None`` values are ignored."""
    from .experiment import ExperimentConfig
    from .profiles import get_profile

    values: dict[str, Any] = get_profile(profile)
    values.update(dataset=dataset, task=task, results_dir=str(store_dir or default_store(profile)))
    root = dataset_root(dataset, root)
    if root:
        values.update(root=str(root), data="real")
    else:
        if values.get("data") == "real":
            print(f"{DATASET_NAMES[dataset]}: no dataset root (set ${ROOT_ENV[dataset]}); using its SynthAU twin. "
                  "These results are NOT a reproduction of the paper.")
        values.update(data="synthetic", root=None)
    values.update({k: v for k, v in changes.items() if v is not None})
    return ExperimentConfig.from_dict(values)


def output_entry(name: str, path: str | os.PathLike, data_source: str, kind: str = "table") -> dict:
    """One line of a notebook's outputs manifest (read by :func:`write_readme`)."""
    return {"name": name, "path": str(path), "data_source": data_source, "kind": kind}


def record_outputs(manifest: str | os.PathLike | None, outputs: Sequence[dict]) -> None:
    """Write the notebook's outputs manifest (JSON, atomically); no-op when ``manifest`` is None
    (a notebook opened by hand)."""
    if manifest:
        write_text_atomic(manifest, json.dumps(list(outputs), indent=2))


def run_grid(settings: Sequence[dict], dataset: str, task: str = "occurrence", root: str | None = None, *,
             profile: str = "demo", folds: Sequence[int] = (1, 2, 3), store_dir=None, **changes):
    """Cross-validate every setting (e.g. ``{"model": "renet", "relation_mode": "learnable"}``) on
    ``dataset`` and return all their tidy result rows. Finished runs are reused, not retrained."""
    import pandas as pd

    from .experiment import cross_validate

    rows = []
    for setting in settings:
        cfg = notebook_config(profile, dataset, task, root, store_dir, **{**changes, **setting})
        print(f"{cfg.method_name()} on {dataset} ({task}), folds {list(folds)}", flush=True)
        rows.append(cross_validate(cfg, folds=folds))
    return pd.concat(rows, ignore_index=True)


def relation_matrices(roots: dict, profile: str = "demo", store_dir=None, **changes):
    """Fig. 2: the PCC relation of each dataset's occurrence labels over all labelled frames
    (section 3.3). Returns ``({name: (matrix, aus)}, {name: data source}, tidy DataFrame)``."""
    import pandas as pd

    from . import data
    from .experiment import dataset_root as resolve_root
    from .paper import PAPER_AUS
    from .relation import pearson_relation

    matrices, sources, tidy = {}, {}, []
    for ds in ("bp4d", "disfa", "bp4dplus"):
        cfg = notebook_config(profile, ds, "occurrence", roots.get(ds), store_dir, **changes)
        index = data.load_index(ds, resolve_root(cfg))
        aus = PAPER_AUS[(ds, "occurrence")]
        matrix = pearson_relation(index[[f"AU{a}" for a in aus]].to_numpy(dtype=float))
        name = DATASET_NAMES[ds]
        matrices[name], sources[name] = (matrix, aus), data.describe_source(index)
        tidy += [{"dataset": ds, "au_row": a, "au_col": b, "pcc": float(matrix[i, j]), "frames": len(index),
                  "data_source": sources[name]} for i, a in enumerate(aus) for j, b in enumerate(aus)]
    return matrices, sources, pd.DataFrame(tidy)


def tsne_inputs(dataset: str = "bp4d", root: str | None = None, fold: int = 1, *, profile: str = "demo",
                store_dir=None, folds=None, **changes) -> dict:
    """Fig. 3: saved test-frame features of RE-Net ([n, C, 512]) and ResNet-18 ([n, 512]) of one
    fold (training them if needed) and the frames' occurrence labels [n, C]."""
    from .experiment import run
    from .results import ResultsStore

    out: dict = {}
    for model in ("renet", "resnet18"):
        cfg = notebook_config(profile, dataset, "occurrence", root, store_dir, fold=fold, model=model, **changes)
        result = run(cfg)
        pred = ResultsStore(cfg.results_dir).load_predictions(cfg.config_hash())
        if "features" not in pred:
            raise ValueError(f"run {cfg.config_hash()} saved no features (save_features=0); set save_features > 0")
        out[model] = pred["features"].astype("float32")
        out["labels"] = pred["y_true"][pred["features_index"]]
        out["aus"] = [int(a) for a in pred["aus"]]
        rows = result.rows
        out["source"] = str(rows["data_source"].iloc[0]) if len(rows) and "data_source" in rows else dataset
    return out


#: Section 4.7 measurement settings per profile: input size, batch sizes, repeats, seconds per measurement.
EFFICIENCY = {"smoke": dict(size=32, batches=[2], repeats=2, budget=2.0),
              "demo": dict(size=224, batches=[1, 16], repeats=3, budget=15.0),
              "paper": dict(size=224, batches=[1, 100], repeats=10, budget=30.0)}


def measure_efficiency(profile: str = "demo", device: str | None = None):
    """Section 4.7: ms/image for 12 AUs on this machine -- RE-Net as a loop of 12 conditioned
    passes (the paper), RE-Net's batched pass, and ResNet-18's single pass
    (``renet_core.bench.model.bench_inference``); returns :func:`renet_core.report.efficiency_table`."""
    import pandas as pd
    import torch

    from .bench.model import bench_inference
    from .bench.model import parse_args as bench_args
    from .device import pick_device
    from .report import efficiency_table

    s = EFFICIENCY[profile]
    dev = pick_device(device)
    args = bench_args(["--size", str(s["size"]), "--batches", ",".join(map(str, s["batches"])),
                       "--repeats", str(s["repeats"]), "--budget", str(s["budget"]), "--skip-training"])
    args.dtype = "bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    args.channels_last = dev.type == "cuda"
    rows = bench_inference(args, dev)
    measured = pd.DataFrame([{"variant": v, "batch": b, "input": f"{s['size']}x{s['size']}",
                              "ms_per_image": 1000.0 * sec / b} for v, b, sec in rows])
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return efficiency_table(measured, device=f"{dev.type} ({name}, {args.dtype})")


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
              "manifest": str(results / "notebooks" / f"{job.name}.outputs.json"),
              **{f"{ds}_root": os.environ.get(var) or None for ds, var in ROOT_ENV.items()},
              **extra, **job.parameters}
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


def run_job(job: Job, params: dict, out_dir: Path, env: dict, timeout: float | None) -> JobResult:
    """Execute one notebook with papermill in a subprocess (its own environment, e.g.
    ``CUDA_VISIBLE_DEVICES``); the executed copy goes to ``out_dir/<name>.ipynb``."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    out_nb, log = out_dir / f"{job.name}.ipynb", out_dir / f"{job.name}.log"
    param_file = out_dir / f".{job.name}.params.yaml"
    write_text_atomic(param_file, yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "papermill", str(job.notebook), str(out_nb), "-f", str(param_file),
           "--cwd", str(job.notebook.parent), "--log-output", "--no-progress-bar", "-k", "python3"]
    start = time.perf_counter()
    try:
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = "failed"
        with open(log, "a") as fh:
            fh.write(f"\nrunall: timed out after {timeout} s\n")
    finally:
        param_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    error = "" if status == "ok" else _error_summary(log)
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
    job's status is written to ``results/notebooks/<job>.status.json`` as soon as it ends."""
    commit = commit or git_commit()
    extra = extra or {}
    gpus = gpu_count()
    slots: queue.Queue = queue.Queue()
    for i in range(max(1, n_jobs)):
        slots.put(str(i % gpus) if gpus > 1 else None)
    out_dir = results / "notebooks"

    def one(job: Job) -> JobResult:
        slot = slots.get()
        try:
            env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
            if slot is not None:
                env["CUDA_VISIBLE_DEVICES"] = slot
            print(f"[runall] start {job.name}" + (f" on GPU {slot}" if slot is not None else ""), flush=True)
            params = job_parameters(job, profile, results, figures, extra)
            result = run_job(job, params, out_dir, env, timeout)
            write_status(result, profile, results, commit)
            print(f"[runall] {result.status:6s} {job.name} ({result.seconds:.0f} s)"
                  + (f": {result.error}" if result.error else ""), flush=True)
            return result
        finally:
            slots.put(slot)

    if n_jobs <= 1:
        return [one(j) for j in jobs]
    with cf.ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return list(pool.map(one, jobs))


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
              "finished": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "gpu": result.gpu}
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


def readme_text(statuses: list[dict], results: Path, device: str) -> str:
    """The text of ``results/README.md``: every table and figure with its notebook's status, run
    time, profile, data source and commit."""
    from .report import markdown_grid

    n_failed = sum(s["status"] != "ok" for s in statuses)
    lines = ["# Regenerated tables and figures", "",
             "Written by `python -m renet_core.runall` (`./run_all.sh`). Each table is a CSV and a rendered "
             "markdown file with the paper's values, this run's values and their difference; figures are PNG.", "",
             f"- device of the last run: {device}",
             f"- notebooks: {len(statuses) - n_failed} ok, {n_failed} failed", ""]
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


def describe_device() -> str:
    from .device import pick_device

    device = str(pick_device())
    if device.startswith("cuda"):
        import torch

        return device + f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible)"
    return device + f" ({os.cpu_count()} cores)"


def write_readme(results: Path, names: Sequence[str]) -> Path:
    return write_text_atomic(results / "README.md", readme_text(load_statuses(results, names), results,
                                                                describe_device()))


def copy_store_rows(profile: str, results: Path, store: Path | None = None) -> Path | None:
    """Merge the profile's tidy result rows into ``results/<profile>_runs.csv``: rows of runs
    already there (same config hash, method, fold, AU, metric) are replaced, the others kept,
    so that ``--only`` on another machine or store never drops the rows of committed tables."""
    import pandas as pd

    from .io import to_csv_atomic

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
    outcome = run_jobs(jobs, args.profile, results, figures, args.jobs, extra, args.timeout, git_commit())
    copy_store_rows(args.profile, results, Path(args.store) if args.store else None)
    all_jobs = discover_jobs(Path(args.notebooks))
    readme = write_readme(results, [j.name for j in all_jobs])
    failed = [r.job.name for r in outcome if r.status != "ok"]
    print(f"[runall] {len(outcome) - len(failed)} ok, {len(failed)} failed; see {readme}")
    if failed:
        print(f"[runall] failed: {', '.join(failed)} (logs in {results / 'notebooks'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
