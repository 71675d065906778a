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
    from renet_core.experiment import run
    from pathlib import Path

    torch.set_num_threads(1)
    cfg = toy_config(Path({tmp!r}), model="renet", epochs=2, device="cpu")
    result = run(cfg, splits=toy_splits(), dataset_factory=toy_factory)
    import os
    print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], "rows", len(result.rows), flush=True)
    """
)


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
    assert "rank 0 of 2 rows 3" in out and "rank 1 of 2 rows 0" in out, out[-3000:]
    rows = pd.read_csv(tmp_path / "results" / "results.csv")
    assert len(rows) == 3 and rows["value"].notna().all()
    # the run finished its 2 epochs (assert_replicas_in_sync ran at the end of fit on both ranks)
    assert out.count("epoch 2/2") == 1
