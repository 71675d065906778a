"""Loaders on tiny fixtures of every layout variant, prepare (resume, bad input) and AUDataset.

The fixtures are written here, in the real formats, so each variant listed for the loaders is
exercised: legacy and named BP4D headers, flat and nested label folders, intensity folder
spellings, 3-digit padding, a 9 code, an intensity file missing frames, DISFA's shorter SN010
files and right-camera spellings, BP4D+'s duplicated header, zip and unpacked images.
"""

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.data import AUDataset, describe_source, load_index, load_manifest, prepare
from renet_core.data.fixtures import (
    draw_face,
    face_landmarks,
    write_bp4d_mat,
    write_bp4dplus_mat,
    write_disfa_mat,
    write_jpeg,
    write_video,
)
from renet_core.data.labels import LabelFileError
from renet_core.data.layout import LayoutError

W, H = 160, 200
BP4D_AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]


def _points(k=0):
    return face_landmarks(W, H, 40 + 2 * k, angle_deg=3 * k, centre=(80 + k, 80))


def _legacy_occ(frames, values):
    """Legacy BP4D file: header 0..99, column N = AU N."""
    lines = [",".join(str(i) for i in range(100))]
    for f, v in zip(frames, values):
        row = [9] * 100
        row[0] = f
        for au, x in v.items():
            row[au] = x
        lines.append(",".join(map(str, row)))
    return "\n".join(lines) + "\n"


def _named_occ(frames, values, first="Frame", names=None):
    names = names or [f"AU{a:02d}" for a in BP4D_AUS]
    lines = [",".join([first] + names)]
    for f, v in zip(frames, values):
        lines.append(",".join([str(f)] + [str(v.get(a, 0)) for a in BP4D_AUS]))
    return "\n".join(lines) + "\n"


def _write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_bp4d(root, flat=False, images="BP4D-training", intensity="AU Intensity Codes3.0"):
    """F001/T1 (legacy header, frames 3-6, a 9 for AU2 at frame 4, frame 5's landmarks lost)
    and M009/T2 (named header, 3-digit image names, frames 1-3)."""
    root = Path(root)
    occ = root / ("AUCoding" if flat else "AUCoding/AU_OCC")
    f001 = [{1: 1, 2: 0, 12: 1}, {1: 0, 2: 9, 12: 1}, {1: 1, 2: 1, 12: 0}, {1: 0, 2: 0, 12: 0}]
    _write(occ / "F001_T1.csv", _legacy_occ([3, 4, 5, 6], f001))
    _write(occ / "M009_T2.csv", _named_occ([1, 2, 3], [{1: 1}, {4: 1}, {24: 1}]))
    pts = {}
    for f in range(1, 7):
        p = _points(f)
        pts[f] = p
        write_jpeg(root / images / "F001" / "T1" / f"{f:04d}.jpg", draw_face(p, W, H, f))
    write_bp4d_mat(root / "2DFeatures/F001_T1.mat",
                   [None if f == 5 else pts[f] for f in range(1, 7)])
    for f in range(1, 4):
        write_jpeg(root / images / "M009" / "T2" / f"{f:03d}.jpg", draw_face(_points(f), W, H))
    write_bp4d_mat(root / "2DFeatures/M009_T2.mat", [_points(f) for f in range(1, 4)])
    ints = root / intensity
    _write(ints / "AU06" / "F001_T1_AU06.csv", "3,0\n4,2\n6,9\n")  # frame 5 missing, 9 invalid
    for seq, frames in (("F001_T1", [3, 4, 5, 6]), ("M009_T2", [1, 2, 3])):
        for au in (10, 12, 14, 17):
            _write(ints / f"AU{au:02d}" / f"{seq}_AU{au:02d}.csv",
                   "".join(f"{f},{(f + au) % 6}\n" for f in frames))
    _write(ints / "AU06" / "M009_T2_AU06.csv", "1,5\n2,4\n3,3\n")
    return root


DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]


def make_disfa(root, right_dir="Video_RightCamera", n_video=None, levels=None):
    """SN001 (6 label rows) and SN010 (5 rows, shorter like the real SN010). Video frame k has
    uniform grey level ``levels[k]`` so a crop tells which decoded frame it came from."""
    root = Path(root)
    levels = levels or [20 + 35 * k for k in range(7)]
    for subject, rows in (("SN001", 6), ("SN010", 5)):
        for au in DISFA_AUS:
            text = "".join(f"{f},{(f * au) % 4 if au != 1 else f - 1}\n"
                           for f in range(1, rows + 1))
            _write(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt", text)
        count = n_video if n_video is not None else rows
        frames = [np.full((H, W, 3), levels[k], np.uint8) for k in range(count)]
        write_video(root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi", frames)
        write_video(root / right_dir / f"RightVideo{subject}_comp.avi", frames[::-1])
        lm = root / "Landmark_Points" / subject / "tmp_frame_lm"
        for f in range(1, rows + 1):
            if subject == "SN001" and f == 4:
                continue  # a missing landmark file, like SN031 frame 3631
            name = f"l0{f - 1:04d}_lm.mat" if f == 2 else f"{subject}_{f - 1:04d}_lm.mat"
            write_disfa_mat(lm / name, _points(f))
    return root


def make_bp4dplus(root):
    """F001 as a zip (3-digit, 1-based images), M002 as a folder (4-digit, 0-based images);
    headers with the duplicated first name ``1,1,2,4,...``."""
    root = Path(root)
    header = ",".join(["1"] + [str(a) for a in BP4D_AUS])
    rows = {"F001": [(1, 1), (2, 9), (3, 0)], "M002": [(1, 0), (2, 1)]}
    for subject, values in rows.items():
        body = "".join(f"{f}," + ",".join([str(v)] * len(BP4D_AUS)) + "\n" for f, v in values)
        _write(root / "AUCoding/AU_OCC" / f"{subject}_T1.csv", header + "\n" + body)
        _write(root / "AUCoding/AU_INT/AU12" / f"{subject}_T1_AU12.csv",
               "".join(f"{f},{f}\n" for f, _ in values))
        write_bp4dplus_mat(root / "2DFeatures" / f"{subject}_T1.mat",
                           {f: _points(f) for f, _ in values})
    (root / "2D+3D").mkdir(parents=True)
    with zipfile.ZipFile(root / "2D+3D" / "F001.zip", "w") as archive:
        for f in range(1, 4):
            import cv2
            data = cv2.imencode(".jpg", draw_face(_points(f), W, H, f))[1].tobytes()
            archive.writestr(f"F001/T1/{f:03d}.jpg", data)
    for k in range(0, 3):  # 0-based numbering: image k belongs to label frame k + 1
        write_jpeg(root / "2D+3D/M002/T1" / f"{k:04d}.jpg", draw_face(_points(k + 1), W, H))
    return root


# ----------------------------------------------------------------------------- BP4D

@pytest.mark.parametrize("flat,images,intensity", [
    (False, "BP4D-training", "AU Intensity Codes3.0"),
    (True, "Sequences_2D+3D", "AU-Intensity-Codes3.0"),
    (False, "BP4D-training", "AUCoding/AU_INT"),
])
def test_bp4d_variants_index_the_same_frames(tmp_path, flat, images, intensity):
    root = make_bp4d(tmp_path / "bp4d", flat=flat, images=images, intensity=intensity)
    with pytest.warns(UserWarning, match="missing from an intensity file"):
        index = load_index("bp4d", root)
    assert len(index) == 7
    assert index.attrs["dataset"] == "bp4d" and index.attrs["synthetic"] is False
    assert describe_source(index) == "BP4D (real)"
    f001 = index[index.subject == "F001"].set_index("frame")
    assert f001.loc[3, "AU1"] == 1.0 and f001.loc[4, "AU1"] == 0.0
    assert np.isnan(f001.loc[4, "AU2"])            # 9 = unknown, never a negative
    assert np.isnan(f001.loc[3, "AU4"])            # all-9 column in the legacy file
    assert f001.loc[4, "AU6_int"] == 2.0
    assert np.isnan(f001.loc[5, "AU6_int"])        # frame missing from the intensity file
    assert np.isnan(f001.loc[6, "AU6_int"])        # intensity code 9
    assert Path(f001.loc[3, "image_path"]).name == "0003.jpg"   # no offset
    assert (f001["landmark_index"] == f001.index - 1).all()
    m009 = index[index.subject == "M009"].set_index("frame")
    assert Path(m009.loc[2, "image_path"]).name == "002.jpg"    # 3-digit padding
    assert m009.loc[2, "AU4"] == 1.0 and m009.loc[3, "AU24"] == 1.0 and m009.loc[1, "AU24"] == 0
    assert index.attrs["problems"]["labelled frames missing from an intensity file (NaN)"] == 1


def test_bp4d_landmarks_follow_the_folder_images(tmp_path):
    """A folder holding only the coded frames: fit/pred entry k is the folder's k-th image."""
    root = make_bp4d(tmp_path / "bp4d")
    for f in (1, 2):
        (root / "BP4D-training/F001/T1" / f"{f:04d}.jpg").unlink()
    write_bp4d_mat(root / "2DFeatures/F001_T1.mat", [_points(f) for f in (3, 4, 5, 6)])
    with pytest.warns(UserWarning):
        index = load_index("bp4d", root)
    f001 = index[index.subject == "F001"].set_index("frame")
    assert f001["landmark_index"].tolist() == [0, 1, 2, 3]
    with pytest.warns(UserWarning):
        out = prepare("bp4d", root, tmp_path / "cache", size=64, workers=1, progress=False)
    assert len(out) == 7                                   # frame 5 is tracked in this file
    import cv2
    crop = cv2.imread(out.set_index(["subject", "frame"]).loc[("F001", 5), "crop"])
    red = (crop[:, :, 2] > 200) & (crop[:, :, 1] < 35) & (crop[:, :, 0] < 35)
    ys, xs = np.nonzero(red)                               # eyes at the aligned positions
    assert abs(ys.mean() - 20.6) < 1.5
    assert abs(xs[xs < 32].mean() - 20.6) < 1.5 and abs(xs[xs >= 32].mean() - 42.4) < 1.5


def test_bp4d_bad_header_and_bad_codes_name_the_file(tmp_path):
    root = make_bp4d(tmp_path / "bp4d")
    bad = root / "AUCoding/AU_OCC/F001_T1.csv"
    bad.write_text("frame,smile,frown\n1,0,1\n")
    with pytest.raises(LabelFileError, match=r"F001_T1\.csv.*(header|AU)"):
        load_index("bp4d", root)
    bad.write_text(_named_occ([1, 2], [{1: 1}, {1: 7}]))
    with pytest.raises(LabelFileError, match=r"F001_T1\.csv.*value 7.*codes"):
        load_index("bp4d", root)
    bad.write_text(_named_occ([1], [{}]))
    _write(root / "AU Intensity Codes3.0/AU06/F001_T1_AU06.csv", "1,6\n")
    with pytest.raises(LabelFileError, match=r"F001_T1_AU06\.csv.*value 6"):
        load_index("bp4d", root)


def test_missing_root_and_unrecognised_layout(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        load_index("bp4d", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    for name in ("bp4d", "disfa", "bp4dplus"):
        with pytest.raises(LayoutError, match="unrecognised"):
            load_index(name, tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_index("ck+", tmp_path / "empty")


def test_synthetic_marker_sets_attrs(tmp_path):
    root = make_bp4d(tmp_path / "bp4d")
    with pytest.warns(UserWarning):                  # a real copy's problems are warnings
        real = load_index("bp4d", root)
    (root / "SYNTHAU.json").write_text('{"synthetic": true, "size": "smoke"}')
    with warnings.catch_warnings():                  # SynthAU's are its deliberate quirks: recorded, silent
        warnings.simplefilter("error")
        index = load_index("bp4d", root)
    assert index.attrs["problems"] == real.attrs["problems"] and index.attrs["problems"]
    assert index.attrs["synthetic"] is True
    assert describe_source(index) == "SynthAU smoke, BP4D layout (synthetic)"


# ----------------------------------------------------------------------------- DISFA

@pytest.mark.parametrize("right_dir", ["Video_RightCamera", "Videos_RightCamera"])
def test_disfa_index_threshold_and_cameras(tmp_path, right_dir):
    root = make_disfa(tmp_path / "disfa", right_dir=right_dir)
    with pytest.warns(UserWarning, match="without a landmark file"):
        index = load_index("disfa", root)
    assert len(index) == 11                       # SN010's files are one row shorter
    assert index.groupby("subject").size().to_dict() == {"SN001": 6, "SN010": 5}
    sn1 = index[index.subject == "SN001"].set_index("frame")
    # AU1 intensity is frame - 1: frame 1 -> 0 absent, frame 2 -> 1 present (paper: > 0)
    assert sn1.loc[1, "AU1"] == 0.0 and sn1.loc[2, "AU1"] == 1.0 and sn1.loc[2, "AU1_int"] == 1
    assert (sn1["image_index"] == sn1.index - 1).all()
    assert Path(sn1.loc[1, "image_path"]).name == "LeftVideoSN001_comp.avi"
    assert Path(sn1.loc[2, "landmark_path"]).name == "l00001_lm.mat"   # fallback name
    assert sn1.loc[4, "landmark_path"] == ""
    assert "f-1" in index.attrs["frame_convention"]
    with pytest.warns(UserWarning):
        strict = load_index("disfa", root, disfa_threshold=2)
    s1 = strict[strict.subject == "SN001"].set_index("frame")
    assert s1.loc[2, "AU1"] == 0.0 and s1.loc[3, "AU1"] == 1.0
    assert strict.attrs["occurrence_rule"] == "AU present when intensity >= 2"
    with pytest.warns(UserWarning):
        right = load_index("disfa", root, camera="right")
    assert Path(right["image_path"].iloc[0]).parent.name == right_dir


def test_disfa_rejects_out_of_range_intensity(tmp_path):
    root = make_disfa(tmp_path / "disfa")
    _write(root / "ActionUnit_Labels/SN010/SN010_au4.txt", "1,0\n2,9\n")
    with pytest.raises(LabelFileError, match=r"SN010_au4\.txt.*value 9"):
        load_index("disfa", root)


def test_disfa_row_to_frame_convention_and_truncated_video(tmp_path):
    levels = [20 + 35 * k for k in range(7)]
    root = make_disfa(tmp_path / "disfa", n_video=4, levels=levels)  # videos end early
    with pytest.warns(UserWarning):
        out = prepare("disfa", root, tmp_path / "cache", size=64, workers=1, progress=False)
    summary = out.attrs["prepare_summary"]
    # SN001: frames 1-6, video has 4 frames, frame 4 has no landmarks -> 3 aligned
    assert summary["skipped"]["skipped: video ended early"] == 3  # SN001 5, 6 and SN010 5
    assert summary["skipped"]["skipped: no landmarks"] == 1
    assert summary["aligned"] == 3 + 4
    import cv2
    for row in out.itertuples():
        crop = cv2.imread(row.crop)
        # label frame f shows the decoded frame f - 1 (0-based)
        assert abs(float(crop[16:48, 16:48].mean()) - levels[row.frame - 1]) < 6


# ----------------------------------------------------------------------------- BP4D+

def test_bp4dplus_zip_folder_offsets_and_duplicated_header(tmp_path):
    root = make_bp4dplus(tmp_path / "bp4dp")
    with pytest.warns(UserWarning, match="missing intensity file"):  # only AU12 written
        index = load_index("bp4dplus", root)
    assert len(index) == 5
    f1 = index[index.subject == "F001"].set_index("frame")
    assert (f1["image_kind"] == "zip").all()
    assert f1.loc[2, "image_member"] == "F001/T1/002.jpg"        # 1-based images: f -> f
    assert np.isnan(f1.loc[2, "AU1"]) and f1.loc[1, "AU24"] == 1.0 and f1.loc[3, "AU12"] == 0
    assert f1.loc[3, "AU12_int"] == 3.0
    m2 = index[index.subject == "M002"].set_index("frame")
    assert Path(m2.loc[1, "image_path"]).name == "0000.jpg"      # 0-based images: f -> f-1
    assert (m2["image_offset"] == -1).all() and (f1["image_offset"] == 0).all()
    with pytest.warns(UserWarning):
        fixed = load_index("bp4dplus", root, image_offset=0)
    assert Path(fixed.set_index("frame").loc[1].query("subject == 'M002'")
                ["image_path"].iloc[0]).name == "0001.jpg"
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.warns(UserWarning):
        out = prepare("bp4dplus", root, tmp_path / "cache", size=64, workers=1, progress=False)
    assert len(out) == 5
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing unpacked


# ----------------------------------------------------------------------------- prepare

def test_prepare_is_resumable_and_says_so(tmp_path, capsys):
    root = make_bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        first = prepare("bp4d", root, cache, size=64, workers=1, progress=True)
    summary = first.attrs["prepare_summary"]
    assert summary == {"read": 7, "aligned": 6, "aligned_with_nearest_landmarks": 0,
                       "skipped": {"skipped: no landmarks": 1}}
    assert (cache / "manifest.csv").is_file()
    assert all(Path(c).is_file() for c in first["crop"])
    stamps = {c: Path(c).stat().st_mtime_ns for c in first["crop"]}
    capsys.readouterr()
    with pytest.warns(UserWarning):
        second = prepare("bp4d", root, cache, size=64, workers=1, progress=True)
    assert "nothing to do" in capsys.readouterr().out
    assert {c: Path(c).stat().st_mtime_ns for c in second["crop"]} == stamps
    pd.testing.assert_frame_equal(first, second)
    again = load_manifest(cache)
    assert again["crop"].tolist() == first["crop"].tolist()
    assert again.attrs["dataset"] == "bp4d" and again["AU1"].tolist() == first["AU1"].tolist()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="other settings"):
        prepare("bp4d", root, cache, size=96, workers=1, progress=False)


def test_prepare_resumes_an_interrupted_run(tmp_path, capsys):
    root = make_bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        prepare("bp4d", root, cache, size=64, workers=1, progress=False)
    # simulate a kill: one job's status and a crop gone, a temporary file left behind
    status = sorted((cache / "status").glob("M009*.csv"))[0]
    status.unlink()
    crop = sorted((cache / "crops/M009").rglob("*.jpg"))[0]
    crop.unlink()
    leftover = crop.parent / ".000002.jpg.1a2b3c4d.tmp"   # an atomic writer's temp name
    leftover.write_bytes(b"half")
    capsys.readouterr()
    with pytest.warns(UserWarning):
        out = prepare("bp4d", root, cache, size=64, workers=1, progress=True)
    text = capsys.readouterr().out
    assert "3 of 7 frames to align" in text and "removed 1 temporary" in text
    assert crop.is_file() and not leftover.exists() and len(out) == 6


def test_prepare_nearest_rule_and_parallel_workers(tmp_path):
    root = make_bp4d(tmp_path / "bp4d")
    with pytest.warns(UserWarning):
        out = prepare("bp4d", root, tmp_path / "cache", size=64, workers=2, progress=False,
                      lost_landmarks="nearest", max_gap=1)
    assert len(out) == 7
    assert out.attrs["prepare_summary"]["aligned_with_nearest_landmarks"] == 1
    manifest = pd.read_csv(tmp_path / "cache/manifest.csv")
    assert manifest.set_index(["subject", "frame"]).loc[("F001", 5), "status"].startswith(
        "aligned (nearest")


def test_prepare_counts_truncated_and_missing_images(tmp_path):
    root = make_bp4d(tmp_path / "bp4d")
    image = root / "BP4D-training/F001/T1/0004.jpg"
    image.write_bytes(image.read_bytes()[:300])
    (root / "BP4D-training/F001/T1/0006.jpg").unlink()
    with pytest.warns(UserWarning) as caught:
        out = prepare("bp4d", root, tmp_path / "cache", size=64, workers=1, progress=False)
    skipped = out.attrs["prepare_summary"]["skipped"]
    assert skipped == {"skipped: no landmarks": 1, "skipped: truncated image": 1,
                       "skipped: no image": 1}
    assert any("0004.jpg" in str(w.message) and "truncated" in str(w.message) for w in caught)
    leftovers = [p for p in (tmp_path / "cache").rglob(".*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == []                                # (the lock file is not a half-written one)


# ----------------------------------------------------------------------------- AUDataset

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_bp4d(tmp_path_factory.mktemp("ds") / "bp4d")
    with pytest.warns(UserWarning):
        return prepare("bp4d", root, tmp_path_factory.mktemp("cache"), size=64, workers=1,
                       progress=False)


def test_dataset_items_follow_the_contract(prepared):
    ds = AUDataset(prepared, BP4D_AUS, image_size=56)
    image, target, mask = ds[0]
    assert image.shape == (3, 56, 56) and image.dtype == torch.float32
    assert target.shape == mask.shape == (12,) and mask.dtype == torch.bool
    assert -2.2 < float(image.min()) and float(image.max()) < 2.7  # ImageNet-normalised
    row = prepared.iloc[0]
    expected = row[[f"AU{a}" for a in BP4D_AUS]].to_numpy(dtype=float)
    assert mask.tolist() == (~np.isnan(expected)).tolist()
    assert target.tolist() == np.nan_to_num(expected).tolist()
    torch.testing.assert_close(ds[0][0], image)       # test mode: deterministic centre crop
    inten = AUDataset(prepared, [6, 10, 12, 14, 17], task="intensity", image_size=56)
    assert inten[0][1].max() <= 5


def test_dataset_training_augmentation_and_memory_option(prepared):
    train = AUDataset(prepared, BP4D_AUS, train=True, image_size=56)
    views = set()
    for epoch in range(12):                             # random crop and flip, new each epoch
        train.set_epoch(epoch)
        views.add(tuple(train[0][0].flatten()[:50].tolist()))
        torch.testing.assert_close(train[0][0], train[0][0])   # ... and fixed by (seed, epoch, item)
    assert len(views) > 1
    memory = AUDataset(prepared, BP4D_AUS, image_size=56, in_memory=True)
    disk = AUDataset(prepared, BP4D_AUS, image_size=56)
    torch.testing.assert_close(memory[2][0], disk[2][0])


def test_dataset_duplicates_rare_au_positives(prepared):
    plain = AUDataset(prepared, BP4D_AUS)
    dup = AUDataset(prepared, BP4D_AUS, duplicate_aus=[1, 2, 15, 23, 24])
    positives = ((prepared[["AU1", "AU2", "AU15", "AU23", "AU24"]] == 1).any(axis=1)).sum()
    assert positives > 0 and len(dup) == len(plain) + positives
    # Table 8's other reading: once more per listed AU a frame is positive for
    both = prepared.copy()
    both.loc[both.index[0], ["AU1", "AU2"]] = 1                 # a frame with two rare AUs
    once = AUDataset(both, BP4D_AUS, duplicate_aus=[1, 2, 15, 23, 24])
    per_au = AUDataset(both, BP4D_AUS, duplicate_aus=[1, 2, 15, 23, 24], duplicate_rule="per_au")
    hits = int((both[["AU1", "AU2", "AU15", "AU23", "AU24"]] == 1).sum().sum())
    assert len(per_au) == len(plain) + hits and len(per_au) > len(once)
    with pytest.raises(ValueError, match="duplicate_rule"):
        AUDataset(prepared, BP4D_AUS, duplicate_aus=[1], duplicate_rule="twice")
    with pytest.raises(ValueError, match="crop"):
        AUDataset(prepared.drop(columns="crop"), BP4D_AUS)
    with pytest.raises(KeyError, match="AU99"):
        AUDataset(prepared, [99])
