"""A smoke-profile run trained on SynthAU's DISFA twin, once per session, and its test fold
rendered to one video file with its landmarks as an OpenFace 2.0 CSV (issue 34's known truth)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from renet_core.engine import ExperimentConfig, run
from renet_core.engine.execute import RunResult
from renet_core.engine.profiles import get_profile
from renet_core.engine.splits import load_splits
from renet_core.predict.synthvideo import render_synthau


@dataclass
class Trained:
    cfg: ExperimentConfig
    result: RunResult
    test: pd.DataFrame       # the run's test frames (the study's evaluation order)
    video: Path              # the test frames rendered to one video (FFV1, lossless), in that order
    landmarks: Path          # their landmarks, an OpenFace 2.0 CSV
    tmp: Path


@pytest.fixture(scope="session")
def trained(synth_roots, tmp_path_factory) -> Trained:
    tmp = tmp_path_factory.mktemp("predict_truth")
    cfg = ExperimentConfig(**{**get_profile("smoke"), "dataset": "disfa", "model": "resnet18",
                              "root": str(synth_roots["disfa"]), "results_dir": str(tmp / "results"),
                              "cache_dir": str(tmp / "cache"), "progress": False, "epochs": 3, "patience": 3})
    result = run(cfg)
    test = load_splits(cfg).test
    # frames of one video are contiguous, so one rendered video keeps the study's test order
    assert test["image_path"].ne(test["image_path"].shift()).sum() == test["image_path"].nunique()
    video, landmarks = render_synthau(test, tmp / "test_fold.avi", tmp / "test_fold_landmarks.csv")
    return Trained(cfg, result, test, video, landmarks, tmp)
