"""The guard that prediction aligns faces as training did (issue 34): a SynthAU test fold rendered
to one video file, its landmarks as an OpenFace 2.0 CSV, ``predict`` on it with a run trained on
SynthAU, against the study's own evaluation of that run on the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from renet_core.base import metrics
from renet_core.data.dataset import read_crop
from renet_core.engine.store import ResultsStore
from renet_core.predict import predict


def test_predict_on_a_rendered_video_matches_the_study_evaluation(trained):
    cfg, result, test = trained.cfg, trained.result, trained.test
    with pytest.warns(UserWarning, match="SynthAU"):
        table = predict(trained.video, run=result.run_dir, landmarks=trained.landmarks, progress=False,
                        keep_crops=True)
    assert len(table) == len(test) and table["success"].eq(1).all()
    assert table["frame"].tolist() == list(range(1, len(test) + 1))
    assert np.allclose(table["timestamp"], (table["frame"] - 1) / 25.0)
    names = [f"AU{a:02d}" for a in cfg.resolved_aus()]
    probs = table[[f"{n}_p" for n in names]].to_numpy()
    assert ((table[[f"{n}_c" for n in names]].to_numpy() == 1) == (probs >= cfg.threshold)).all()

    study = ResultsStore(cfg.results_dir).load_predictions(result.config_hash)
    assert probs.std(axis=0).max() > 1e-3   # the network answers differently per frame
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
