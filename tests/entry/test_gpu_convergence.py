"""tools/gpu_convergence.py rehearsed on the CPU (the GPU run is one prepared call of a lent
device, issue 33): it trains the ladder's runs side by side as the study's own runs, packs each
finished run's record for the way back, and starts nothing that its time cannot fit."""

from __future__ import annotations

import json
import tarfile

import pytest

pytestmark = pytest.mark.usefixtures("fresh_cache")

SPEC = "bp4d occurrence renet --anchor 2 --below 0 --above 1"


def test_the_runs_train_side_by_side_and_their_records_come_back(tmp_path, load_tool, monkeypatch):
    tool = load_tool("gpu_convergence")
    monkeypatch.chdir(tmp_path)     # no results/archive here: nothing to import
    out = tmp_path / "out"
    args = ["--profile", "smoke", "--device", "cpu", "--spec", SPEC, "--folds", "1", "--jobs", "2",
            "--minutes", "3", "--step-seconds", "1", "--workers", "0", "--out", str(out)]
    assert tool.main(args) == 0
    summary = json.loads((out / "gpu_convergence.json").read_text())
    curves = tool._tool()
    planned = [c.config_hash() for rung in curves.ladder_runs("smoke", "bp4d", "occurrence", "renet", [1],
                                                              0, 1, 2)[1] for c in rung]
    assert sorted(r["key"] for r in summary["runs"]) == sorted(planned) and summary["not_started"] == 0
    assert all(r["rc"] == 0 and 0 <= r["best_val"] <= 1 for r in summary["runs"])
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == set(planned)
    assert all(f"{k}/done.json" in names and f"{k}/predictions.npz" in names for k in planned)

    assert tool.main(args) == 0          # a second call finds every run done: nothing to train
    again = json.loads((out / "gpu_convergence.json").read_text())
    assert again["runs"] == [] and again["not_started"] == 0


def test_nothing_starts_that_cannot_end_in_time(tmp_path, load_tool, monkeypatch):
    tool = load_tool("gpu_convergence")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    tool.main(["--profile", "smoke", "--device", "cpu", "--spec", SPEC, "--folds", "1", "--minutes", "0.01",
               "--step-seconds", "60", "--out", str(out)])
    summary = json.loads((out / "gpu_convergence.json").read_text())
    assert summary["runs"] == [] and summary["not_started"] == 2
    assert tool.default_specs()[0].startswith("bp4d occurrence resnet18")
