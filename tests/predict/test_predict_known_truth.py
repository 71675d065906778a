"""The guard that prediction aligns faces as training did (issue 34): a SynthAU test fold rendered
to one video file, its landmarks as an OpenFace 2.0 CSV, ``predict`` on it with a run trained on
SynthAU, against the study's own evaluation of that run on the same frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.io import loadmat

from renet_core.base import metrics
from renet_core.data.dataset import read_crop
from renet_core.engine import ExperimentConfig, run
from renet_core.engine.profiles import get_profile
from renet_core.engine.splits import load_splits
from renet_core.engine.store import ResultsStore
from renet_core.predict import predict, write_openface_csv

IDX66 = [i for i in range(68) if i not in (60, 64)]   # the DISFA 66-point scheme in iBUG-68


def smoke_run(root, tmp, dataset="disfa"):
    cfg = ExperimentConfig(**{**get_profile("smoke"), "dataset": dataset, "model": "resnet18", "root": str(root),
                              "results_dir": str(tmp / "results"), "cache_dir": str(tmp / "cache"),
                              "progress": False, "epochs": 3, "patience": 3})
    return cfg, run(cfg)


def disfa_landmarks68(path) -> np.ndarray:
    """A DISFA landmark file (66 points, 1-based) as 0-based iBUG-68 points; the two inner mouth
    corners, which DISFA lacks and the alignment does not use, are filled with the outer ones."""
    pts66 = np.asarray(loadmat(path)["pts"], dtype=float) - 1.0
    out = np.zeros((68, 2))
    out[IDX66] = pts66
    out[60], out[64] = out[48], out[54]
    return out


def render_test_video(test, target, fourcc="FFV1"):
    """The test frames, in the test table's order, decoded from the SynthAU videos and written to
    one video file by cv2.VideoWriter."""
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
    assert writer.isOpened()
    for image in frames:
        writer.write(image)
    writer.release()
    return target


@pytest.fixture(scope="module")
def trained(synth_roots, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict_truth")
    cfg, result = smoke_run(synth_roots["disfa"], tmp)
    test = load_splits(cfg).test
    # frames of one video stay contiguous and in order (groupby keeps the first-seen order)
    order = test.groupby("image_path", sort=False, group_keys=False).apply(lambda g: g.sort_values("image_index"))
    assert order.index.tolist() == test.index.tolist()
    return cfg, result, test, tmp


def test_predict_on_a_rendered_video_matches_the_study_evaluation(trained):
    cfg, result, test, tmp = trained
    video = render_test_video(test, tmp / "test_fold.avi")
    csv = write_openface_csv(tmp / "test_fold_landmarks.csv", [disfa_landmarks68(p) for p in test["landmark_path"]])
    with pytest.warns(UserWarning, match="SynthAU"):
        table = predict(video, run=result.run_dir, landmarks=csv, progress=False, keep_crops=True)
    assert len(table) == len(test) and table["success"].eq(1).all()
    assert table["frame"].tolist() == list(range(1, len(test) + 1))
    names = [f"AU{a:02d}" for a in cfg.resolved_aus()]
    probs = table[[f"{n}_p" for n in names]].to_numpy()
    assert ((table[[f"{n}_c" for n in names]].to_numpy() == 1) == (probs >= cfg.threshold)).all()

    study = ResultsStore(cfg.results_dir).load_predictions(result.config_hash)
    # the same crops through the same network: the study's test probabilities, frame by frame
    assert np.abs(probs - study["scores"]).max() < 1e-4
    f1_predict = metrics.f1_per_au(study["y_true"], probs, threshold=cfg.threshold)
    f1_study = result.per_au("f1").reindex(cfg.resolved_aus()).to_numpy()
    assert np.abs(f1_predict - f1_study).max() <= 0.01, (f1_predict, f1_study)

    # the crops are the training crops (the cached JPEGs the study read)
    side = table.attrs["crops"][0].shape[0]
    training = np.stack([read_crop(p, side) for p in test["crop"]]).astype(float)
    mine = np.stack(table.attrs["crops"]).astype(float)
    mad = float(np.abs(mine - training).mean())
    print(f"mean absolute pixel difference, predict crops vs training crops: {mad:.4f} grey levels "
          f"({len(test)} frames, {side} px)")
    assert mad < 0.5
