"""Issue 12, items 5 ("bad frames") and 10 ("1-based MATLAB landmarks") of the data layer.

Bad frames: zero-byte and undecodable images are skipped, counted and named (never an OpenCV
assertion); a skipped frame whose file changed is checked again; a malformed landmark entry
drops only its frame; a landmark file shorter than the image list warns with both counts; the
per-reason summary prints with progress bars off.

1-based landmarks: the crop of a frame equals the alignment of (file landmarks - 1), for every
layout; ``landmark_origin=0`` reads the numbers as they are; the setting is part of the cache;
caches made before it are refused; SynthAU writes its landmark files 1-based.
"""

import json
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from renet_core.data import load_manifest, prepare
from renet_core.data.align import align_face
from renet_core.data.crops import JPEG_QUALITY
from renet_core.data.fixtures import (
    draw_face,
    face_landmarks,
    write_bp4d_mat,
    write_bp4dplus_mat,
    write_disfa_mat,
    write_jpeg,
    write_video,
)
from renet_core.data.landmarks import (
    LANDMARK_COUNT_MISMATCH,
    NO_LANDMARK_ENTRY,
    LandmarkFileError,
    read_bp4d_landmarks,
    read_bp4dplus_landmarks,
    read_disfa_landmarks,
)

W, H = 160, 200
HEADER = ",".join(str(i) for i in range(100))


def _points(k):
    return face_landmarks(W, H, 40 + 2 * k, angle_deg=3 * k, centre=(80 + k, 80))


def _occ(frames):
    rows = []
    for f in frames:
        row = [0] * 100
        row[0] = f
        rows.append(",".join(map(str, row)))
    return HEADER + "\n" + "\n".join(rows) + "\n"


def _bp4d(root, frames=(1, 2, 3, 4, 5, 6), entries=None, lost=(5,), origin=1):
    """BP4D F001/T1 with images ``frames`` and a v7.3 landmark file (None = lost entry)."""
    root = Path(root)
    (root / "AUCoding/AU_OCC").mkdir(parents=True, exist_ok=True)
    (root / "AUCoding/AU_OCC/F001_T1.csv").write_text(_occ(frames))
    images = {}
    for f in frames:
        images[f] = write_jpeg(root / "BP4D-training/F001/T1" / f"{f:04d}.jpg",
                               draw_face(_points(f), W, H, f))
    if entries is None:
        entries = [None if f in lost else _points(f) for f in frames]
    write_bp4d_mat(root / "2DFeatures/F001_T1.mat", entries, origin=origin)
    return root, images


def _prepare(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = prepare(*args, **kwargs)
    return out, [str(w.message) for w in caught]


def _status(cache):
    manifest = load_manifest(cache, all_rows=True)
    return dict(zip(manifest["frame"], manifest["status"]))


# ----------------------------------------------------------------------------- bad frames

def test_zero_byte_and_garbage_images_are_skipped_counted_named_and_summarised(tmp_path,
                                                                              capsys):
    root, images = _bp4d(tmp_path / "bp4d")
    images[4].write_bytes(b"")                        # a failed copy
    images[6].write_bytes(b"\xff\xd8 not really a JPEG \xff\xd9")
    out, messages = _prepare("bp4d", root, tmp_path / "cache", size=64, workers=1,
                             progress=False)
    assert out.attrs["prepare_summary"]["skipped"] == {"skipped: no landmarks": 1,
                                                       "skipped: unreadable image": 2}
    assert sorted(out["frame"]) == [1, 2, 3]
    assert any(str(images[4]) in m and "0 bytes" in m for m in messages)
    assert any(str(images[6]) in m and "not a decodable image" in m for m in messages)
    printed = capsys.readouterr().out                 # progress=False: the summary still prints
    assert "prepare summary" in printed and "2  skipped: unreadable image" in printed
    assert str(images[4]) in printed and str(images[6]) in printed


def test_zero_byte_zip_member_is_skipped_and_named(tmp_path):
    root = tmp_path / "bp4dp"
    (root / "AUCoding/AU_OCC").mkdir(parents=True)
    (root / "AUCoding/AU_OCC/F001_T1.csv").write_text("1,1,2\n1,0,1\n2,1,0\n3,0,0\n")
    write_bp4dplus_mat(root / "2DFeatures/F001_T1.mat", {f: _points(f) for f in (1, 2, 3)})
    (root / "2D+3D").mkdir()
    with zipfile.ZipFile(root / "2D+3D/F001.zip", "w") as archive:
        for f in (1, 2, 3):
            data = b"" if f == 2 else cv2.imencode(".jpg", draw_face(_points(f), W, H))[1]
            archive.writestr(f"F001/T1/{f:03d}.jpg", bytes(data))
    out, messages = _prepare("bp4dplus", root, tmp_path / "cache", size=64, workers=1,
                             progress=False, aus=[1, 2], intensity_aus=[])
    assert out.attrs["prepare_summary"]["skipped"] == {"skipped: unreadable image": 1}
    assert any("F001.zip:F001/T1/002.jpg" in m and "0 bytes" in m for m in messages)


def test_a_fixed_image_is_checked_again_and_unchanged_jobs_are_not(tmp_path, capsys):
    root, images = _bp4d(tmp_path / "bp4d")
    good = images[4].read_bytes()
    images[4].write_bytes(b"")
    cache = tmp_path / "cache"
    _prepare("bp4d", root, cache, size=64, workers=1, progress=False)
    assert _status(cache)[4] == "skipped: unreadable image"
    capsys.readouterr()
    _, messages = _prepare("bp4d", root, cache, size=64, workers=1, progress=True)
    assert "nothing to do" in capsys.readouterr().out   # nothing changed: nothing re-checked
    assert not any(str(images[4]) in m for m in messages)
    crops_before = {p: p.stat().st_mtime_ns for p in (cache / "crops").rglob("*.jpg")}
    images[4].write_bytes(good)                        # the file is fixed (size and mtime)
    out, _ = _prepare("bp4d", root, cache, size=64, workers=1, progress=True)
    assert "6 of 6 frames to align" in capsys.readouterr().out
    assert _status(cache)[4] == "aligned" and 4 in set(out["frame"])
    assert all(p.stat().st_mtime_ns == t for p, t in crops_before.items())  # kept, not redone
    # a skipped file replaced by another of the same size is checked too (its mtime moved)
    images[6].write_bytes(b"x" * 10)
    _prepare("bp4d", root, tmp_path / "cache2", size=64, workers=1, progress=False)
    stamp = images[6].stat()
    images[6].write_bytes(b"y" * 10)
    import os
    os.utime(images[6], ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    _, messages = _prepare("bp4d", root, tmp_path / "cache2", size=64, workers=1,
                           progress=False)
    assert any(str(images[6]) in m for m in messages)


def test_a_malformed_landmark_entry_drops_only_its_frame(tmp_path):
    entries = [_points(f) for f in range(1, 7)]
    entries[2] = np.ones((10, 2))                      # frame 3: 10 points, not 49
    entries[4] = None                                  # frame 5: lost by the tracker
    root, _ = _bp4d(tmp_path / "bp4d", entries=entries)
    out, messages = _prepare("bp4d", root, tmp_path / "cache", size=64, workers=1,
                             progress=False)
    assert sorted(out["frame"]) == [1, 2, 4, 6]
    status = _status(tmp_path / "cache")
    assert status[3] == "skipped: malformed landmarks" and status[5] == "skipped: no landmarks"
    assert any("F001_T1.mat" in m and "entry 2" in m and "(2, 10)" in m for m in messages)
    with pytest.raises(LandmarkFileError, match=r"F001_T1\.mat.*entry 2"):
        read_bp4d_landmarks(root / "2DFeatures/F001_T1.mat")   # strict without ``errors``
    errors = {}
    table = read_bp4d_landmarks(root / "2DFeatures/F001_T1.mat", errors=errors)
    assert table[2] is None and list(errors) == [2] and table[3] is not None
    # BP4D+ (MATLAB v5 struct): a malformed pts_2d, and a malformed frame number
    path = tmp_path / "F001_T1.mat"
    write_bp4dplus_mat(path, {1: _points(1), 2: np.ones((3, 3)), 3: _points(3)})
    errors = {}
    table = read_bp4dplus_landmarks(path, errors=errors)
    assert table[2] is None and table[1] is not None and table[3] is not None
    assert "frame 2" in errors[2] and str(path) in errors[2]


def test_a_short_landmark_file_warns_with_both_counts(tmp_path):
    root, _ = _bp4d(tmp_path / "bp4d", entries=[_points(f) for f in (1, 2, 3, 4)])
    out, messages = _prepare("bp4d", root, tmp_path / "cache", size=64, workers=1,
                             progress=False)
    short = [m for m in messages if "4 landmark entries for 6 images" in m]
    assert len(short) == 1 and "F001_T1.mat" in short[0] and "BP4D-training" in short[0]
    # BP4D (issue 21, case 2): which 4 of the 6 frames the entries belong to is unknown, so
    # the sequence is skipped, named, rather than matched by position
    assert "sequence F001 T1 is not aligned" in short[0] and len(out) == 0
    assert out.attrs["prepare_summary"]["skipped"] == {LANDMARK_COUNT_MISMATCH: 6}
    # BP4D+: a v5 ``fit`` without frame 3, the zip holds three images of T1
    root = tmp_path / "bp4dp"
    (root / "AUCoding/AU_OCC").mkdir(parents=True)
    (root / "AUCoding/AU_OCC/F001_T1.csv").write_text("1,1,2\n1,0,1\n2,1,0\n3,0,0\n")
    write_bp4dplus_mat(root / "2DFeatures/F001_T1.mat", {f: _points(f) for f in (1, 2)})
    (root / "2D+3D").mkdir()
    with zipfile.ZipFile(root / "2D+3D/F001.zip", "w") as archive:
        for f in (1, 2, 3):
            data = cv2.imencode(".jpg", draw_face(_points(f), W, H))[1].tobytes()
            archive.writestr(f"F001/T1/{f:03d}.jpg", data)
    out, messages = _prepare("bp4dplus", root, tmp_path / "cache2", size=64, workers=1,
                             progress=False, aus=[1, 2], intensity_aus=[])
    assert any("F001_T1.mat: 2 landmark entries for 3 images" in m and "F001.zip" in m
               for m in messages)
    assert out.attrs["prepare_summary"]["skipped"] == {NO_LANDMARK_ENTRY: 1}


def _disfa(root, n):
    """DISFA SN001 with ``n`` frames: a video and per-frame files holding ``_file_points``."""
    for au in (1, 2):
        path = root / "ActionUnit_Labels/SN001" / f"SN001_au{au}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{f},{f % 3}\n" for f in range(1, n + 1)))
    write_video(root / "Videos_LeftCamera/LeftVideoSN001_comp.avi",
                [draw_face(_points(f), W, H, f) for f in range(1, n + 1)])
    for f in range(1, n + 1):
        write_disfa_mat(root / "Landmark_Points/SN001/tmp_frame_lm" / f"SN001_{f - 1:04d}_lm.mat",
                        _file_points(f), origin=0)
    return root


def test_disfa_malformed_or_unreadable_landmark_file_drops_only_its_frame(tmp_path):
    root = _disfa(tmp_path / "disfa", 4)
    folder = root / "Landmark_Points/SN001/tmp_frame_lm"
    from scipy.io import savemat
    savemat(folder / "SN001_0001_lm.mat", {"pts": np.ones((10, 2))})   # frame 2: 10 points
    (folder / "SN001_0002_lm.mat").write_bytes(b"")                    # frame 3: empty file
    out, messages = _prepare("disfa", root, tmp_path / "cache", size=64, workers=1,
                             progress=False, aus=[1, 2], intensity_aus=[1, 2])
    assert sorted(out["frame"]) == [1, 4]
    status = _status(tmp_path / "cache")
    assert status[2] == "skipped: malformed landmarks"
    assert status[3] == "skipped: unreadable landmark file"
    assert any("SN001_0001_lm.mat" in m and "(10, 2)" in m for m in messages)
    assert any("SN001_0002_lm.mat" in m and "cannot read" in m for m in messages)


# ----------------------------------------------------------------------------- 1-based

def _expected_crop(image, points, size):
    crop, _ = align_face(image, points, size)
    data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


SIZE = 128  # the fixture faces are small: no reduced JPEG decode at this size, so exact


def _file_points(f):
    """Landmarks as a dataset file holds them: 1-based pixel coordinates of the drawn face."""
    return _points(f) + 1.0


@pytest.mark.parametrize("origin", [1, 0])
def test_bp4d_crop_equals_the_alignment_of_landmarks_minus_one(tmp_path, origin):
    root, images = _bp4d(tmp_path / "bp4d", entries=[_file_points(f) for f in range(1, 7)],
                         origin=0)                    # the file holds exactly these numbers
    raw = read_bp4d_landmarks(root / "2DFeatures/F001_T1.mat", origin=0)
    np.testing.assert_allclose(raw[2], _file_points(3))
    out, _ = _prepare("bp4d", root, tmp_path / "cache", size=SIZE, workers=1, progress=False,
                      landmark_origin=origin)
    assert len(out) == 6
    crops = dict(zip(out["frame"], out["crop"]))
    for f in (1, 3, 6):
        image = cv2.imread(str(images[f]), cv2.IMREAD_COLOR)
        crop = cv2.imread(crops[f], cv2.IMREAD_COLOR)
        expected = _expected_crop(image, _file_points(f) - origin, SIZE)
        np.testing.assert_array_equal(crop, expected)
        other = _expected_crop(image, _file_points(f) - (1 - origin), SIZE)
        assert np.abs(crop.astype(int) - other).mean() > 1   # the shift is visible
    assert json.loads((tmp_path / "cache/prepare.json").read_text())["landmark_origin"] == origin


def test_bp4dplus_and_disfa_crops_equal_the_alignment_of_landmarks_minus_one(tmp_path):
    # BP4D+: zip member images, MATLAB v5 landmarks
    root = tmp_path / "bp4dp"
    (root / "AUCoding/AU_OCC").mkdir(parents=True)
    (root / "AUCoding/AU_OCC/F001_T1.csv").write_text("1,1,2\n1,0,1\n2,1,0\n")
    write_bp4dplus_mat(root / "2DFeatures/F001_T1.mat", {f: _file_points(f) for f in (1, 2)},
                       origin=0)
    (root / "2D+3D").mkdir()
    encoded = {f: cv2.imencode(".jpg", draw_face(_points(f), W, H, f))[1].tobytes()
               for f in (1, 2)}
    with zipfile.ZipFile(root / "2D+3D/F001.zip", "w") as archive:
        for f, data in encoded.items():
            archive.writestr(f"F001/T1/{f:03d}.jpg", data)
    out, _ = _prepare("bp4dplus", root, tmp_path / "c1", size=SIZE, workers=1, progress=False,
                      aus=[1, 2], intensity_aus=[])
    for row in out.itertuples():
        image = cv2.imdecode(np.frombuffer(encoded[row.frame], np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(cv2.imread(row.crop),
                                      _expected_crop(image, _file_points(row.frame) - 1, SIZE))
    # DISFA: video frames, per-frame 66-point files
    root = _disfa(tmp_path / "disfa", 2)
    out, _ = _prepare("disfa", root, tmp_path / "c2", size=SIZE, workers=1, progress=False,
                      aus=[1, 2], intensity_aus=[1, 2])
    capture = cv2.VideoCapture(str(root / "Videos_LeftCamera/LeftVideoSN001_comp.avi"))
    decoded = [capture.read()[1] for _ in range(2)]
    capture.release()
    assert len(out) == 2
    for row in out.itertuples():
        np.testing.assert_allclose(read_disfa_landmarks(row.landmark_path),
                                   _file_points(row.frame) - 1)
        np.testing.assert_array_equal(
            cv2.imread(row.crop), _expected_crop(decoded[row.frame - 1],
                                                 _file_points(row.frame) - 1, SIZE))


def test_landmark_origin_is_checked_and_part_of_the_cache(tmp_path):
    root, _ = _bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="landmark_origin"):
        prepare("bp4d", root, cache, size=64, workers=1, progress=False, landmark_origin=2)
    _prepare("bp4d", root, cache, size=64, workers=1, progress=False)
    with pytest.raises(ValueError, match="other settings.*landmark_origin"):
        _prepare("bp4d", root, cache, size=64, workers=1, progress=False, landmark_origin=0)
    # a cache made before this change (it read the landmarks 0-based) is never reused
    settings = json.loads((cache / "prepare.json").read_text())
    del settings["version"], settings["landmark_origin"]
    (cache / "prepare.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="before landmarks were read 1-based.*not reused"):
        _prepare("bp4d", root, cache, size=64, workers=1, progress=False)


def test_synthau_writes_1_based_landmark_files(synth_roots):
    from renet_core.synth import Knobs, sample_sequences
    from renet_core.synth.face import IDX49
    from renet_core.synth.layouts import _render

    for layout, read in (("bp4d", lambda r, o: read_bp4d_landmarks(
                              r / "2DFeatures/F001_T1.mat", origin=o)[0]),
                         ("bp4dplus", lambda r, o: read_bp4dplus_landmarks(
                              r / "2DFeatures/F001_T1.mat", origin=o)[1]),
                         ("disfa", lambda r, o: read_disfa_landmarks(
                              r / "Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat",
                              origin=o))):
        seq = sample_sequences(layout, "smoke", 0)[0]
        assert seq.subject in ("F001", "SN001") and int(seq.frames[0]) >= 1
        _, marks, _ = _render(layout, 0, Knobs(), seq)
        drawn = marks[0][IDX49]                    # 0-based: where the face was drawn
        if layout == "bp4dplus":
            assert int(seq.frames[0]) == 1
        np.testing.assert_allclose(read(synth_roots[layout], 0), drawn + 1, atol=1e-9)
        np.testing.assert_allclose(read(synth_roots[layout], 1), drawn, atol=1e-9)


def test_experiment_config_passes_landmark_origin_to_prepare(tmp_path, monkeypatch):
    from renet_core import data
    from renet_core import engine as experiment

    seen = {}

    class Stop(Exception):
        pass

    def fake_prepare(name, root, cache, **kwargs):
        seen.update(kwargs, cache=Path(cache))
        raise Stop

    monkeypatch.setattr(data, "prepare", fake_prepare)
    (tmp_path / "root").mkdir()
    for origin in (1, 0):
        cfg = experiment.ExperimentConfig(dataset="bp4d", root=str(tmp_path / "root"),
                                          cache_dir=str(tmp_path / "c"), landmark_origin=origin)
        with pytest.raises(Stop):
            experiment.load_splits(cfg)
        assert seen["landmark_origin"] == origin
        seen.setdefault("caches", set()).add(seen["cache"].name)
    assert len(seen["caches"]) == 2                 # the two readings never share a cache
    default = experiment.ExperimentConfig()
    assert default.replace(landmark_origin=0).config_hash() != default.config_hash()
    assert default.replace(landmark_origin=1).config_hash() == default.config_hash()
