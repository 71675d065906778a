"""Run records between stores (:mod:`renet_core.engine.archive`): a finished run exported and
imported elsewhere is served there exactly as it was (rows, predictions, record) without its
checkpoints; a record whose config does not make its identity, or that lacks a file, is left out."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from test_experiment import toy_config, toy_run

from renet_core.cli.main import main
from renet_core.engine import archive
from renet_core.engine.store import ResultsStore


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cfg = toy_config(tmp_path_factory.mktemp("origin"), epochs=1)
    return cfg, toy_run(cfg)


def test_a_record_travels_and_is_served_as_the_run_it_names(finished, tmp_path):
    cfg, result = finished
    origin, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    assert archive.export_runs(origin, tmp_path / "archive") == [key]
    assert archive.export_runs(origin, tmp_path / "archive") == []          # unchanged: not rewritten
    record = tmp_path / "archive" / key
    assert sorted(p.name for p in record.iterdir()) == sorted([*archive.FILES, archive.ROWS, archive.DONE])
    assert all(json.loads((record / "config.json").read_text())[k] is None for k in archive.LOCAL_FIELDS)

    elsewhere = cfg.replace(results_dir=str(tmp_path / "elsewhere"))
    store = ResultsStore(elsewhere.results_dir)
    assert archive.import_runs(tmp_path / "archive", store) == ([key], {})
    assert archive.import_runs(tmp_path / "archive", store) == ([], {})      # already finished here
    assert store.done_summary(key) == origin.done_summary(key)
    ours, theirs = store.load_predictions(key), origin.load_predictions(key)
    assert set(theirs) - set(ours) == set(archive.FEATURES)              # Fig. 3's features stay behind
    assert all(np.array_equal(ours[k], theirs[k], equal_nan=ours[k].dtype.kind == "f") for k in ours)
    assert not any((store.run_dir(key) / name).exists() for name in archive.CHECKPOINTS)

    served, there = toy_run(elsewhere), toy_run(cfg)    # found by identity: neither trains again
    assert served.skipped and there.skipped
    pd.testing.assert_frame_equal(served.rows.reset_index(drop=True), there.rows.reset_index(drop=True))
    assert served.rows["value"].tolist() == result.rows["value"].tolist()


def test_fig3s_features_travel_when_asked(finished, tmp_path):
    cfg, _ = finished
    key = cfg.config_hash()
    archive.export_runs(ResultsStore(cfg.results_dir), tmp_path / "archive", features=True)
    with np.load(tmp_path / "archive" / key / "predictions.npz") as saved:
        assert set(archive.FEATURES) <= set(saved.files) and saved["features"].shape[0] == cfg.save_features


def test_a_record_that_is_not_its_run_is_left_out(finished, tmp_path):
    cfg, _ = finished
    key = cfg.config_hash()
    archive.export_runs(ResultsStore(cfg.results_dir), tmp_path / "archive")
    bad = tmp_path / "archive" / key
    values = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**values, "lr": values["lr"] * 2}))
    lacking = tmp_path / "archive" / "0123456789abcdef"
    shutil.copytree(bad, lacking)
    (lacking / "predictions.npz").unlink()

    store = ResultsStore(tmp_path / "elsewhere")
    with pytest.warns(UserWarning, match="not imported"):
        imported, skipped = archive.import_runs(tmp_path / "archive", store)
    assert imported == []
    assert "makes run" in skipped[key] and key in skipped[key]
    assert "predictions.npz" in skipped["0123456789abcdef"]
    assert not store.is_done(key) and store.load().empty


def test_an_import_replaces_an_unfinished_attempts_checkpoints(finished, tmp_path):
    cfg, _ = finished
    key = cfg.config_hash()
    archive.export_runs(ResultsStore(cfg.results_dir), tmp_path / "archive")
    store = ResultsStore(tmp_path / "elsewhere")
    store.run_dir(key).mkdir(parents=True)
    for name in archive.CHECKPOINTS:
        (store.run_dir(key) / name).write_bytes(b"another attempt's weights")
    assert archive.import_runs(tmp_path / "archive", store)[0] == [key]
    assert not any((store.run_dir(key) / name).exists() for name in archive.CHECKPOINTS)


def test_the_command_line_exports_imports_and_names_a_missing_folder(finished, tmp_path, capsys):
    cfg, _ = finished
    folder = tmp_path / "archive"
    assert main(["archive", "export", "--results-dir", cfg.results_dir, "--archive", str(folder)]) == 0
    assert "1 run record(s) written" in capsys.readouterr().out
    assert main(["archive", "import", "--results-dir", str(tmp_path / "new"), "--archive", str(folder)]) == 0
    assert "1 run record(s) imported" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no run archive here"):
        main(["archive", "import", "--results-dir", str(tmp_path / "new"), "--archive", str(tmp_path / "none")])
    with pytest.raises(ValueError, match="no finished run"):
        archive.export_runs(ResultsStore(cfg.results_dir), folder, keys=["ffffffffffffffff"])
    from renet_core.cli.main import fig3_runs     # what an export keeps features of by default
    from renet_core.study import board, configs

    table1 = board.claim_runs(configs.table_configs("demo"))[board.claims.SILHOUETTE_CLAIM]
    assert fig3_runs("demo") == [c.config_hash() for c in table1] and len(table1) == 6


def test_fig3_names_a_record_imported_without_its_features(monkeypatch):
    import importlib
    from types import SimpleNamespace

    reproduce = importlib.import_module("renet_core.study.reproduce")   # the module, not the function

    monkeypatch.setattr(reproduce, "run", lambda cfg: SimpleNamespace(rows=pd.DataFrame()))
    monkeypatch.setattr(reproduce.ResultsStore, "load_predictions", lambda self, key: {"y_true": np.zeros((2, 12))})
    with pytest.raises(ValueError, match="imported without them .*archive export --features"):
        reproduce.tsne_inputs(profile="smoke")


def test_fig3s_runs_keep_their_features_and_a_featureless_copy_is_completed(finished, tmp_path):
    """Only the runs named keep their features; a record exported without them earlier is
    rewritten when they are asked for (same done.json), and :func:`archive.featureless` tells an
    imported featureless record from the run that saved them."""
    cfg, _ = finished
    origin, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    folder = tmp_path / "archive"
    assert archive.export_runs(origin, folder, features=["ffffffffffffffff"]) == [key]   # not named: left behind
    assert not archive.has_features(folder / key / "predictions.npz")
    store = ResultsStore(tmp_path / "elsewhere")
    archive.import_runs(folder, store)
    assert archive.featureless(store, key) and not archive.featureless(origin, key)
    assert archive.export_runs(origin, folder, features=[]) == []                # nothing new to carry
    assert archive.export_runs(origin, folder, features=[key]) == [key]          # completed with them
    assert archive.has_features(folder / key / "predictions.npz")
    assert archive.export_runs(origin, folder, features=[key]) == []


def test_run_all_reopens_fig3s_featureless_runs_before_any_notebook_reads_them(finished, tmp_path, monkeypatch):
    from renet_core.runall import plan

    cfg, _ = finished
    key = cfg.config_hash()
    archive.export_runs(ResultsStore(cfg.results_dir), tmp_path / "archive")
    store = ResultsStore(tmp_path / "elsewhere")
    archive.import_runs(tmp_path / "archive", store)
    here = cfg.replace(results_dir=str(store.root))
    monkeypatch.setattr(plan, "feature_configs", lambda *a, **k: [here])
    said = []
    assert plan.reopen_featureless(["01_detection_bp4d"], "smoke", say=said.append) == []   # Fig. 3 not run
    assert store.is_done(key)
    assert plan.reopen_featureless(["01_detection_bp4d", plan.FEATURE_JOB], "smoke", say=said.append) == [key]
    assert not store.is_done(key) and store.done_rows().empty                   # trained again before it is read
    assert key in said[0] and "without its test features" in said[0]
    assert toy_run(here).skipped is False and not archive.featureless(store, key)
