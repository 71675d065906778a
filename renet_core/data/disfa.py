"""DISFA layout -> frame index (paper section 4.1: "8 of 12 AUs with intensity greater than 0
are used from the left camera").

* labels ``ActionUnit_Labels/<SN>/<SN>_au<N>.txt`` (AU number not padded; ``au01`` also
  accepted), no header, rows ``frameIdx,intensity`` with 1-based frames and intensity 0-5.
  Files of one subject may differ in length (SN010 has 4,844 rows): the index holds the union of
  their frames; a frame missing from one AU's file is NaN for that AU.
* occurrence ``AU<N>`` = 1.0 when ``intensity >= disfa_threshold`` (default 1, the paper's
  "intensity greater than 0"; 2 reproduces ME-GraphAU/JAA-Net/SRERL).
* video ``Videos_LeftCamera/LeftVideo<SN>_comp.avi``; the right camera is in
  ``Video_RightCamera/`` or ``Videos_RightCamera/``. Row-to-frame convention: label frameIdx f
  is the decoded video frame ``f - 1`` counting from 0 (``image_index``), i.e. the f-th frame,
  which matches an ffmpeg extraction numbered from 1.
* landmarks ``Landmark_Points/<SN>/tmp_frame_lm/<SN>_<k:04d>_lm.mat`` with ``k = f - 1``;
  fallback name ``l0<k:04d>_lm.mat``; missing files are lost landmarks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.data.labels import (
    DISFA_AUS,
    LabelFileError,
    int_col,
    occ_col,
    occurrence_from_intensity,
    read_intensity_file,
)
from renet_core.data.layout import LayoutError, Problems, check_root, finalise

LABEL_DIR = "ActionUnit_Labels"
VIDEO_DIRS = {"left": ("Videos_LeftCamera", "Video_LeftCamera"),
              "right": ("Video_RightCamera", "Videos_RightCamera")}
LANDMARK_DIR = "Landmark_Points"
SUBJECT = re.compile(r"^SN\d{3}$", re.IGNORECASE)
DEFAULT_THRESHOLD = 1
CONVENTIONS = {
    "frame_convention": "label frameIdx f (1-based) -> decoded video frame f-1 (0-based)",
    "landmark_convention": "Landmark_Points/<SN>/tmp_frame_lm/<SN>_<f-1:04d>_lm.mat",
}


def label_file(folder: Path, subject: str, au: int) -> Path | None:
    for name in (f"{subject}_au{au}.txt", f"{subject}_au{au:02d}.txt",
                 f"{subject}_AU{au}.txt", f"{subject}_AU{au:02d}.txt"):
        if (folder / name).is_file():
            return folder / name
    return None


def video_file(root: Path, subject: str, camera: str) -> Path | None:
    if camera not in VIDEO_DIRS:
        raise ValueError(f"camera must be 'left' or 'right', got {camera!r}")
    prefix = "LeftVideo" if camera == "left" else "RightVideo"
    for rel in VIDEO_DIRS[camera]:
        folder = root / rel
        if not folder.is_dir():
            continue
        exact = folder / f"{prefix}{subject}_comp.avi"
        if exact.is_file():
            return exact
        loose = sorted(p for p in folder.iterdir()
                       if subject.lower() in p.name.lower() and p.suffix.lower() == ".avi")
        if loose:
            return loose[0]
    return None


def load_disfa(root, aus=None, intensity_aus=None, disfa_threshold: int = DEFAULT_THRESHOLD,
               camera: str = "left") -> pd.DataFrame:
    """Index of every labelled DISFA frame; ``AU<N>`` present when intensity >= threshold."""
    root = check_root(root, "DISFA")
    if disfa_threshold not in (1, 2, 3, 4, 5):
        raise ValueError(f"disfa_threshold must be 1-5 (present when intensity >= it), got "
                         f"{disfa_threshold!r}")
    aus = list(DISFA_AUS if aus is None else aus)
    intensity_aus = list(DISFA_AUS if intensity_aus is None else intensity_aus)
    labels = root / LABEL_DIR
    subjects = sorted(p.name.upper() for p in labels.iterdir()
                      if p.is_dir() and SUBJECT.match(p.name)) if labels.is_dir() else []
    if not subjects:
        raise LayoutError(f"unrecognised DISFA layout at {root}: expected "
                          f"{LABEL_DIR}/SN001/SN001_au1.txt ...")
    problems = Problems("disfa")
    needed = sorted(set(aus) | set(intensity_aus))
    sequences = []
    for subject in subjects:
        folder = _subject_dir(labels, subject)
        per_au = {}
        for au in needed:
            path = label_file(folder, subject, au)
            if path is None:
                problems.add("missing AU label file (its frames are NaN)",
                             str(folder / f"{subject}_au{au}.txt"))
                continue
            series = read_intensity_file(path, allow_unknown=False)
            if len(series) and series.index.min() < 1:
                raise LabelFileError(f"{path}: frame {series.index.min()}: expected 1-based "
                                     "frame indices")
            per_au[au] = series
        if not per_au:
            continue
        frames = pd.Index(sorted(set().union(*(s.index for s in per_au.values()))), name="frame")
        seq = pd.DataFrame({"frame": frames.to_numpy(dtype=np.int64)})
        seq.insert(0, "task", "")
        seq.insert(0, "subject", subject)
        for au in needed:
            values = (per_au[au].reindex(frames).to_numpy(dtype=float) if au in per_au
                      else np.full(len(frames), np.nan))
            if au in per_au:
                problems.add("frames missing from one AU's label file (NaN)",
                             f"{subject} AU{au}", int(np.isnan(values).sum()))
            if au in intensity_aus:
                seq[int_col(au)] = values
            if au in aus:
                seq[occ_col(au)] = occurrence_from_intensity(values, disfa_threshold)
        video = video_file(root, subject, camera)
        if video is None:
            problems.add(f"missing {camera}-camera video", f"{subject}")
        seq["image_kind"] = "video"
        seq["image_path"] = str(video) if video else ""
        seq["image_member"] = ""
        seq["image_index"] = seq["frame"] - 1
        seq["landmark_kind"] = "disfa_pts"
        seq["landmark_path"] = _landmark_paths(root, subject, seq["frame"], problems)
        seq["landmark_index"] = -1
        sequences.append(seq)
    conventions = dict(CONVENTIONS, camera=camera, disfa_threshold=disfa_threshold,
                       occurrence_rule=f"AU present when intensity >= {disfa_threshold}")
    return finalise(sequences, "disfa", root, aus, intensity_aus, problems, conventions)


def _subject_dir(labels: Path, subject: str) -> Path:
    for p in labels.iterdir():
        if p.name.upper() == subject:
            return p
    return labels / subject


def _landmark_paths(root: Path, subject: str, frames: pd.Series, problems) -> list[str]:
    folder = root / LANDMARK_DIR / subject / "tmp_frame_lm"
    names = set(p.name for p in folder.iterdir()) if folder.is_dir() else set()
    out = []
    for f in frames:
        k = int(f) - 1
        for name in (f"{subject}_{k:04d}_lm.mat", f"l0{k:04d}_lm.mat"):
            if name in names:
                out.append(str(folder / name))
                break
        else:
            out.append("")
    problems.add("frames without a landmark file", str(folder), sum(1 for p in out if not p))
    return out
