"""A smoke-profile run trained on SynthAU's DISFA twin, once per session, and its test fold
rendered to one video file with its landmarks as an OpenFace 2.0 CSV (issue 34's known truth)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat

from renet_core.engine import ExperimentConfig, run
from renet_core.engine.execute import RunResult
from renet_core.engine.profiles import get_profile
from renet_core.engine.splits import load_splits
from renet_core.predict import write_openface_csv

IDX66 = [i for i in range(68) if i not in (60, 64)]   # the DISFA 66-point scheme in iBUG-68


@dataclass
class Trained:
    cfg: ExperimentConfig
    result: RunResult
    test: pd.DataFrame       # the run's test frames (the study's evaluation order)
    video: Path              # the test frames rendered to one video, in that order
    landmarks: Path          # their landmarks, an OpenFace 2.0 CSV
    tmp: Path


def disfa_landmarks68(path) -> np.ndarray:
    """A DISFA landmark file (66 points, 1-based) as 0-based iBUG-68 points; the two inner mouth
    corners, which DISFA lacks and the alignment does not use, are filled with the outer ones."""
    pts66 = np.asarray(loadmat(path)["pts"], dtype=float) - 1.0
    out = np.zeros((68, 2))
    out[IDX66] = pts66
    out[60], out[64] = out[48], out[54]
    return out


def render_video(test: pd.DataFrame, target: Path, fourcc: str = "FFV1") -> Path:
    """The test frames, in the test table's order, decoded from the SynthAU videos and written to
    one video file by cv2.VideoWriter (FFV1: lossless, so the frames are the training's)."""
    frames = []
    for path, rows in test.groupby("image_path", sort=False):
        capture = cv2.VideoCapture(path)
        decoded = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            decoded.append(image)
        capture.release()
        frames.extend(decoded[int(i)] for i in rows["image_index"])
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), 25.0, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {target}"
    for image in frames:
        writer.write(image)
    writer.release()
    return target


@pytest.fixture(scope="session")
def trained(synth_roots, tmp_path_factory) -> Trained:
    tmp = tmp_path_factory.mktemp("predict_truth")
    cfg = ExperimentConfig(**{**get_profile("smoke"), "dataset": "disfa", "model": "resnet18",
                              "root": str(synth_roots["disfa"]), "results_dir": str(tmp / "results"),
                              "cache_dir": str(tmp / "cache"), "progress": False, "epochs": 3, "patience": 3})
    result = run(cfg)
    test = load_splits(cfg).test
    # frames of one video are contiguous and in order, so one rendered video keeps the test order
    for _, rows in test.groupby("image_path", sort=False):
        assert rows["image_index"].is_monotonic_increasing
    assert test["image_path"].ne(test["image_path"].shift()).sum() == test["image_path"].nunique()
    video = render_video(test, tmp / "test_fold.avi")
    landmarks = write_openface_csv(tmp / "test_fold_landmarks.csv",
                                   [disfa_landmarks68(p) for p in test["landmark_path"]])
    return Trained(cfg, result, test, video, landmarks, tmp)
