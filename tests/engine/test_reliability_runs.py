"""Reliability of runs (issue 12, items 3, 6, 8 and 9): a checkpoint of another model is never
evaluated as this config's; a missing or corrupt best.pt is an error when the run starts, never a
silent test of the last epoch; temp files of killed writers are removed; atomically written files
get ordinary permissions; killing run_all ends its notebook's processes and records
"interrupted"; bf16 autocast on the CPU (the engine's path, and the benchmark) works or is
refused clearly.

The runs use the SynthAU smoke data (``synth_roots``) with the smoke profile, cut to two
training steps per epoch.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from renet_core.engine import ExperimentConfig, evaluate, run
from renet_core.engine import execute as experiment
from renet_core.engine.profiles import get_profile
from renet_core.engine.store import ResultsStore
from renet_core.model import build_model, read_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[2]


def smoke_config(synth_roots, base: Path, **changes) -> ExperimentConfig:
    values = get_profile("smoke")
    values.update(dataset="disfa", model="resnet18", root=str(synth_roots["disfa"]),
                  cache_dir=str(base / "cache"), results_dir=str(base / "results"), progress=False,
                  steps_per_epoch=2, save_features=0)
    values.update(changes)
    return ExperimentConfig(**values)


@pytest.fixture(scope="module")
def trained(synth_roots, tmp_path_factory):
    """One finished ResNet-18 smoke run: (config, result)."""
    cfg = smoke_config(synth_roots, tmp_path_factory.mktemp("reliability"))
    return cfg, run(cfg)


def _no_data(*args, **kwargs):
    raise AssertionError("data was prepared although the run should have been refused first")


# ----------------------------------------------------------------------- item 3: evaluate

def test_evaluate_refuses_a_checkpoint_of_another_model(trained, monkeypatch, tmp_path):
    cfg, result = trained
    resnet_best = result.run_dir / "best.pt"
    renet_cfg = cfg.replace(model="renet")
    renet_key = renet_cfg.config_hash()
    store = ResultsStore(cfg.results_dir)

    with monkeypatch.context() as patch:
        patch.setattr(experiment, "load_splits", _no_data)   # refused before any data work
        with pytest.raises(ValueError) as err:
            evaluate(renet_cfg, checkpoint=resnet_best)
        text = str(err.value)
        assert str(resnet_best) in text and "is model=resnet18" in text and "config says model=renet" in text
        assert "whose model=resnet18" in text and renet_key in text   # the fix, and this config's own run

        # a RE-Net checkpoint of another relation mode and head: both differences named
        aus = renet_cfg.resolved_aus()
        other = build_model("renet", aus, relation_mode="learnable", head="per_au")
        path = save_checkpoint(tmp_path / "other.pt", other, config={"model": "renet"})
        with pytest.raises(ValueError, match=r"is relation_mode=learnable, head=per_au, config says "
                                             r"relation_mode=fixed, head=shared"):
            evaluate(renet_cfg, checkpoint=path)
        # task and AUs
        with pytest.raises(ValueError, match=r"is task=occurrence, config says task=intensity"):
            evaluate(cfg.replace(task="intensity", aus=aus), checkpoint=resnet_best)
        with pytest.raises(ValueError, match=r"is aus=\[1, 2, 4, 6, 9, 12, 25, 26\], config says aus=\[1, 2\]"):
            evaluate(cfg.replace(aus=[1, 2]), checkpoint=resnet_best)
        # this config's own run was never trained: the default best.pt is missing, with the fix
        with pytest.raises(FileNotFoundError, match="train this config first"):
            evaluate(renet_cfg)
    assert not store.is_done(renet_key)
    assert (store.load()["config_hash"] == renet_key).sum() == 0

    # the matching checkpoint evaluates, and gives the run's own numbers
    rows = evaluate(cfg, checkpoint=resnet_best)
    assert np.allclose(rows["value"].to_numpy(), result.rows["value"].to_numpy(), equal_nan=True)


# ----------------------------------------------------------------------- item 6: best.pt

@pytest.mark.slow
def test_bad_best_checkpoint_fails_at_start_and_partial_files_are_removed(synth_roots, tmp_path, monkeypatch):
    cfg = smoke_config(synth_roots, tmp_path, epochs=3)
    run_dir = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash())

    def kill_after_2(epoch, state):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill after epoch 2")

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=kill_after_2)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    payload = read_checkpoint(last)
    assert payload["train_state"]["epoch"] == 2 and best.exists()
    # make it a run whose best epoch (1) is not its last one (2), as when epoch 2 did not improve
    payload["train_state"]["best_epoch"] = 1
    torch.save(payload, last)
    last_bytes = last.read_bytes()

    # temp files of writers killed mid-write, next to a file of the user's
    partial = [run_dir / ".last.pt.1a2b3c4d.pt", run_dir / ".predictions.npz.x9y8z7w6.npz",
               run_dir / ".done.json.0f0f0f0f.tmp"]
    for path in partial:
        path.write_bytes(b"half a file")
    (run_dir / "notes.txt").write_text("mine")

    epochs_trained = []
    monkeypatch.setattr(experiment, "load_splits", _no_data)
    for damage, reason in ((lambda: best.unlink(), "is missing"),
                           (lambda: best.write_bytes(b"\x00" * 100), "is unreadable")):
        damage()
        with pytest.raises(ValueError) as err:
            run(cfg, on_epoch_end=lambda e, s: epochs_trained.append(e))
        text = str(err.value)
        assert str(best) in text and reason in text and "best epoch (1 of 2 trained)" in text
        assert str(run_dir) in text and "force=True" in text
    assert epochs_trained == [] and last.read_bytes() == last_bytes   # nothing trained, nothing lost
    assert not any(p.exists() for p in partial) and (run_dir / "notes.txt").read_text() == "mine"
    monkeypatch.undo()

    # killed between writing last.pt and best.pt of its best epoch: best.pt is rebuilt from last.pt
    from renet_core.engine.resume import check_checkpoints

    payload["train_state"]["best_epoch"] = 2
    torch.save(payload, last)
    best.unlink()
    assert check_checkpoints(run_dir)["best_epoch"] == 2
    rebuilt = read_checkpoint(best)
    assert rebuilt["epoch"] == 2 and "optimizer" not in rebuilt
    assert all(torch.equal(rebuilt["state_dict"][k], v) for k, v in payload["state_dict"].items())

    # best.pt deleted while the run trains: an error at the end, not a test of the last epoch
    def delete_best(epoch, state):
        if epoch == 3:
            best.unlink()

    with pytest.raises(FileNotFoundError, match=r"best\.pt.*force=True"):
        run(cfg, on_epoch_end=delete_best)
    assert not ResultsStore(cfg.results_dir).is_done(cfg.config_hash())

    # the fix named in the errors: force retrains from scratch and finishes
    forced = run(cfg.replace(force=True))
    assert not forced.skipped and [h["epoch"] for h in forced.history] == [1, 2, 3]
    assert read_checkpoint(best)["epoch"] == read_checkpoint(last)["train_state"]["best_epoch"]


# --------------------------------------------------------- item 8: permissions, killing run_all

@pytest.mark.slow
def test_atomic_files_have_ordinary_permissions_and_killing_run_all_ends_its_notebook(tmp_path):
    psutil = pytest.importorskip("psutil")
    from renet_core.base.io import write_text_atomic

    old = os.umask(0o022)
    try:
        text = write_text_atomic(tmp_path / "a.json", "{}")
        ckpt = save_checkpoint(tmp_path / "b.pt", build_model("resnet18", [1, 2]))
        os.umask(0o077)
        private = write_text_atomic(tmp_path / "c.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(text.stat().st_mode) == 0o644 and stat.S_IMODE(ckpt.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600   # the umask is respected, as by open()

    # a notebook that runs until it is stopped; it reports its kernel's pid
    notebooks, results = tmp_path / "notebooks", tmp_path / "results"
    notebooks.mkdir()
    pid_file = tmp_path / "kernel.pid"
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
              "source": 'profile = "smoke"\n'},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n"}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    for i, cell in enumerate(cells):
        cell["id"] = f"cell{i}"
    (notebooks / "01_sleep.ipynb").write_text(json.dumps(nb))
    cmd = [sys.executable, "-m", "renet_core.runall", "--profile", "smoke", "--notebooks", str(notebooks),
           "--results", str(results), "--figures", str(tmp_path / "figures"), "--store", str(tmp_path / "store")]
    runall = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert runall.poll() is None, runall.stdout.read()
            assert time.time() < deadline, "the notebook's kernel did not start"
            time.sleep(0.5)
        children = psutil.Process(runall.pid).children(recursive=True)   # papermill, its kernel
        kernel = int(pid_file.read_text())
        assert kernel in {p.pid for p in children}
        runall.send_signal(signal.SIGTERM)
        out, _ = runall.communicate(timeout=120)
    finally:
        if runall.poll() is None:
            runall.kill()
    assert runall.returncode == 128 + signal.SIGTERM, out
    assert "interrupted" in out

    def gone(proc):
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    time.sleep(0.5)
    assert all(gone(p) for p in children), [p for p in children if not gone(p)]
    status = json.loads((results / "notebooks" / "records" / "01_sleep.status.json").read_text())
    assert status["status"] == "interrupted" and "interrupted" in status["error"]
    assert "01_sleep" in (results / "README.md").read_text()


# ---------------------------------------------------------------------------- item 9: bf16

class _Tiny(torch.utils.data.Dataset):
    def __init__(self, n=8, aus=(1, 2, 4), size=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = (torch.rand(n, len(aus), generator=g) > 0.5).float()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i], torch.ones(self.y.shape[1], dtype=torch.bool)


@pytest.mark.parametrize("kind,strategy", [
    ("resnet18", "one"), ("renet", "all"),
    ("renet", "one"),
])
def test_bf16_autocast_engine_path_on_the_cpu(kind, strategy, monkeypatch, tmp_path):
    from renet_core.base import ddp
    from renet_core.engine.evaluate import predict
    from renet_core.engine.loop import make_optimizer, train_epoch
    from renet_core.engine.precision import amp_dtype, autocast, uses_fp16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # the decisions, CUDA included (no GPU needed to ask)
    for supported, auto in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
        assert amp_dtype(cuda, "auto") == auto and uses_fp16(cuda, "auto") == (auto == torch.float16)
        assert amp_dtype(cuda, "bf16") == torch.bfloat16 and amp_dtype(cuda, "fp16") == torch.float16
        assert amp_dtype(cuda, "off") is None and not uses_fp16(cuda, "bf16")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "bf16") == torch.bfloat16
    assert amp_dtype(cpu, "fp16") is None and not uses_fp16(cpu, "fp16")
    with autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16

    # the engine's own training step and prediction with amp="bf16" on the CPU, both models
    aus = [1, 2, 4]
    cfg = ExperimentConfig(**{**get_profile("smoke"), "dataset": "disfa", "aus": aus, "model": kind,
                              "strategy": strategy, "amp": "bf16", "batch_size": 4, "steps_per_epoch": 2,
                              "results_dir": str(tmp_path), "progress": False})
    torch.manual_seed(0)
    model = build_model(kind, aus, relation=np.eye(3) * 0.5 + 0.5, denominator="abs")
    dtypes = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(model, cfg)
    loss = train_epoch(model, torch.utils.data.DataLoader(_Tiny(aus=aus), batch_size=4), optimizer, cfg, 0,
                       cpu, list(range(3)), ddp.DistInfo())
    assert np.isfinite(loss) and dtypes and set(dtypes) == {torch.bfloat16}   # autocast was on
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))   # backward and step ran
    assert all(p.dtype == torch.float32 for p in model.parameters())   # weights stay float32
    pred = predict(model, torch.utils.data.DataLoader(_Tiny(aus=aus), batch_size=4), cpu, cfg)
    assert pred["scores"].shape == (8, 3) and np.isfinite(pred["scores"]).all()


def test_bench_bf16_on_the_cpu_runs_or_is_refused_clearly(capsys):
    from renet_core.bench.model import dtype_problem, main

    problem = dtype_problem(torch.device("cpu"), "bf16")
    code = main(["--device", "cpu", "--dtype", "bf16", "--size", "32", "--aus", "2", "--batches", "1",
                 "--repeats", "1", "--budget", "0.1", "--skip-training"])
    out = capsys.readouterr()
    if problem is None:
        assert code == 0 and "dtype bf16" in out.out and "RE-Net, one batched pass" in out.out
    else:   # refused before any timing, saying why and what to use instead
        assert code == 2 and problem in out.err and "--dtype float32" in out.err
        assert "ms/batch" not in out.out
