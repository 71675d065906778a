"""``python -m renet_core.bench gpu`` (``tools/gpu_check.sh``): one prepared check of a lent GPU.

In at most ~5 minutes on one GPU, every figure the paper profile needs before a real run:

1. ``inference``: section 4.7's 12-AU inference (:mod:`renet_core.model.speed`): the paper's loop
   of C conditioned passes against the batched pass, in bf16 and float32, channels_last, at
   batch 1 and a large batch; compared with the paper's 5.4 ms/image (185 images/s, 2080Ti).
2. ``training``: the paper-shape dry run (:mod:`renet_core.engine.dryrun`): ~50 training steps
   of ResNet-18 and of RE-Net with each strategy at 224 px on SynthAU, batch 100, validation,
   test (the all-AU pass), checkpoint and resume; s/step and peak memory.
3. ``loader``: the training loader's images/s per worker count (:mod:`renet_core.bench.loader`).
4. ``ddp``: one short run on two processes with ``torchrun`` where two GPUs exist (NCCL), on the
   CPU with gloo under ``--device cpu``; skipped, with the reason, on one GPU.

Writes every figure to ``<out>/gpu_check-<device>-<time>.json`` (default ``results/gpu_check``),
the device named in it. A section that fails is recorded with its error and the others still
run; the exit status is then 1. ``--device cpu --quick`` runs every section with a small
workload on the CPU in a few minutes (CI, and anyone without a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from renet_core.base.device import pick_device
from renet_core.bench import loader as loader_bench
from renet_core.engine import ExperimentConfig
from renet_core.engine.dryrun import device_name, dry_run
from renet_core.engine.dryrun import summary as dry_run_summary
from renet_core.model.speed import PAPER_MS_PER_IMAGE, dtype_problem, inference_times

#: Workloads: the full check on a GPU, and ``--quick`` (every section, small) for the CPU. The
#: quick training and loader sections run at half the paper's side (112 px items of 128 px
#: crops, one cache of crops for both): the same code, a quarter of the pixels; the paper's own
#: shapes on the CPU are ``train --profile paper --dry-run``'s (tests/engine/test_dryrun.py).
WORKLOADS = {
    "full": {"inference": {"size": 224, "batches": [1, 256], "repeats": 20, "budget": 10.0,
                           "dtypes": ["bf16", "float32"]},
             "training": {"steps": 50, "batch_size": 100, "image_size": 224, "synth_size": "demo"},
             "loader": {"workers": None, "batches": 30, "batch_size": 100, "epochs": 2, "image_size": 224},
             "ddp": {"steps": 20, "batch_size": 100, "image_size": 224, "model": "renet", "synth_size": "demo"}},
    "quick": {"inference": {"size": 112, "batches": [1, 4], "repeats": 2, "budget": 2.0,
                            "dtypes": ["float32"]},
              "training": {"steps": 2, "batch_size": 2, "image_size": 112, "synth_size": "smoke"},
              "loader": {"workers": [0, 2], "batches": 4, "batch_size": 50, "epochs": 2, "image_size": 112},
              "ddp": {"steps": 2, "batch_size": 4, "image_size": 64, "model": "renet", "synth_size": "smoke"}},
}
LOOP, BATCHED = "RE-Net, loop of C passes (paper)", "RE-Net, one batched pass"


def inference_section(device, work: dict) -> dict:
    """Section 4.7 on ``device``: ms/image of every variant, and the paper's 12-AU loop compared."""
    out = {"size": work["size"], "aus": 12, "channels_last": device.type == "cuda", "runs": []}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for dtype in work["dtypes"]:
        problem = dtype_problem(device, dtype)
        if problem:
            out["runs"].append({"dtype": dtype, "skipped": problem})
            continue
        rows = inference_times(device, work["size"], work["batches"], 12, dtype, out["channels_last"],
                               work["repeats"], work["budget"])
        for label, batch, seconds in rows:
            out["runs"].append({"dtype": dtype, "variant": label, "batch": batch, "ms_per_image": 1000 * seconds / batch,
                                "images_per_s": batch / seconds})
        print(f"inference {dtype}: " + "; ".join(f"{r['variant']} batch {r['batch']}: {r['ms_per_image']:.2f} ms/image"
                                                 for r in out["runs"] if r.get("dtype") == dtype and "variant" in r))
    timed = [r for r in out["runs"] if "variant" in r]
    paper = [r for r in timed if r["variant"] == LOOP and r["batch"] == 1]
    best = min((r for r in timed if r["variant"] in (LOOP, BATCHED)), key=lambda r: r["ms_per_image"], default=None)
    out["paper"] = {"ms_per_image": PAPER_MS_PER_IMAGE, "images_per_s": 1000 / PAPER_MS_PER_IMAGE,
                    "device": "NVIDIA GeForce RTX 2080 Ti", "setup": "12 AUs, loop of 12 passes, 224 px"}
    if paper:
        out["paper_loop_batch1_ms_per_image"] = {r["dtype"]: r["ms_per_image"] for r in paper}
    if best:
        out["fastest"] = best
        print(f"inference: paper {PAPER_MS_PER_IMAGE} ms/image (185 images/s, 2080Ti); here the paper's loop at batch 1: "
              + ", ".join(f"{d} {v:.2f}" for d, v in out.get("paper_loop_batch1_ms_per_image", {}).items())
              + f" ms/image; fastest {best['variant']} {best['dtype']} batch {best['batch']}: "
              f"{best['ms_per_image']:.3f} ms/image ({best['images_per_s']:.0f} images/s)")
    return out


def training_section(device, work: dict, cache: str) -> dict:
    """The paper-shape dry run on ``device``: every variant's s/step and peak memory."""
    overrides = {"synth_size": work["synth_size"], "batch_size": work["batch_size"], "image_size": work["image_size"]}
    if work["synth_size"] == "smoke":
        overrides["denominator"] = "abs"   # the smoke twin's few labels (engine/dryrun.py)
    cfg = ExperimentConfig.build(profile="paper", data="synthetic", device=str(device), cache_dir=cache,
                                 progress=False, **overrides).replace(pretrained=None)
    report = dry_run(cfg, steps=work["steps"])
    print(dry_run_summary(report))
    return report


def loader_section(device, work: dict, cache: str) -> dict:
    return loader_bench.benchmark(work["workers"], work["batches"], work["batch_size"], work["image_size"],
                                  device.type == "cuda",
                                  None, work["epochs"], "smoke", cache)


def ddp_section(device, work: dict, cache: str) -> dict:
    """One short run on two processes (``torchrun``): NCCL on two GPUs, gloo on the CPU."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU visible; DDP needs two"}
    if device.type not in ("cuda", "cpu"):
        return {"skipped": f"DDP is checked on CUDA (NCCL) or the CPU (gloo), not {device.type}"}
    with tempfile.TemporaryDirectory(prefix="renet_gpu_check_ddp_") as tmp:
        sets = {"data": "synthetic", "synth_size": work["synth_size"], "pretrained": "null", "epochs": 1,
                "steps_per_epoch": work["steps"], "batch_size": work["batch_size"], "image_size": work["image_size"],
                "val_max_frames": work["batch_size"], "save_features": 0, "cache_dir": cache, "device": device.type}
        if work["synth_size"] == "smoke":
            sets["denominator"] = "abs"   # the smoke twin's few labels (engine/dryrun.py)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   "-m", "renet_core", "train", "--profile", "paper", "--model", work["model"], "--results-dir", tmp,
                   "--no-progress"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        seconds = time.perf_counter() - start
        rows = Path(tmp, "results.csv")
        out = {"processes": 2, "backend": "nccl" if device.type == "cuda" else "gloo", "model": work["model"],
               "synth_size": work["synth_size"],
               "steps": work["steps"], "batch_size_per_process": work["batch_size"], "image_size": work["image_size"],
               "exit_code": proc.returncode, "seconds": seconds,
               "result_rows": sum(1 for _ in rows.open()) - 1 if rows.exists() else 0}
        print(f"ddp: 2 processes ({out['backend']}), exit {proc.returncode}, {seconds:.1f} s, {out['result_rows']} result rows")
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
        return out


class NoGPUError(RuntimeError):
    """The full check was asked for where no CUDA GPU can be used."""


def gpu_problem() -> str:
    """Why CUDA cannot be used here, in words (no GPU seen, a hidden one, a driver too old for
    this torch, a torch built without CUDA); "" when it can."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return "CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU"
    if not torch.cuda.is_available():
        return ("torch finds no usable CUDA GPU (none in this machine, or its driver does not match "
                f"torch {torch.__version__} built for CUDA {torch.version.cuda}; nvidia-smi shows the driver)")
    return ""


def require_gpu(dev: torch.device) -> None:
    """Refuse the full workload on anything but a CUDA GPU, before any work starts: on a CPU it
    would run far past a lent GPU's budget (issue 31, case 7). The message names the CPU option."""
    if dev.type == "cuda":
        return
    why = gpu_problem() or f"the device is {dev.type}"
    raise NoGPUError(f"gpu_check: no usable GPU: {why}. The full check is made for a lent GPU and would run for "
                     "hours on this device. For the small CPU check run: tools/gpu_check.sh --device cpu --quick")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "device"


def check(device: str = "auto", quick: bool = False, out_dir: str | os.PathLike = "results/gpu_check",
          sections=("inference", "training", "loader", "ddp")) -> tuple[dict, Path]:
    """Run the sections; return the figures and the JSON file written. The full workload runs on
    a CUDA GPU only (:func:`require_gpu`)."""
    dev = pick_device(device)
    if not quick:
        require_gpu(dev)
    work = WORKLOADS["quick" if quick else "full"]
    name = device_name(dev)
    report = {"device": name, "device_type": dev.type, "gpus": torch.cuda.device_count() if dev.type == "cuda" else 0,
              "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "workload": "quick" if quick else "full", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "sections": {}, "errors": {}, "seconds": {}}
    print(f"gpu check on {name} (torch {torch.__version__}, workload {report['workload']})")
    runners = {"inference": lambda c: inference_section(dev, work["inference"]),
               "training": lambda c: training_section(dev, work["training"], c),
               "loader": lambda c: loader_section(dev, work["loader"], c),
               "ddp": lambda c: ddp_section(dev, work["ddp"], c)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="renet_gpu_check_") as cache:
        for section in sections:
            print(f"\n== {section} ==", flush=True)
            t0 = time.perf_counter()
            try:
                report["sections"][section] = runners[section](cache)
            except Exception as exc:   # record it and go on: one lent GPU, every figure that can be had
                report["errors"][section] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            report["seconds"][section] = time.perf_counter() - t0
    report["seconds"]["total"] = time.perf_counter() - start
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_check-{_slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{len(report['sections'])} section(s) done, {len(report['errors'])} failed, "
          f"{report['seconds']['total']:.0f} s; figures in {path}")
    return report, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cuda, cuda:1, cpu")
    parser.add_argument("--quick", action="store_true", help="every section with a small workload (the CPU, CI)")
    parser.add_argument("--out", default="results/gpu_check", help="folder of the JSON [results/gpu_check]")
    parser.add_argument("--sections", default="inference,training,loader,ddp",
                        help="comma-separated subset of inference,training,loader,ddp")
    args = parser.parse_args(argv)
    try:
        report, _ = check(args.device, args.quick, args.out, [s for s in args.sections.split(",") if s])
    except (NoGPUError, RuntimeError) as exc:
        if not isinstance(exc, NoGPUError) and "requested but CUDA is not available" not in str(exc):
            raise
        print(f"{exc}" if isinstance(exc, NoGPUError) else
              f"gpu_check: {exc} ({gpu_problem()}). For the small CPU check run: tools/gpu_check.sh --device cpu "
              "--quick", file=sys.stderr)
        return 2
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
