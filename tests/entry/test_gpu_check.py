"""The prepared check of a lent GPU, ``tools/gpu_check.sh``, run as CI and anyone without a GPU
runs it: ``--device cpu --quick``, every section (inference, training, loader, DDP) with a small
workload, its JSON in a temporary folder (never results/gpu_check from a CPU). What it proves is
that each section runs and reports its figures; the sizes are the quick workload's (training and
loader at 112 px), the paper's shapes being the dry run's test (tests/engine/test_dryrun.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gpu_check_quick_on_the_cpu_runs_every_section(tmp_path):
    env = dict(os.environ, PY=sys.executable, RENET_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        env.pop(var, None)
    proc = subprocess.run([str(REPO / "tools" / "gpu_check.sh"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=880)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    (path,) = (tmp_path / "out").glob("gpu_check-cpu-*.json")
    report = json.loads(path.read_text())
    assert report["device_type"] == "cpu" and report["device"].startswith("cpu") and report["workload"] == "quick"
    assert set(report["sections"]) == {"inference", "training", "loader", "ddp"} and not report["errors"]
    inference = report["sections"]["inference"]
    assert inference["paper"]["ms_per_image"] == 5.4 and inference["paper_loop_batch1_ms_per_image"]["float32"] > 0
    assert {r["variant"] for r in inference["runs"]} >= {"RE-Net, loop of C passes (paper)", "RE-Net, one batched pass"}
    training = report["sections"]["training"]
    assert set(training["variants"]) == {"resnet18", "renet (one)", "renet (all)"}
    # the dry run's code at half the paper's side (crops 128 px -> items 112 px, as 256 -> 224):
    # the paper's own shapes on the CPU are tests/engine/test_dryrun.py's, not repeated here
    assert training["crop_side"] == 128 and training["image_size"] == 112
    assert all(v["peak_bytes"] > 0 and v["s_per_step"][1] > 0 for v in training["variants"].values())
    loader = report["sections"]["loader"]
    assert {r["workers"] for r in loader["rows"]} == {0, 2} and loader["best_steady_images_per_s"] > 0
    assert loader["crop_side"] == 128 and loader["image_size"] == 112     # the training section's crops
    ddp = report["sections"]["ddp"]
    assert ddp["backend"] == "gloo" and ddp["exit_code"] == 0 and ddp["result_rows"] == 12
    print(f"gpu_check --device cpu --quick: {report['seconds']['total']:.0f} s ({report['seconds']})")
