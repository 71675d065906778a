"""Reliability round 4 (issue 31): a table may only show finished, finite runs of the budget it
names, and a run's numbers may not depend on anything its identity leaves out.

Cases: 1 an unfinished run is never filed by ``evaluate``; 2 re-evaluating keeps the training
record; 3 rows of runs that are not done are not served; 4 non-finite weights or outputs stop a
run, which stays not done; 5 the thread count is held fixed (and is in the identity), so a run
trained ahead by ``run_all --train-jobs 2`` equals the notebook's; 7 ``gpu_check.sh`` without a
usable GPU fails at once, naming the CPU option; 8 a write that runs out of space names the file.
Case 6 (a program read from standard input) is in tests/data/test_data_round3.py, with case 9 of
round 3. The runs use the SynthAU smoke data with the smoke profile, cut to two steps an epoch.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.base import io as base_io
from renet_core.base.device import available_cores
from renet_core.engine import ExperimentConfig, evaluate, run
from renet_core.engine import loop as engine_loop
from renet_core.engine.evaluate import NonFiniteOutputError, NonFiniteWeightsError
from renet_core.engine.profiles import get_profile
from renet_core.engine.store import ResultsStore
from renet_core.model import read_checkpoint

REPO = Path(__file__).resolve().parents[2]


def smoke_config(synth_roots, base: Path, **changes) -> ExperimentConfig:
    values = get_profile("smoke")
    values.update(dataset="disfa", model="resnet18", root=str(synth_roots["disfa"]),
                  cache_dir=str(base / "cache"), results_dir=str(base / "results"), progress=False,
                  steps_per_epoch=2, save_features=0)
    values.update(changes)
    return ExperimentConfig(**values)


class Killed(Exception):
    """Stands for a kill after an epoch (the checkpoint of that epoch is on disk)."""


def _kill_after(epochs: int):
    def on_epoch_end(epoch, state):
        if epoch == epochs:
            raise Killed(f"killed after epoch {epoch}")
    return on_epoch_end


# ------------------------------------------------------------------------- cases 1 and 2

def test_evaluate_refuses_a_run_killed_before_its_last_epoch_and_train_finishes_it(synth_roots, tmp_path):
    cfg = smoke_config(synth_roots, tmp_path, epochs=2, patience=5)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    with pytest.raises(Killed):
        run(cfg, on_epoch_end=_kill_after(1))
    assert (store.run_dir(key) / "best.pt").exists() and not store.is_done(key)

    with pytest.raises(ValueError) as err:
        evaluate(cfg)
    text = str(err.value)
    assert key in text and "trained 1 of its 2 epochs" in text and "--no-file" in text
    assert not store.is_done(key) and store.load().empty            # nothing filed

    rows = evaluate(cfg, file=False)                                 # scored, not filed
    assert len(rows) == len(cfg.resolved_aus()) and not store.is_done(key) and store.load().empty

    result = run(cfg)                                                # not "already finished": it resumes
    assert not result.skipped and store.is_done(key)
    assert [e["epoch"] for e in store.done_summary(key)["history"]] == [1, 2]


def test_evaluate_files_a_run_killed_after_training_before_its_test(synth_roots, tmp_path, monkeypatch):
    cfg = smoke_config(synth_roots, tmp_path, epochs=2, patience=5)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    with pytest.raises(Killed):
        run(cfg, on_epoch_end=_kill_after(2))                        # both epochs trained, never tested
    rows = evaluate(cfg)
    summary = store.done_summary(key)
    assert store.is_done(key) and len(rows) == len(cfg.resolved_aus())
    assert [e["epoch"] for e in summary["history"]] == [1, 2] and summary["steps"] == 2 * cfg.steps_per_epoch
    assert summary["seconds"] > 0


def test_re_evaluating_a_finished_run_keeps_its_training_record(synth_roots, tmp_path):
    cfg = smoke_config(synth_roots, tmp_path)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    run(cfg)
    before = store.done_summary(key)
    assert before["history"] and before["steps"] > 0 and before["seconds"] > 0
    rows = evaluate(cfg)
    after = store.done_summary(key)
    for field in ("history", "steps", "seconds", "finished"):
        assert after[field] == before[field], field
    assert "rescored" in after and len(rows) == len(cfg.resolved_aus())


def test_a_smoke_run_records_its_environment(synth_roots, tmp_path):
    """Issue 32: every run writes where it computed beside its results, outside its identity."""
    from renet_core.base.environment import KEY_FIELDS, environment_key, read_environment

    cfg = smoke_config(synth_roots, tmp_path)
    result = run(cfg)
    record = read_environment(result.run_dir)
    assert record is not None and set(KEY_FIELDS) <= set(record) and record["key"] == environment_key(record)
    assert record["threads"] == cfg.resolved_threads() == 2 and record["precision"] == "float32"
    assert record["device"] == "cpu" and record["torch"] == torch.__version__.split("+")[0] and record["processor"]
    assert "commit" in record and "isa_flags" in record


# ----------------------------------------------------------------------------------- case 3

def test_rows_of_runs_that_are_not_done_are_not_served(synth_roots, tmp_path):
    from renet_core.runall.index import copy_store_rows

    cfg = smoke_config(synth_roots, tmp_path)
    other = cfg.replace(fold=2)
    store = ResultsStore(cfg.results_dir)
    run(cfg), run(other)
    assert set(store.done_rows()["config_hash"]) == {cfg.config_hash(), other.config_hash()}

    (store.run_dir(other.config_hash()) / "done.json").unlink()     # a --force retrain reopened it
    assert set(store.load()["config_hash"]) == {cfg.config_hash(), other.config_hash()}   # still in the file
    assert set(store.done_rows()["config_hash"]) == {cfg.config_hash()}                  # but not served
    out = copy_store_rows("smoke", tmp_path / "out", Path(cfg.results_dir))
    assert set(pd.read_csv(out, dtype={"config_hash": str})["config_hash"]) == {cfg.config_hash()}

    import shutil
    shutil.rmtree(store.run_dir(cfg.config_hash()))                 # a deleted run folder
    assert store.done_rows().empty


# ----------------------------------------------------------------------------------- case 4

def test_weights_that_become_nan_on_the_last_step_stop_the_run(synth_roots, tmp_path, monkeypatch):
    cfg = smoke_config(synth_roots, tmp_path, epochs=2, patience=5)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    original = engine_loop.train_epoch

    def poisoned(model, loader, optimizer, cfg_, epoch, *args, **kwargs):
        loss = original(model, loader, optimizer, cfg_, epoch, *args, **kwargs)
        if epoch == cfg_.epochs - 1:                                 # the last optimiser step breaks them
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return loss

    monkeypatch.setattr(engine_loop, "train_epoch", poisoned)
    with pytest.raises(NonFiniteWeightsError, match="epoch 2"):
        run(cfg)
    assert not store.is_done(key) and store.load().empty
    assert read_checkpoint(store.run_dir(key) / "last.pt")["train_state"]["epoch"] == 1   # the last good one


def test_a_checkpoint_with_nan_weights_is_not_scored(synth_roots, tmp_path):
    cfg = smoke_config(synth_roots, tmp_path)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    run(cfg)
    rows_before = store.load()
    best = store.run_dir(key) / "best.pt"
    payload = torch.load(best, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))
    torch.save(payload, best)
    with pytest.raises(NonFiniteOutputError, match=f"run {key}"):
        evaluate(cfg)
    assert store.load().equals(rows_before)                         # nothing filed over the good rows


# ----------------------------------------------------------------------------------- case 5

def test_the_thread_count_is_part_of_the_identity():
    base = ExperimentConfig(dataset="disfa", progress=False)
    assert base.threads == 2
    assert base.replace(threads=1).config_hash() != base.config_hash()
    assert base.replace(threads=0).resolved_threads() == available_cores()
    same = base.replace(threads=0).config_hash() == base.config_hash()
    assert same == (available_cores() == 2)                          # 0 is hashed as the count it means
    assert base.replace(eval_batch_size=7).config_hash() != base.config_hash()


@pytest.mark.slow
def test_a_run_trained_ahead_in_two_processes_equals_the_notebooks_run(synth_roots, tmp_path):
    from renet_core.runall.plan import Plan
    from renet_core.runall.pool import train_ahead

    ahead = smoke_config(synth_roots, tmp_path / "ahead", epochs=2, steps_per_epoch=4)
    inline = smoke_config(synth_roots, tmp_path / "inline", epochs=2, steps_per_epoch=4)
    assert ahead.config_hash() == inline.config_hash()
    lines: list[str] = []
    train_ahead(Plan(configs={ahead.config_hash(): ahead}), 2, say=lines.append)
    assert any("2 processes of 2 thread(s)" in line for line in lines), lines
    run(inline)                                                      # as a notebook trains it (every core)
    a = ResultsStore(ahead.results_dir).load_predictions(ahead.config_hash())
    b = ResultsStore(inline.results_dir).load_predictions(inline.config_hash())
    assert np.array_equal(a["scores"], b["scores"])                  # bit-identical


# ----------------------------------------------------------------------------------- case 7

@pytest.mark.parametrize("args, env", [([], {"CUDA_VISIBLE_DEVICES": ""}), (["--device", "cuda"], {})])
def test_gpu_check_without_a_usable_gpu_fails_at_once_naming_the_cpu_option(tmp_path, args, env):
    if torch.cuda.is_available() and not env:
        pytest.skip("this machine has a usable GPU")
    proc = subprocess.run([str(REPO / "tools" / "gpu_check.sh"), *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PY=sys.executable, **env))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "no usable GPU" in out or "CUDA is not available" in out
    assert "--device cpu --quick" in out and "== inference ==" not in out    # no workload was started
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- case 8

def test_a_checkpoint_write_that_runs_out_of_space_names_the_file(tmp_path, monkeypatch):
    """torch's own writer on a full device (``/dev/full``), whose error says neither the file nor
    the cause; the disk is reported full, as it is after such a failure."""
    target = tmp_path / "run" / "last.pt"
    target.parent.mkdir()
    target.write_bytes(b"the previous checkpoint")

    def to_dev_full(folder, prefix, suffix):
        path = folder / f"{prefix}0123abcd{suffix}"
        os.symlink("/dev/full", path)
        return path

    monkeypatch.setattr(base_io, "_create_temp", to_dev_full)
    monkeypatch.setattr(base_io.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(base_io.DiskFullError) as err:
        base_io.torch_save_atomic({"w": torch.zeros(100_000)}, target)
    text = str(err.value)
    assert err.value.errno == errno.ENOSPC and str(target) in text and "no space left" in text
    assert target.read_bytes() == b"the previous checkpoint"          # untouched
    assert [p.name for p in target.parent.iterdir()] == ["last.pt"]  # no partial file left


def test_a_text_write_that_runs_out_of_space_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "done.json"

    def to_dev_full(folder, prefix, suffix):
        path = folder / f"{prefix}0123abcd{suffix}"
        os.symlink("/dev/full", path)
        return path

    monkeypatch.setattr(base_io, "_create_temp", to_dev_full)       # Python's own ENOSPC, any free space
    with pytest.raises(base_io.DiskFullError, match="no space left on the disk of .*done.json"):
        base_io.write_text_atomic(target, json.dumps({"a": 1}) * 1000)
    assert not target.exists()


def test_other_write_errors_are_not_called_a_full_disk(tmp_path):
    with pytest.raises(ValueError, match="bad value"):
        with base_io.atomic_path(tmp_path / "x.txt"):
            raise ValueError("bad value")
    with pytest.raises(RuntimeError, match="unexpected") as err:   # a real disk with space left
        with base_io.atomic_path(tmp_path / "y.pt"):
            raise RuntimeError("unexpected pos 10 vs 0")
    assert not isinstance(err.value, base_io.DiskFullError)
