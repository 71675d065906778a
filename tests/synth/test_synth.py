"""SynthAU (renet_core.synth): layouts readable by standard tools, determinism, label structure,
visible AU effects. All data here is synthetic."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io

from renet_core.synth import MARKER, read_marker, sample_labels, write_dataset
from renet_core.synth.aus import AU_INDEX, AUS
from renet_core.synth.face import Pose, render_face, sample_identity
from renet_core.synth.plans import BP4D_SUBJECTS, BP4DPLUS_SUBJECTS, DISFA_SUBJECTS

# standard 3-fold parts (ME-GraphAU / PyTorch-JAANet lists), transcribed for this test
BP4D_PARTS = [
    "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008".split(),
    "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005".split(),
    "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014".split(),
]
DISFA_PARTS = [
    "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016".split(),
    "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024".split(),
    "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004".split(),
]
BP4D_RATES = {1: 0.21, 2: 0.17, 4: 0.20, 6: 0.46, 7: 0.55, 10: 0.59, 12: 0.56, 14: 0.47,
              15: 0.17, 17: 0.34, 23: 0.17, 24: 0.15}


def _frame_files(folder: Path) -> dict[int, Path]:
    return {int(p.stem): p for p in folder.glob("*.jpg")}


# ----------------------------------------------------------------------------- markers
@pytest.mark.parametrize("layout", ["bp4d", "disfa", "bp4dplus"])
def test_marker_and_readme_say_synthetic(synth_roots, layout):
    root = synth_roots[layout]
    marker = json.loads((root / MARKER).read_text())
    assert marker["generator"] == "renet_core.synth" and marker["synthetic"] is True
    assert (marker["layout"], marker["size"], marker["seed"]) == (layout, "smoke", 0)
    assert "SYNTHETIC" in (root / "README_SYNTHETIC.txt").read_text()


# ----------------------------------------------------------------------------- BP4D
def test_bp4d_layout(synth_roots):
    root = synth_roots["bp4d"]
    occ_files = sorted((root / "AUCoding" / "AU_OCC").glob("*.csv"))
    subjects = {p.stem.split("_")[0] for p in occ_files}
    assert subjects == set(BP4D_SUBJECTS)
    for part in BP4D_PARTS:
        assert set(part) <= subjects
    seen_nine = seen_missing_int = False
    starts = {}
    for p in occ_files:
        df = pd.read_csv(p)
        assert list(df.columns) == [str(c) for c in range(100)]
        values = df.iloc[:, 1:].to_numpy()
        assert set(np.unique(values)) <= {0, 1, 9}
        seen_nine |= bool((values == 9).any())
        frames = df.iloc[:, 0].to_numpy()
        assert (np.diff(frames) == 1).all()
        starts[p.stem] = frames[0]
        s, t = p.stem.split("_")
        images = _frame_files(root / "BP4D-training" / s / t)
        assert set(images) == set(frames.tolist()), p
        for au in (6, 10, 12, 14, 17):
            ip = root / "AU Intensity Codes3.0" / f"AU{au:02d}" / f"{p.stem}_AU{au:02d}.csv"
            it = pd.read_csv(ip, header=None)
            assert it.shape[1] == 2 and set(it[1]) <= {0, 1, 2, 3, 4, 5, 9}
            assert set(it[0]) <= set(frames)
            seen_missing_int |= len(it) < len(frames)
            occ = df.set_index("0")[str(au)]
            known = it[it[1] != 9]
            assert ((known[1].to_numpy() >= 1) == (occ.loc[known[0]].to_numpy() == 1)).all()
    assert seen_nine and seen_missing_int
    assert starts["F001_T1"] == 2440 and starts["M007_T4"] == 26
    assert any(v > 1 for v in starts.values()) and any(v == 1 for v in starts.values())
    assert (root / "BP4D-training" / "M009" / "T8" / "001.jpg").is_file()  # 3-digit copy


def test_bp4d_landmarks_v73_match_the_face(synth_roots):
    root = synth_roots["bp4d"]
    lost = 0
    eye_vals, skin_vals = [], []
    for mat in sorted((root / "2DFeatures").glob("*.mat")):
        s, t = mat.stem.split("_")
        frames = sorted(pd.read_csv(root / "AUCoding" / "AU_OCC" / f"{mat.stem}.csv")["0"])
        images = _frame_files(root / "BP4D-training" / s / t)
        assert mat.read_bytes()[:10] == b"MATLAB 7.3"
        with h5py.File(mat, "r") as f:
            refs = f["fit/pred"][:, 0]
            assert len(refs) == len(frames)
            assert f[f["fit/pose/rot"][0, 0]][()].shape == (3, 3)
            for frame, ref in zip(frames, refs):
                arr = f[ref][()]
                if arr.size == 2:  # frame lost by the tracker: MATLAB empty
                    lost += 1
                    continue
                pts = arr.T
                assert pts.shape == (49, 2)
                img = cv2.imread(str(images[frame]), cv2.IMREAD_GRAYSCALE)
                h, w = img.shape
                assert (pts >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all()
                for a, b in ((19, 22), (25, 28)):  # eye corners (49-point scheme): pupil between
                    x, y = np.round((pts[a] + pts[b]) / 2).astype(int)
                    eye_vals.append(img[y, x])
                x, y = np.round(pts[12]).astype(int)  # nose ridge: skin
                skin_vals.append(img[y, x])
    assert lost >= 1
    assert np.median(eye_vals) < np.median(skin_vals) - 30


# ----------------------------------------------------------------------------- DISFA
def _decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def test_disfa_layout(synth_roots):
    root = synth_roots["disfa"]
    subjects = sorted(p.name for p in (root / "ActionUnit_Labels").iterdir())
    assert subjects == DISFA_SUBJECTS
    for part in DISFA_PARTS:
        assert set(part) <= set(subjects)
    lengths = {}
    for sn in subjects:
        for au in (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26):
            df = pd.read_csv(root / "ActionUnit_Labels" / sn / f"{sn}_au{au}.txt", header=None)
            assert df.shape[1] == 2 and df[0].tolist() == list(range(1, len(df) + 1))
            assert set(df[1]) <= set(range(6))
            lengths.setdefault(sn, len(df))
            assert lengths[sn] == len(df)
    assert lengths["SN010"] == lengths["SN001"] - 1
    for sn in ("SN001", "SN010"):
        left = _decode(root / "Videos_LeftCamera" / f"LeftVideo{sn}_comp.avi")
        right = _decode(root / "Video_RightCamera" / f"RightVideo{sn}_comp.avi")
        assert len(left) == len(right) == lengths[sn]
        assert np.abs(left[0].astype(int) - right[0].astype(int)).mean() > 5  # another view
        pts = scipy.io.loadmat(root / "Landmark_Points" / sn / "tmp_frame_lm" / f"{sn}_0000_lm.mat")["pts"]
        assert pts.shape == (66, 2)
        h, w = left[0].shape[:2]
        assert (pts[:, 0] < w).all() and (pts[:, 1] < h).all() and (pts >= 0).all()
    lm31 = list((root / "Landmark_Points" / "SN031" / "tmp_frame_lm").glob("*_lm.mat"))
    assert len(lm31) == lengths["SN031"] - 1  # one landmark file missing, as in the real SN031


# ----------------------------------------------------------------------------- BP4D+
def test_bp4dplus_layout(synth_roots):
    root = synth_roots["bp4dplus"]
    zips = sorted((root / "2D+3D").glob("*.zip"))
    assert [z.stem for z in zips] == sorted(BP4DPLUS_SUBJECTS)
    occ = {p.stem: p for p in (root / "AUCoding" / "AU_OCC").glob("*.csv")}
    assert "F082_T1" not in occ
    assert {k.split("_")[1] for k in occ} <= {"T1", "T6", "T7", "T8"}
    header = (root / "AUCoding" / "AU_OCC" / "F001_T1.csv").read_text().splitlines()[0] \
        if "F001_T1" in occ else next(iter(occ.values())).read_text().splitlines()[0]
    assert header.startswith("1,1,2,4,") and len(header.split(",")) == 35
    seen_nine = False
    pads = set()
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            names = zf.namelist()
            assert all(n.startswith(z.stem + "/") and n.endswith(".jpg") for n in names)
            for info in zf.infolist():
                assert info.date_time == (1980, 1, 1, 0, 0, 0)
            members = {}
            for n in names:
                s, t, fn = n.split("/")
                members.setdefault(t, set()).add(int(Path(fn).stem))
                pads.add(len(Path(fn).stem))
            if z.stem == "F042":
                assert "T11" in members and f"F042_T11" not in occ
            first = zf.read(names[0])
            assert b"SynthAU synthetic" in first[:200]
            img = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (232, 174, 3)
        for t, frames in members.items():
            if t == "T11":
                continue
            df = pd.read_csv(occ[f"{z.stem}_{t}"], header=None, skiprows=1)
            assert set(df[0]) == frames
            seen_nine |= bool((df.iloc[:, 1:] == 9).to_numpy().any())
            fit = scipy.io.loadmat(root / "2DFeatures" / f"{z.stem}_{t}.mat")["fit"]
            assert fit.shape == (1, len(frames))
            assert sorted(int(e["frame"].squeeze()) for e in fit[0]) == sorted(frames)
            for e in fit[0]:
                assert e["pts_2d"].shape in ((49, 2), (0, 0)) and e["headPose"].size == 3
            it = pd.read_csv(root / "AUCoding" / "AU_INT" / "AU12" / f"{z.stem}_{t}_AU12.csv", header=None)
            assert set(it[0]) <= frames
    assert seen_nine and pads == {3, 4}


# ----------------------------------------------------------------------------- determinism
def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".avi":  # container bytes may embed the muxer; compare decoded pixels
            data = b"".join(f.tobytes() for f in _decode(p))
        elif p.suffix == ".zip":
            with zipfile.ZipFile(p) as zf:
                data = p.read_bytes() + b"".join(zf.read(n) for n in zf.namelist())
        else:
            data = p.read_bytes()
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.slow
def test_same_seed_same_bytes_and_pixels(synth_roots, tmp_path):
    for layout in ("bp4d", "disfa", "bp4dplus"):
        again = write_dataset(layout, tmp_path / layout, size="smoke", seed=0)
        a, b = _digest(synth_roots[layout]), _digest(again)
        assert a.keys() == b.keys()
        diff = [k for k in a if a[k] != b[k]]
        assert not diff, f"{layout}: files differ between identical runs: {diff[:5]}"


def test_other_seed_other_labels():
    a = sample_labels("bp4d", "smoke", seed=0)
    b = sample_labels("bp4d", "smoke", seed=1)
    cols = [f"AU{au}_int" for au in AUS]
    assert not np.array_equal(a[cols].to_numpy(), b[cols].to_numpy())


def test_existing_root_is_reused_or_refused(synth_roots, tmp_path):
    root = synth_roots["bp4d"]
    stamp = (root / MARKER).stat().st_mtime_ns
    assert write_dataset("bp4d", root, size="smoke", seed=0) == root  # complete: returns at once
    assert (root / MARKER).stat().st_mtime_ns == stamp
    foreign = tmp_path / "real_bp4d"
    foreign.mkdir()
    (foreign / "something.csv").write_text("1,2\n")
    with pytest.raises(FileExistsError, match="real_bp4d"):
        write_dataset("bp4d", foreign, size="smoke")
    with pytest.raises(ValueError, match="layout"):
        write_dataset("affectnet", tmp_path / "x")


# ----------------------------------------------------------------------------- labels
@pytest.mark.parametrize("seed", [0, 1])
def test_bp4d_like_rates_and_correlations(seed):
    df = sample_labels("bp4d", "demo", seed=seed)
    assert df.attrs["synthetic"] is True
    assert 2000 <= len(df) <= 3000
    for au, rate in BP4D_RATES.items():
        assert abs(df[f"AU{au}"].mean() - rate) <= 0.08, (au, df[f"AU{au}"].mean())
    c = df[[f"AU{au}" for au in AUS]].corr()

    def r(a, b):
        return c.loc[f"AU{a}", f"AU{b}"]

    assert r(1, 2) > 0.3
    assert min(r(6, 10), r(6, 12), r(10, 12)) > 0.1
    assert r(12, 15) < 0 and r(4, 12) < 0
    assert min(r(17, 23), r(17, 24), r(23, 24)) > 0.1
    # occurrence is intensity >= 1
    for au in AUS:
        assert ((df[f"AU{au}_int"] >= 1) == (df[f"AU{au}"] == 1)).all()


def test_demo_sizes_in_budget():
    n = {layout: len(sample_labels(layout, "demo", seed=0)) for layout in ("bp4d", "disfa", "bp4dplus")}
    assert 2000 <= n["bp4d"] <= 3000 and 1500 <= n["disfa"] <= 2500 and 2000 <= n["bp4dplus"] <= 3000


# ----------------------------------------------------------------------------- pixels
def _patch_max(diff: np.ndarray, k: int = 6) -> float:
    return float(cv2.blur(diff.mean(axis=2).astype(np.float32), (k, k)).max())


@pytest.mark.parametrize("identity_seed", [3, 11])
def test_every_au_visibly_changes_the_image(identity_seed):
    ident = sample_identity(np.random.default_rng(identity_seed))
    pose = Pose(roll=0.03, yaw=0.05, scale=54.0, cx=87.0, cy=104.0)
    w, h = 174, 232

    def draw(amp, noise_seed):
        img, _ = render_face(ident, amp, pose, w, h, np.random.default_rng(noise_seed))
        return img.astype(np.float32)

    neutral = draw(np.zeros(len(AUS)), 0)
    noise_level = _patch_max(np.abs(neutral - draw(np.zeros(len(AUS)), 1)))
    for au in AUS:
        for level, expect_visible in ((5, True), (0, False)):
            amp = np.zeros(len(AUS))
            amp[AU_INDEX[au]] = level
            signal = _patch_max(np.abs(draw(amp, 0) - neutral))  # same noise: AU effect only
            if expect_visible:
                assert signal > 2 * noise_level, (au, signal, noise_level)
            else:
                assert signal < noise_level, (au, signal, noise_level)


def test_cli_writes_a_layout(tmp_path, capsys):
    from renet_core.synth.__main__ import main

    assert main(["bp4d", str(tmp_path / "cli"), "--size", "smoke", "--seed", "2"]) == 0
    marker = read_marker(tmp_path / "cli")
    assert marker["seed"] == 2 and marker["counts"]["labelled_frames"] == 164
    assert "synthetic" in capsys.readouterr().out
