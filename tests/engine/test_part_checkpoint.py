"""Mid-epoch checkpoints (``part.pt``, :class:`renet_core.engine.resume.PartSaver`): a run cut
inside an epoch resumes at the step it reached and ends exactly where an uninterrupted run ends;
a part of a finished epoch is stale and removed; the setting is not in the run identity."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_experiment import toy_config, toy_run

from renet_core.engine import loop
from renet_core.engine.resume import PART, PartSaver, read_part
from renet_core.engine.store import ResultsStore
from renet_core.model import build_model


def test_a_run_cut_inside_an_epoch_resumes_at_its_step_with_the_same_result(tmp_path, monkeypatch, capsys):
    straight = toy_run(toy_config(tmp_path / "a", model="renet", epochs=2))

    cfg = toy_config(tmp_path / "b", model="renet", epochs=2)
    run_dir = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash())
    calls = {"due": 0}

    def due(self):   # one part: in the second epoch, after its third step (7 steps an epoch)
        calls["due"] += 1
        return calls["due"] == 7 + 3

    real_set_lr = loop.set_learning_rate

    def set_lr(optimizer, cfg_, epoch, step, steps_per_epoch):
        if epoch == 1 and step == 5:   # steps 4 and 5 trained after the part, then the kill
            raise KeyboardInterrupt("simulated kill inside epoch 2")
        real_set_lr(optimizer, cfg_, epoch, step, steps_per_epoch)

    monkeypatch.setattr(PartSaver, "due", due)
    monkeypatch.setattr(loop, "set_learning_rate", set_lr)
    with pytest.raises(KeyboardInterrupt):
        toy_run(cfg)
    monkeypatch.undo()
    assert (run_dir / PART).exists() and (run_dir / "last.pt").exists()
    assert not ResultsStore(cfg.results_dir).is_done(cfg.config_hash())
    kept = tmp_path / "part-copy.pt"
    shutil.copy(run_dir / PART, kept)

    capsys.readouterr()
    resumed = toy_run(cfg)
    assert "inside epoch 2, after step 3" in capsys.readouterr().out
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.rows["value"].tolist() == straight.rows["value"].tolist()
    for key in ("loss", "val", "loss_per_au", "val_per_au"):   # bit for bit (a held-out AU's NaN too)
        assert np.array_equal([h[key] for h in resumed.history], [h[key] for h in straight.history],
                              equal_nan=True), key
    assert not (run_dir / PART).exists()     # the finished epoch cleared it

    # the copy belongs to epoch 2, which has finished: stale, removed, nothing loaded
    shutil.copy(kept, run_dir / PART)
    model = build_model("renet", cfg.resolved_aus(), relation_mode="none")   # never loaded: stale
    optimizer = loop.make_optimizer(model, cfg)
    assert read_part(run_dir, 2, model, optimizer) is None and not (run_dir / PART).exists()


def test_a_damaged_part_is_removed_and_the_epoch_restarts(tmp_path, capsys):
    cfg = toy_config(tmp_path, model="resnet18")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / PART).write_bytes(b"half a checkpoint")
    model = build_model("resnet18", cfg.resolved_aus())
    assert read_part(run_dir, 0, model, loop.make_optimizer(model, cfg)) is None
    assert not (run_dir / PART).exists() and "restarts from its beginning" in capsys.readouterr().out


def test_checkpoint_seconds_is_not_in_the_run_identity_and_is_checked(tmp_path):
    cfg = toy_config(tmp_path)
    assert cfg.replace(checkpoint_seconds=0).config_hash() == cfg.config_hash()
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        cfg.replace(checkpoint_seconds=-1)
