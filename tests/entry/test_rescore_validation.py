"""``tools/rescore_validation.py`` (docs/training-dynamics.md, "Issue 23"): rescoring a finished
run's kept weights on its validation subset gives back the recorded best validation score, and a
run not in the cache is refused by name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("rescore_validation", REPO / "tools" / "rescore_validation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    from renet_core.engine import ROOT_ENV

    for var in ROOT_ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


def test_an_unfinished_run_is_refused_with_its_identity():
    from renet_core.study.configs import table_configs

    cfg = table_configs("smoke")["table1"]["renet"][0]
    with pytest.raises(FileNotFoundError, match=cfg.config_hash()):
        _tool().rescore(cfg)


@pytest.mark.slow
def test_rescoring_the_kept_weights_gives_back_the_recorded_validation_score():
    from renet_core.engine import run
    from renet_core.study.configs import table_configs

    cfg = table_configs("smoke")["table1"]["renet"][0]
    run(cfg)
    scores = _tool().rescore(cfg)
    assert scores["val_subset"] == pytest.approx(scores["recorded_best"], abs=1e-6)
    assert scores["n_val_whole"] >= scores["n_val_subset"] > 0 and scores["n_test"] > 0
    assert 0.0 <= scores["test"] <= 1.0
