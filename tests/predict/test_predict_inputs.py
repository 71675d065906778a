"""``predict``'s bad input (issue 34): each a clear error naming the file, a damaged video keeping
the frames read before the damage, a frame without a face a row with success 0; the command line;
and the crops of a JPEG layout (BP4D's reduced decode) equal to the training crops."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.cli.main import main
from renet_core.data import prepare
from renet_core.data.dataset import read_crop
from renet_core.data.landmarks import read_bp4d_landmarks
from renet_core.predict import PredictInputError, predict
from renet_core.predict.align import aligned_crop, reduction_for
from renet_core.predict.frames import decode_image
from renet_core.predict.landmarks import LandmarkFileError, read_openface_csv


def quiet_predict(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return predict(*args, progress=False, **kwargs)


def test_a_video_damaged_midway_keeps_the_frames_read_before(trained, tmp_path):
    data = trained.video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.warns(UserWarning, match="cut.avi: the video ended after"):
        table = predict(cut, run=trained.result.run_dir, landmarks=trained.landmarks, progress=False)
    assert 0 < len(table) < len(trained.test)
    assert table["frame"].tolist() == list(range(1, len(table) + 1))
    full = quiet_predict(trained.video, run=trained.result.run_dir, landmarks=trained.landmarks)
    kept = full.iloc[: len(table)]
    assert np.allclose(table.filter(like="_p").to_numpy(), kept.filter(like="_p").to_numpy())
    assert "cut.avi" in table.attrs["problems"][0]


@pytest.mark.parametrize("content", [b"", b"this is not a video" * 50])
def test_an_unreadable_or_empty_video_is_an_error_naming_it(trained, tmp_path, content):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(content)
    with pytest.raises(PredictInputError, match="clip.mp4"):
        predict(bad, run=trained.result.run_dir, landmarks=trained.landmarks, progress=False)


def test_corrupt_images_and_empty_folders(trained, tmp_path):
    run_dir = trained.result.run_dir
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 garbage, not a JPEG")
    with pytest.raises(PredictInputError, match="photo.jpg: not a decodable image"):
        predict(bad, run=run_dir, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(PredictInputError, match="empty: folder with no images"):
        predict(empty, run=run_dir, progress=False)
    with pytest.raises(PredictInputError, match="missing.png: no such file"):
        predict(tmp_path / "missing.png", run=run_dir, progress=False)
    # in a folder: the damaged image is a row with success 0 and a problem naming it
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(trained.video))
    ok, first = capture.read()
    capture.release()
    cv2.imwrite(str(folder / "0001.png"), first)
    (folder / "0002.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    marks = pd.read_csv(trained.landmarks).iloc[[0, 0]].assign(frame=[1, 2])
    marks.to_csv(tmp_path / "marks.csv", index=False)
    with pytest.warns(UserWarning, match="0002.jpg: not a decodable image"):
        table = predict(folder, run=run_dir, landmarks=tmp_path / "marks.csv", progress=False)
    assert table["success"].tolist() == [1, 0] and table.filter(like="_p").iloc[1].isna().all()


def test_a_checkpoint_of_another_kind_is_refused_by_name(trained, tmp_path):
    npz = trained.result.run_dir / "predictions.npz"
    with pytest.raises(ValueError, match="predictions.npz.*NumPy .npz archive"):
        predict(trained.video, checkpoint=npz, landmarks=trained.landmarks, progress=False)
    state = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, state)
    with pytest.raises(ValueError, match="weights.pt is not a renet_core checkpoint.*state_dict"):
        predict(trained.video, checkpoint=state, landmarks=trained.landmarks, progress=False)
    with pytest.raises(FileNotFoundError, match="best.pt"):
        predict(trained.video, run=tmp_path, landmarks=trained.landmarks, progress=False)
    # a checkpoint file works when it carries its training config (best.pt does)
    table = quiet_predict(trained.video, checkpoint=trained.result.run_dir / "best.pt", landmarks=trained.landmarks)
    assert table["success"].all()


def test_frames_without_a_face_get_a_row_with_success_0(trained, tmp_path):
    marks = pd.read_csv(trained.landmarks)
    marks.loc[1, "success"] = 0                       # the tracker lost frame 2
    marks = marks.drop(index=2)                       # and has no row for frame 3
    marks.to_csv(tmp_path / "lost.csv", index=False)
    table = quiet_predict(trained.video, run=trained.result.run_dir, landmarks=tmp_path / "lost.csv")
    assert len(table) == len(trained.test)
    assert table["success"].tolist()[:4] == [1, 0, 0, 1]
    assert table.loc[1:2].filter(regex="^AU").isna().all().all()
    # the detector on a frame with no face (dlib finds none in a flat grey image)
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((120, 160, 3), 128, np.uint8))
    table = quiet_predict(grey, run=trained.result.run_dir)
    assert table[["frame", "face_id", "success"]].values.tolist() == [[1, 0, 0]]


def test_landmark_file_errors_name_the_file(trained, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"frame": [1], "x_0": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(LandmarkFileError, match="bad.csv: missing columns"):
        read_openface_csv(bad)
    with pytest.raises(ValueError, match="2 landmark file"):
        predict(trained.video, run=trained.result.run_dir, landmarks=[trained.landmarks] * 2, progress=False)
    spaced = tmp_path / "openface.csv"   # OpenFace pads its column names with spaces
    table = pd.read_csv(trained.landmarks)
    table.columns = [" " + c for c in table.columns]
    table.to_csv(spaced, index=False)
    assert len(read_openface_csv(spaced)) == len(trained.test)


def test_command_line_writes_openface_columns(trained, tmp_path, capsys):
    out, plot = tmp_path / "aus.csv", tmp_path / "aus.png"
    code = main(["predict", str(trained.video), "--run", str(trained.result.run_dir), "--landmarks",
                 str(trained.landmarks), "--out", str(out), "--plot", str(plot), "--no-progress"])
    assert code == 0 and plot.stat().st_size > 0
    table = pd.read_csv(out)
    aus = [f"AU{a:02d}" for a in trained.cfg.resolved_aus()]
    assert table.columns.tolist() == (["input", "frame", "face_id", "timestamp", "confidence", "success"]
                                      + [f"{a}_c" for a in aus] + [f"{a}_p" for a in aus])
    assert len(table) == len(trained.test)
    assert table[f"{aus[0]}_c"].dtype == np.int64 and table[f"{aus[0]}_c"].isin([0, 1]).all()   # OpenFace: 0/1
    assert "SynthAU" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="clip.mp4"):
        main(["predict", str(tmp_path / "clip.mp4"), "--run", str(trained.result.run_dir), "--landmarks",
              str(trained.landmarks), "--no-progress"])


def test_jpeg_layout_crops_equal_the_training_crops(synth_roots, tmp_path):
    """BP4D's frames are JPEG files, decoded reduced in training: a JPEG input gets the same
    decode, so its crop is the cached one (here at the smoke profile's 37 px)."""
    root = synth_roots["bp4d"]
    index = prepare("bp4d", root, tmp_path / "cache", size=37, progress=False)
    sequence = index[(index["subject"] == index["subject"].iloc[0]) & (index["task"] == index["task"].iloc[0])]
    entries = read_bp4d_landmarks(sequence["landmark_path"].iloc[0])
    diffs, reductions = [], []
    for row in sequence.itertuples():
        points = entries[int(row.landmark_index)]
        image, jpeg, _ = decode_image(Path(row.image_path))
        reduce = reduction_for("bp4d", points, 37)
        reductions.append(reduce)
        mine = aligned_crop(image, points, 37, reduce, jpeg).astype(float)
        diffs.append(np.abs(mine - read_crop(row.crop, 37)).mean())
    assert max(reductions) > 1 and max(diffs) < 0.5, (reductions, diffs)


def test_an_intensity_checkpoint_gives_intensity_columns(trained, tmp_path):
    """An intensity model (here untrained: only the columns and their range are checked) writes
    ``AUxx_r`` in [0, 5] and no occurrence columns."""
    from renet_core.model import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("renet", [6, 12], task="intensity", relation=np.eye(2))
    path = save_checkpoint(tmp_path / "intensity.pt", model,
                           config={"image_size": 32, "dataset": "disfa", "data": "synthetic"})
    table = quiet_predict(trained.video, checkpoint=path, landmarks=trained.landmarks)
    assert [c for c in table.columns if c.startswith("AU")] == ["AU06_r", "AU12_r"]
    assert table[["AU06_r", "AU12_r"]].stack().between(0, 5).all()
