"""``python -m renet_core.bench predict`` runs and prints each stage (no timing is asserted)."""

from __future__ import annotations

import re

from renet_core.bench.__main__ import main


def test_bench_predict_prints_every_stage(capsys):
    assert main(["predict", "--sizes", "32", "--batch", "2", "--budget", "0.01"]) == 0
    out = capsys.readouterr().out
    for stage in ("detection", "alignment", "model      renet", "model      resnet18"):
        assert re.search(re.escape(stage) + r".*: +\d+\.\d (frames|faces)/s", out), (stage, out)
