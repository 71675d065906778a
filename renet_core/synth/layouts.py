"""Writers of the real BP4D, DISFA and BP4D+ on-disk layouts, filled with SynthAU data (synthetic).

Layouts, names, headers and codes follow the real releases (see each writer). Choices where the
real copies vary:

* BP4D images ``BP4D-training/<S>/<T>/<frame>.jpg`` with the frame number of the label CSV, no
  offset, zero-padded to 4 digits (3 digits for M009-M018, as in some copies); occurrence
  ``AUCoding/AU_OCC/<S>_<T>.csv`` with the legacy header ``0,1,...,99`` (column N = AU N, column
  99 the occlusion flag, always 0; AUs SynthAU never renders are coded 0); intensity
  ``AU Intensity Codes3.0/AU%02d/<S>_<T>_AU%02d.csv`` for AUs 6, 10, 12, 14, 17.
* DISFA videos ``Videos_LeftCamera/LeftVideo<SN>_comp.avi`` and
  ``Video_RightCamera/RightVideo<SN>_comp.avi`` (Motion-JPEG AVI); decoded frame t (0-based) is
  label row t, frameIdx t+1. Landmarks of the left camera only.
* BP4D+ zips ``2D+3D/<S>.zip`` with members ``<S>/<T>/<frame>.jpg``, image name = frame number
  (py-feat's convention), 3-digit padding for F001-M017 (99 subjects) and 4 digits for
  M018-M058 (41); AU_OCC header ``1,1,2,4,...,39`` (first name duplicated, column 0 is the frame).

Landmark files hold 1-based pixel coordinates, as the real MATLAB files do (the renderer's
landmarks are 0-based, OpenCV's pixel centres, so ``LANDMARK_ORIGIN`` is added when writing);
the loaders subtract it again, so SynthAU crops are aligned on the drawn landmarks.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from renet_core.base.progress import bar as progress_bar
from renet_core.base.spawn import spawn_blocker
from renet_core.data.labels import BP4D_AUS

from .aus import AU_INDEX
from .face import IDX49, IDX66, Pose
from .labels import Sequence, rng_for, task_is_coded
from .matfiles import mat5_bytes, write_mat5_fit, write_mat73_fit
from .plans import BP4DPLUS_SUBJECTS
from .render import Knobs, encode_jpeg, identity_for, render_sequence

BP4D_INT_AUS = (6, 10, 12, 14, 17)
BP4DPLUS_OCC_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24,
                    *range(27, 40))
DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
DISFA_RIGHT_YAW = 0.35  # radians between the two DISFA cameras as SynthAU draws them
LANDMARK_ORIGIN = 1     # the real landmark files are 1-based (MATLAB); written the same way


# ----------------------------------------------------------------------------- quirks
def _quirks(layout: str, seqs: list[Sequence], seed: int) -> list[dict]:
    """Per sequence: frames coded 9, intensity rows left out, landmark frames lost.

    Forced where the loaders must meet them even at smoke size: BP4D F001 (9 codes), F002
    (intensity rows missing), F003 (lost landmark frame); BP4D+ F001 (9 codes), F003 (lost
    frame); DISFA SN031 (one landmark file missing). About a quarter of the other sequences get
    each quirk at random.
    """
    out = []
    for s in seqs:
        rng = rng_for(seed, layout, s.subject, s.task, "quirks")
        n = len(s.frames)
        q = {"nine": [], "drop_int": [], "lost": None, "missing_lm": None}
        first = s.subject in ("F001",) and layout in ("bp4d", "bp4dplus")
        if first or rng.random() < 0.25:
            for au in rng.choice(BP4D_AUS, size=2, replace=False):
                start = int(rng.integers(0, n))
                q["nine"] += [(int(au), i) for i in range(start, min(n, start + int(rng.integers(1, 4))))]
        if (s.subject == "F002" and layout == "bp4d") or rng.random() < 0.25:
            k = int(rng.integers(1, max(2, n // 4) + 1))
            q["drop_int"] = list(range(n - k, n)) if rng.random() < 0.5 else list(range(k))
        if (s.subject == "F003" and layout in ("bp4d", "bp4dplus")) or rng.random() < 0.1:
            q["lost"] = int(rng.integers(0, n))
        if layout == "disfa" and s.subject == "SN031":
            q["missing_lm"] = n // 2
        out.append(q)
    return out


# ----------------------------------------------------------------------------- labels
def _csv(rows: list[list[int]], header: str | None = None) -> bytes:
    lines = ([header] if header is not None else []) + [",".join(map(str, r)) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _occ_value(seq: Sequence, au: int, i: int, nine: set) -> int:
    if (au, i) in nine:
        return 9
    return int(seq.occurrence[i, AU_INDEX[au]]) if au in AU_INDEX else 0


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_bp4d_labels(root: Path, seqs: list[Sequence], quirks: list[dict]) -> None:
    """``AUCoding/AU_OCC/<S>_<T>.csv`` (header 0..99) and the five intensity folders."""
    for s, q in zip(seqs, quirks):
        nine = set(q["nine"])
        rows = [[int(f)] + [_occ_value(s, au, i, nine) for au in range(1, 99)] + [0]
                for i, f in enumerate(s.frames)]
        _write(root / "AUCoding" / "AU_OCC" / f"{s.subject}_{s.task}.csv",
               _csv(rows, ",".join(str(c) for c in range(100))))
        _write_intensity(root / "AU Intensity Codes3.0", s, q, nine)


def _write_intensity(base: Path, s: Sequence, q: dict, nine: set) -> None:
    drop = set(q["drop_int"])
    for au in BP4D_INT_AUS:
        rows = [[int(f), 9 if (au, i) in nine else int(s.intensity[i, AU_INDEX[au]])]
                for i, f in enumerate(s.frames) if i not in drop]
        _write(base / f"AU{au:02d}" / f"{s.subject}_{s.task}_AU{au:02d}.csv", _csv(rows))


def write_bp4dplus_labels(root: Path, seqs: list[Sequence], quirks: list[dict]) -> None:
    """``AUCoding/AU_OCC`` (duplicated first header name) and ``AUCoding/AU_INT/AU%02d``."""
    header = ",".join(str(a) for a in (BP4DPLUS_OCC_AUS[0],) + BP4DPLUS_OCC_AUS)
    for s, q in zip(seqs, quirks):
        if not task_is_coded("bp4dplus", s.task):
            continue
        nine = set(q["nine"])
        rows = [[int(f)] + [_occ_value(s, au, i, nine) for au in BP4DPLUS_OCC_AUS]
                for i, f in enumerate(s.frames)]
        _write(root / "AUCoding" / "AU_OCC" / f"{s.subject}_{s.task}.csv", _csv(rows, header))
        _write_intensity(root / "AUCoding" / "AU_INT", s, q, nine)


def write_disfa_labels(root: Path, seqs: list[Sequence]) -> None:
    """``ActionUnit_Labels/<SN>/<SN>_au<N>.txt``: ``frameIdx,intensity`` rows, no header."""
    for s in seqs:
        for au in DISFA_AUS:
            rows = [[int(f), int(s.intensity[i, AU_INDEX[au]])] for i, f in enumerate(s.frames)]
            _write(root / "ActionUnit_Labels" / s.subject / f"{s.subject}_au{au}.txt", _csv(rows))


# ----------------------------------------------------------------------------- frames
def _pad(layout: str, subject: str) -> int:
    if layout == "bp4d":
        return 3 if subject.startswith("M") and 9 <= int(subject[1:]) <= 18 else 4
    return 4 if BP4DPLUS_SUBJECTS.index(subject) >= 99 else 3


def _render(layout: str, seed: int, knobs: Knobs, s: Sequence, yaw_offset: float = 0.0,
            tag: str = "render"):
    w, h = knobs.size_for(layout)
    ident = identity_for(seed, layout, s.subject, knobs)
    rng = rng_for(seed, layout, s.subject, s.task, tag)
    return render_sequence(ident, s.amplitude, rng, knobs, w, h, yaw_offset)


def _pts49(marks: np.ndarray, lost: int | None) -> list[np.ndarray | None]:
    """The 49 points per frame as the files hold them: 1-based (None: lost by the tracker)."""
    return [None if i == lost else m[IDX49] + LANDMARK_ORIGIN for i, m in enumerate(marks)]


def _bp4d_unit(args) -> int:
    root, seed, knobs, s, q = args
    images, marks, poses = _render("bp4d", seed, knobs, s)
    folder = root / "BP4D-training" / s.subject / s.task
    folder.mkdir(parents=True, exist_ok=True)
    pad = _pad("bp4d", s.subject)
    for f, img in zip(s.frames, images):
        (folder / f"{int(f):0{pad}d}.jpg").write_bytes(encode_jpeg(img, knobs.jpeg_quality))
    feat = root / "2DFeatures"
    feat.mkdir(parents=True, exist_ok=True)
    write_mat73_fit(feat / f"{s.subject}_{s.task}.mat", _pts49(marks, q["lost"]),
                    np.stack([p.rotation() for p in poses]))
    return len(images)


def _bp4dplus_unit(args) -> int:
    root, seed, knobs, subject_seqs = args
    subject = subject_seqs[0][0].subject
    pad = _pad("bp4dplus", subject)
    (root / "2D+3D").mkdir(parents=True, exist_ok=True)
    (root / "2DFeatures").mkdir(parents=True, exist_ok=True)
    target = root / "2D+3D" / f"{subject}.zip"
    n = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        zf.comment = b"SynthAU synthetic data (renet_core.synth); not a real recording"
        for s, q in subject_seqs:
            images, marks, poses = _render("bp4dplus", seed, knobs, s)
            for f, img in zip(s.frames, images):
                info = zipfile.ZipInfo(f"{subject}/{s.task}/{int(f):0{pad}d}.jpg", ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, encode_jpeg(img, knobs.jpeg_quality))
            n += len(images)
            if task_is_coded("bp4dplus", s.task):
                write_mat5_fit(root / "2DFeatures" / f"{subject}_{s.task}.mat", s.frames,
                               _pts49(marks, q["lost"]), np.stack([p.head_pose() for p in poses]))
    return n


def _write_video(path: Path, images: list[np.ndarray], fps: float = 25.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write a Motion-JPEG AVI at {path}")
    try:
        for img in images:
            writer.write(img)
    finally:
        writer.release()


def _disfa_unit(args) -> int:
    root, seed, knobs, s, q = args
    left, marks, _ = _render("disfa", seed, knobs, s)
    right, _, _ = _render("disfa", seed, knobs, s, DISFA_RIGHT_YAW, tag="render-right")
    _write_video(root / "Videos_LeftCamera" / f"LeftVideo{s.subject}_comp.avi", left)
    _write_video(root / "Video_RightCamera" / f"RightVideo{s.subject}_comp.avi", right)
    lm_dir = root / "Landmark_Points" / s.subject / "tmp_frame_lm"
    lm_dir.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(s.frames):
        if i == q["missing_lm"]:
            continue
        k = int(f) - 1
        (lm_dir / f"{s.subject}_{k:04d}_lm.mat").write_bytes(mat5_bytes({"pts": marks[i][IDX66] + LANDMARK_ORIGIN}))
    return 2 * len(left)


def run_units(fn, units: list, workers: int, progress: bool, desc: str, total: int) -> int:
    """Run ``fn`` over ``units`` (in-process for ``workers <= 1``) with a tqdm bar over frames."""
    done = 0
    bar = progress_bar(total=total, desc=desc, unit="frame", disable=not progress)
    try:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        if workers > 1 and method == "spawn" and spawn_blocker():
            workers = 0   # spawn workers could not start from this program: render here (base.spawn)
        if workers <= 1 or len(units) <= 1:
            for u in units:
                k = fn(u)
                done += k
                bar.update(k)
        else:
            with mp.get_context(method).Pool(workers) as pool:
                for k in pool.imap_unordered(fn, units, chunksize=1):
                    done += k
                    bar.update(k)
    finally:
        bar.close()
    return done


def write_frames(layout: str, root: Path, seqs: list[Sequence], quirks: list[dict], seed: int,
                 knobs: Knobs, workers: int, progress: bool) -> int:
    """Render and write every frame (and the landmark files) of ``layout``; returns images written."""
    if layout == "bp4d":
        units = [(root, seed, knobs, s, q) for s, q in zip(seqs, quirks)]
        fn, total = _bp4d_unit, sum(len(s.frames) for s in seqs)
    elif layout == "disfa":
        units = [(root, seed, knobs, s, q) for s, q in zip(seqs, quirks)]
        fn, total = _disfa_unit, 2 * sum(len(s.frames) for s in seqs)
    else:
        by_subject: dict[str, list] = {}
        for s, q in zip(seqs, quirks):
            by_subject.setdefault(s.subject, []).append((s, q))
        units = [(root, seed, knobs, v) for v in by_subject.values()]
        fn, total = _bp4dplus_unit, sum(len(s.frames) for s in seqs)
    return run_units(fn, units, workers, progress, f"SynthAU {layout}", total)


def write_labels(layout: str, root: Path, seqs: list[Sequence], quirks: list[dict]) -> None:
    """Write the label files of ``layout``."""
    if layout == "bp4d":
        write_bp4d_labels(root, seqs, quirks)
    elif layout == "disfa":
        write_disfa_labels(root, seqs)
    else:
        write_bp4dplus_labels(root, seqs, quirks)


def default_workers(total_frames: int) -> int:
    """Processes for rendering: one for small jobs, else up to the CPU count (max 8)."""
    if total_frames < 1500:
        return 1
    return max(1, min(8, os.cpu_count() or 1))


__all__ = ["write_frames", "write_labels", "default_workers", "Pose"]
