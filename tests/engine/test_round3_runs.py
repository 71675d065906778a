"""Issue 21 (reliability round 3), the engine: another run's checkpoint is never filed as this
run's, a damaged results store is rebuilt or named, two processes on one run share it, and
the smaller errors say what is wrong.

* case 3: a checkpoint carries its run identity; ``evaluate`` refuses another fold's, naming both;
* case 5: a results.csv with a lost row, cut short or lost is rebuilt from the saved predictions;
  a damaged predictions.npz is an error naming it;
* case 8: a second process on a run waits for the first, then reuses its result, and deletes no
  file the first is writing;
* case 12: 0 aligned frames, a file that is not a checkpoint, ``RENET_CACHE`` below a file;
* also seen: a local ``pretrained`` file enters the run identity by its content.

Most runs use the toy in-memory data of ``test_experiment`` (seconds).
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from test_experiment import toy_config, toy_factory, toy_run, toy_splits

from renet_core.engine import ExperimentConfig, evaluate, load_splits
from renet_core.engine import execute as experiment
from renet_core.engine.store import ResultsStore
from renet_core.model import build_model, read_checkpoint, save_checkpoint


def _no_data(*args, **kwargs):
    raise AssertionError("data was prepared although the checkpoint should have been refused first")


# ----------------------------------------------------------------------------- case 3

def test_evaluate_refuses_another_folds_checkpoint_naming_both_runs(tmp_path, monkeypatch):
    fold1, fold2 = toy_config(tmp_path), toy_config(tmp_path, fold=2)
    trained = toy_run(fold1)
    best = trained.run_dir / "best.pt"
    assert read_checkpoint(best)["config_hash"] == fold1.config_hash()
    store = ResultsStore(fold1.results_dir)
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "load_splits", _no_data)
        with pytest.raises(ValueError) as err:
            evaluate(fold2, checkpoint=best)
    text = str(err.value)
    assert fold1.config_hash() in text and fold2.config_hash() in text and "fold=1 (config: 2)" in text
    assert "allow_other_run=True" in text
    assert not store.is_done(fold2.config_hash())
    assert (store.load()["config_hash"] == fold2.config_hash()).sum() == 0
    # asked for explicitly: scored on fold 2's test frames, filed under no run
    rows = evaluate(fold2, checkpoint=best, splits=toy_splits(), dataset_factory=toy_factory,
                    allow_other_run=True)
    assert len(rows) == 3 and set(rows["config_hash"]) == {fold1.config_hash()}
    assert not store.is_done(fold2.config_hash()) and not (store.run_dir(fold2.config_hash()) / "done.json").exists()
    assert (store.load()["config_hash"] == fold2.config_hash()).sum() == 0
    # a checkpoint of an older version (no identity): judged by the config it carries
    payload = torch.load(best, weights_only=True)
    del payload["config_hash"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    with pytest.raises(ValueError, match="fold=1 .config: 2."):
        evaluate(fold2, checkpoint=old)
    own = evaluate(fold1, checkpoint=old, splits=toy_splits(), dataset_factory=toy_factory)
    np.testing.assert_allclose(own["value"].to_numpy(), trained.rows["value"].to_numpy())


# ----------------------------------------------------------------------------- case 5

def test_a_damaged_results_store_is_rebuilt_from_the_saved_predictions(tmp_path):
    cfg = toy_config(tmp_path)
    first = toy_run(cfg)
    store = ResultsStore(cfg.results_dir)
    original = first.rows.set_index("au")["value"]
    lines = store.csv.read_text().splitlines(keepends=True)

    def check(warns: bool):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = toy_run(cfg)
        assert again.skipped and len(again.rows) == 3
        pd.testing.assert_series_equal(again.rows.set_index("au")["value"], original, check_exact=False)
        assert any("cut short" in str(w.message) for w in caught) == warns
        assert (store.load()["config_hash"] == cfg.config_hash()).sum() == 3   # written back

    store.csv.write_text("".join(lines[:2] + lines[3:]))       # a lost row
    check(warns=False)
    store.csv.write_text("".join(lines)[:-12])                  # cut mid-line
    check(warns=True)
    store.csv.unlink()                                          # lost
    check(warns=False)
    # a damaged predictions file is named, with the fix
    npz = store.run_dir(cfg.config_hash()) / "predictions.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"predictions\.npz: the saved predictions of run .* are damaged"):
        store.load_predictions(cfg.config_hash())
    store.csv.unlink()
    with pytest.raises(ValueError, match=r"holds 0 of its 3 result rows.*predictions\.npz.*damaged"):
        toy_run(cfg)


# ----------------------------------------------------------------------------- case 8

def test_a_second_process_on_a_run_waits_and_reuses_it(tmp_path):
    cfg = toy_config(tmp_path, epochs=2)
    run_dir = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash())
    live = run_dir / ".best.pt.deadbeef.pt"     # the first process's checkpoint being written
    in_training, go, results, epochs_b = threading.Event(), threading.Event(), {}, []

    def slow_epoch(epoch, state):
        if epoch == 1:
            live.write_bytes(b"half a checkpoint")
            in_training.set()
            assert go.wait(60)

    first = threading.Thread(target=lambda: results.update(a=toy_run(cfg, on_epoch_end=slow_epoch)))
    second = threading.Thread(target=lambda: results.update(
        b=toy_run(cfg, on_epoch_end=lambda e, s: epochs_b.append(e))))
    first.start()
    assert in_training.wait(120)
    second.start()
    time.sleep(2.0)
    assert second.is_alive() and live.exists() and epochs_b == []   # waits; the file is untouched
    go.set()
    first.join(120)
    second.join(120)
    assert not results["a"].skipped and results["b"].skipped and epochs_b == []   # trained once
    np.testing.assert_allclose(results["a"].rows["value"], results["b"].rows["value"])


# ----------------------------------------------------------------------------- case 12

def test_no_aligned_frame_is_said_so(synth_roots, tmp_path):
    cfg = ExperimentConfig(dataset="bp4dplus", root=str(synth_roots["bp4d"]), cache_dir=str(tmp_path / "cache"),
                           image_size=16, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"0 of the \d+ labelled frames of bp4dplus .* could be aligned .*"
                                             r"skipped: no image.*a BP4D\+ copy"):
            load_splits(cfg)


def test_a_file_that_is_not_a_checkpoint_is_named_for_what_it_is(tmp_path):
    cases = {"predictions.npz": None, "notes.txt": b"hello, these are my notes\n", "empty.pt": b"",
             "model.pt": None, "cut.pt": None, "weights.pt": None}
    np.savez(tmp_path / "predictions.npz", y=np.zeros(3))
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")          # a whole pickled model
    good = save_checkpoint(tmp_path / "good.pt", build_model("resnet18", [1, 2]))
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:5000])
    torch.save(build_model("resnet18", [1, 2]).state_dict(), tmp_path / "weights.pt")
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    expected = {"predictions.npz": "a NumPy .npz archive", "notes.txt": "a text file", "empty.pt": "an empty file",
                "model.pt": "Python objects other than tensors", "cut.pt": "damaged or truncated",
                "weights.pt": "tensors (a state_dict? give it as pretrained=PATH)"}
    for name, words in expected.items():
        with pytest.raises(ValueError) as err:
            read_checkpoint(tmp_path / name)
        text = str(err.value)
        assert words in text and str(tmp_path / name) in text, text
        assert "weights_only" not in text and "Unpickl" not in text, text
    from renet_core.cli.main import main
    with pytest.raises(SystemExit, match="a NumPy .npz archive"):
        main(["evaluate", "--profile", "smoke", "--set", f"cache_dir={tmp_path}", "--checkpoint",
              str(tmp_path / "predictions.npz")])


def test_renet_cache_below_a_file_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RENET_CACHE", str(blocker / "cache"))
    with pytest.raises(ValueError, match=r"\$RENET_CACHE .*afile/cache lies below the file .*afile, not a folder"):
        ExperimentConfig()
    monkeypatch.setenv("RENET_CACHE", str(blocker))
    with pytest.raises(ValueError, match=r"\$RENET_CACHE .*afile is a file"):
        ExperimentConfig()
    from renet_core.cli.main import main
    with pytest.raises(SystemExit, match="bad config: the cache folder"):
        main(["train", "--profile", "smoke"])


# ----------------------------------------------------------------------------- also seen

def test_a_local_pretrained_file_is_identified_by_its_content(tmp_path):
    weights = tmp_path / "resnet18.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    cfg = toy_config(tmp_path, pretrained=str(weights))
    first = cfg.config_hash()
    moved = tmp_path / "elsewhere.pt"
    moved.write_bytes(weights.read_bytes())
    assert toy_config(tmp_path, pretrained=str(moved)).config_hash() == first   # the same weights
    torch.save({"conv1.weight": torch.ones(1)}, weights)                          # replaced in place
    assert toy_config(tmp_path, pretrained=str(weights)).config_hash() != first
    assert toy_config(tmp_path).config_hash() == toy_config(tmp_path, pretrained=None).config_hash()
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        toy_config(tmp_path, pretrained=str(tmp_path / "missing.pt")).config_hash()
