"""Issue 33's ladders on a lent GPU: as many of the convergence runs as fit in a few minutes,
several processes at once on the one GPU, each finished run's record packed for the way back.

On 2 CPU cores the ladders cost 0.15-0.27 s a one-AU step (RE-Net, demo profile; Intel Xeon /
AMD EPYC), so RE-Net's BP4D ladder alone is tens of hours; on a GPU the same runs take minutes.
The runs are exactly the study's (the ladder of :mod:`convergence_curves`, same configs, same
identities; the device is where a run computes, recorded in its ``environment.json``, not a
setting of it), so the records join ``results/archive/demo`` and every later sitting, CPU or
GPU, reuses them.

Order: the variants of ``tools/convergence_all.sh`` in its order (``--spec`` to choose), each
ladder rung by rung, folds side by side; a run is started only when its estimated time fits in
what is left of ``--minutes`` (the estimate: its steps at the slowest seconds per step seen so
far, ``--step-seconds`` before any run has finished). A run still going at the deadline is
stopped and lost (its checkpoints stay on the machine). Variants that ``--check-from`` a budget
not yet recorded are skipped. Intensity runs need pingouin (carry it as a wheel where the GPU's
image lacks it).

Writes into ``--out`` (default ``$OUT``): ``records.tar.gz`` (the new runs' records, for
``tar xzf records.tar.gz -C results/archive/demo``), ``gpu_convergence.json`` (device, every run
tried: steps, seconds, exit code, best validation) and ``gpu_convergence.log``.

    python3 tools/gpu_convergence.py --minutes 8 --jobs 6            # on the GPU, from the repo root
    # a lent GPU's one call (device tool, repo root; about 1.5 min to start, 5 for the check):
    PY=python3 tools/gpu_check.sh --out $OUT; RENET_CACHE=/tmp/cache python3 tools/gpu_convergence.py --minutes 6 --out $OUT
    python tools/gpu_convergence.py --profile smoke --device cpu --minutes 2 --jobs 2 \\
        --spec "bp4d occurrence renet --anchor 2 --below 0 --above 1" --folds 1 --out /tmp/x   # a CPU rehearsal
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = ("import json, sys; from renet_core.engine import ExperimentConfig, run; "
          "run(ExperimentConfig.from_dict(json.load(open(sys.argv[1]))))")


def _tool():
    spec = importlib.util.spec_from_file_location("convergence_curves", HERE / "convergence_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_specs() -> list[str]:
    """The variants of tools/convergence_all.sh, in its order."""
    return re.findall(r'^\s+"([^"]+)"\s*$', (HERE / "convergence_all.sh").read_text(), flags=re.M)


def queue(tool, profile: str, specs: list[str], folds: list[int], say=print) -> list:
    """The configs still to train: each spec's ladder, rung by rung, in the specs' order."""
    p = argparse.ArgumentParser(add_help=False)
    for name in ("--below", "--above", "--anchor"):
        p.add_argument(name, type=int, default={"--below": 3, "--above": 5}.get(name))
    p.add_argument("--check-from", default=None)
    todo, seen = [], set()
    for spec in specs:
        dataset, task, variant, *rest = shlex.split(spec)
        a = p.parse_args(rest)
        check = False
        if a.check_from:
            try:
                a.anchor, check = tool.candidate(profile, task, a.check_from), True
            except SystemExit as exc:
                say(f"skipped {spec}: {exc}")
                continue
        _, runs, _ = tool.ladder_runs(profile, dataset, task, variant, folds, a.below, a.above, a.anchor, check)
        for cfg in (c for rung in runs for c in rung):
            key = cfg.config_hash()
            if key not in seen and not tool.ResultsStore(cfg.results_dir).is_done(key):
                seen.add(key)
                todo.append(cfg)
    return todo


def device_name(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import platform
    return f"cpu ({platform.processor() or platform.machine()})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="demo")
    p.add_argument("--spec", action="append", help="'DATASET TASK VARIANT [ladder options]' (default: convergence_all.sh's)")
    p.add_argument("--folds", default="1,2,3")
    p.add_argument("--minutes", type=float, default=8.0, help="stop starting runs that would end after this")
    p.add_argument("--jobs", type=int, default=6, help="runs at once on the one device")
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int, default=2, help="loader workers per run (not in the run identity)")
    p.add_argument("--step-seconds", type=float, default=0.05, help="the estimate before any run has finished")
    p.add_argument("--out", default=os.environ.get("OUT"))
    a = p.parse_args(argv)
    if not a.out:
        raise SystemExit("--out: where the records go (default $OUT, unset here)")
    deadline = time.time() + 60 * a.minutes
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "gpu_convergence.log", "a")

    def say(text: str) -> None:
        line = f"[gpu_convergence {time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    tool = _tool()
    from renet_core.engine import archive
    folder = Path("results") / "archive" / a.profile
    if folder.is_dir():
        from renet_core.engine import ExperimentConfig
        imported, _ = archive.import_runs(folder, tool.ResultsStore(ExperimentConfig.build(profile=a.profile).results_dir))
        say(f"{len(imported)} record(s) imported from {folder}")
    todo = queue(tool, a.profile, a.spec or default_specs(), [int(f) for f in a.folds.split(",")], say)
    say(f"{len(todo)} run(s) to train on {device_name(a.device)}, {a.jobs} at a time, {a.minutes:g} min")
    from renet_core.engine import load_splits
    prepared = set()
    work = Path(tempfile.mkdtemp(prefix="gpu_convergence-"))
    records = work / "records"
    rate, running, tried = a.step_seconds, [], []
    while todo or running:
        for job in [j for j in running if j["proc"].poll() is not None]:
            running.remove(job)
            cfg, key = job["cfg"], job["cfg"].config_hash()
            store = tool.ResultsStore(cfg.results_dir)
            job.update(rc=job["proc"].returncode, seconds=round(time.time() - job["start"], 1))
            if job["rc"] == 0 and store.is_done(key):
                archive.export_runs(store, records, [key])
                rate = max(rate if tried else 0.0, job["seconds"] / job["steps"])
                job["best_val"] = tool.point(cfg)["best_val"]
            say(f"run {key} ({job['name']}) exit {job['rc']} after {job['seconds']} s")
            tried.append({k: v for k, v in job.items() if k not in ("proc", "cfg", "start")})
        left = deadline - time.time()
        if left <= 0 and running:
            for job in running:
                job["proc"].terminate()
                say(f"run {job['cfg'].config_hash()} ({job['name']}) stopped at the deadline: lost")
            for job in running:
                job["proc"].wait()
            running = []
        while todo and len(running) < a.jobs and left > 0:
            cfg = next((c for c in todo if (tool.au_steps(c) or 0) * rate <= left), None)
            if cfg is None:
                break
            todo.remove(cfg)
            if cfg.data_identity() not in prepared:   # each dataset prepared once here, not by N runs at once
                load_splits(cfg)
                prepared.add(cfg.data_identity())
            key = cfg.config_hash()
            cfg = cfg.replace(device=a.device, num_workers=a.workers, progress=False)
            assert cfg.config_hash() == key, "device, loader workers and progress are not in the run identity"
            path = work / f"{cfg.config_hash()}.json"
            path.write_text(json.dumps(cfg.to_dict(), default=str))
            name = f"{cfg.method_name()} {cfg.dataset} {cfg.task} fold {cfg.fold} {tool.au_steps(cfg)} steps"
            proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], stdout=log, stderr=subprocess.STDOUT)
            running.append({"proc": proc, "cfg": cfg, "start": time.time(), "steps": tool.au_steps(cfg),
                            "name": name, "key": cfg.config_hash()})
            say(f"started {cfg.config_hash()} ({name}); estimate {tool.au_steps(cfg) * rate:.0f} s")
        if not running:   # nothing left, or nothing that fits in the time left
            break
        time.sleep(1.0)
    with tarfile.open(out / "records.tar.gz", "w:gz") as tar:
        for record in sorted(records.glob("*")) if records.is_dir() else []:
            tar.add(record, arcname=record.name)
    summary = {"device": device_name(a.device), "profile": a.profile, "jobs": a.jobs, "minutes": a.minutes,
               "runs": tried, "not_started": len(todo), "seconds_per_step_seen": rate}
    (out / "gpu_convergence.json").write_text(json.dumps(summary, indent=2, default=str))
    say(f"{sum(1 for t in tried if t.get('rc') == 0)} run(s) finished, {len(todo)} not started; "
        f"records in {out / 'records.tar.gz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
