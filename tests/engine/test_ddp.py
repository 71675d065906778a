"""One run across 2 processes with DistributedDataParallel (gloo backend, CPU), via torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd, torch
    sys.path.insert(0, {tests!r})
    from test_experiment import toy_config, toy_factory, toy_splits
    from renet_core.engine import run
    from pathlib import Path

    torch.set_num_threads(1)
    cfg = toy_config(Path({tmp!r}), model="renet", epochs=2, device="cpu")
    result = run(cfg, splits=toy_splits(), dataset_factory=toy_factory)
    import os
    Path({tmp!r}, "rank" + os.environ["RANK"]).write_text(f"{{os.environ['WORLD_SIZE']}} {{len(result.rows)}}")
    """
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ddp_two_gloo_processes_train_one_run(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True, text=True, env=env, timeout=110,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # both processes trained; only rank 0 evaluated and wrote the 3 AU rows
    assert (tmp_path / "rank0").read_text() == "2 3" and (tmp_path / "rank1").read_text() == "2 0"
    rows = pd.read_csv(tmp_path / "results" / "results.csv")
    assert len(rows) == 3 and rows["value"].notna().all()
    # the run finished its 2 epochs (assert_replicas_in_sync ran at the end of fit on both ranks)
    from renet_core.model import read_checkpoint

    last = read_checkpoint(next((tmp_path / "results" / "runs").glob("*/last.pt")))
    assert last["epoch"] == 2 and [h["epoch"] for h in last["train_state"]["history"]] == [1, 2]


def test_spread_runs_one_per_slot_reports_each_exit_code(tmp_path):
    from renet_core.cli.launch import spread_runs

    fake = tmp_path / "fake_python"  # stands in for `python`: records its GPU slot, fails on "bad"
    fake.write_text('#!/bin/sh\necho "gpu=$CUDA_VISIBLE_DEVICES args=$*"\ncase "$*" in *bad*) exit 3;; esac\n')
    fake.chmod(0o755)
    configs = [tmp_path / f"{name}.yaml" for name in ("a", "bad", "c")]
    for cfg in configs:
        cfg.write_text("{}\n")
    codes = spread_runs(configs, gpus=["0", "1"], python=str(fake), poll_s=0.05)
    assert codes == [0, 3, 0]
    logs = [cfg.with_suffix(".log").read_text() for cfg in configs]
    assert all("train --config" in log for log in logs)
    assert {log.split()[0] for log in logs} <= {"gpu=0", "gpu=1"}
