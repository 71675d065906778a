"""A real photograph (scikit-image's astronaut, shipped in its wheel) through the default
detector, the landmark mapping and the training alignment (issue 34); no AU claims."""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from renet_core.data.align import eye_centres
from renet_core.predict import predict
from renet_core.predict.demo import real_face, registry_photograph, save_real_face_figure


def test_the_photograph_face_is_found_and_aligned_like_training(tmp_path):
    face = real_face()
    left, top, right, bottom = face["box"]
    assert face["confidence"] > 0.5 and 150 < left < right < 290 and 50 < top < bottom < 190
    crop = face["crop"]
    assert crop.shape == (256, 256, 3) and crop.std() > 20
    # the similarity transform levels the eyes and centres the face (section 4.3, JAA-Net's rule)
    eye_l, eye_r = eye_centres(face["points"])
    assert abs(eye_l[1] - eye_r[1]) < 1e-6 and eye_l[0] < 128 < eye_r[0]
    assert abs((eye_l[0] + eye_r[0]) / 2 - 127.5) < 20
    assert save_real_face_figure(tmp_path / "face.png", face).stat().st_size > 10_000


def test_predict_runs_the_detector_on_the_photograph(trained, tmp_path):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), registry_photograph()[:, :, ::-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = predict(photo, run=trained.result.run_dir, progress=False, keep_crops=True)
    assert any("SynthAU" in str(w.message) for w in caught)    # the output says the weights are synthetic
    assert table["success"].iloc[0] == 1 and table["confidence"].iloc[0] > 0.5
    assert table["confidence"].is_monotonic_decreasing        # face_id 0 is the surest face
    assert table.attrs["detector"].startswith("dlib")
    assert np.isfinite(table.filter(like="_p").iloc[0].to_numpy(dtype=float)).all()
