"""BP4D+ layout -> frame index (paper section 4.1: "Following a similar setting in BP4D
dataset, 12 AUs are selected").

* images ``2D+3D/<S>.zip`` with members ``<S>/<T>/<frame>.jpg`` (read from the zip, never
  unpacked), or the unpacked folders ``2D+3D/<S>/<T>/<frame>.jpg``; 3- or 4-digit padding.
* occurrence ``AUCoding/AU_OCC/<S>_<T>.csv``: header naming the AUs, possibly with a duplicated
  first name (``1,1,2,4,...``): column 0 is always the frame; 0/1, 9 = unknown.
* intensity ``AUCoding/AU_INT/AU%02d/<S>_<T>_AU%02d.csv``, no header, ``frame,intensity``.
* landmarks ``2DFeatures/<S>_<T>.mat`` (v5): struct ``fit`` whose ``frame`` field (1-based) is
  matched to the label frame (``landmark_index`` = that frame number).

Frame-to-image convention (``image_offset``, sources disagree): the image of label frame f is the
image numbered ``f + offset``. ``"auto"`` (default) uses offset -1 for a sequence whose images
are numbered from 0 (0-based images, 1-based labels) and offset 0 otherwise (py-feat's
``f -> f.jpg``). The offset used is stored per row in ``image_offset``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.data.labels import (
    BP4DPLUS_AUS,
    BP4DPLUS_INTENSITY_AUS,
    int_col,
    read_intensity_file,
    read_occurrence_csv,
)
from renet_core.data.layout import LayoutError, Problems, check_root, finalise, image_number, list_frame_images

IMAGE_DIR = "2D+3D"
OCCURRENCE_DIR = "AUCoding/AU_OCC"
INTENSITY_DIR = "AUCoding/AU_INT"
LANDMARK_DIR = "2DFeatures"
SEQUENCE_FILE = re.compile(r"^([FM]\d{3})_(T\d+)\.csv$", re.IGNORECASE)


def _conventions(offset) -> dict:
    rule = {"auto": "image number = frame - 1 if the sequence's images start at 0, else frame",
            0: "image number = frame", -1: "image number = frame - 1"}[offset]
    return {"frame_convention": rule,
            "landmark_convention": "2DFeatures fit entry whose 'frame' equals the label frame"}


def zip_images(path: Path) -> dict[str, dict[int, str]]:
    """``{task: {image number: member}}`` from a subject zip's directory (nothing unpacked)."""
    out: dict[str, dict[int, str]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise LayoutError(f"{path}: not a readable zip archive ({exc})") from exc
    for member in names:
        parts = member.replace("\\", "/").split("/")
        if len(parts) < 2:
            continue
        number = image_number(parts[-1])
        if number is None:
            continue
        task = parts[-2].upper()
        if number in out.setdefault(task, {}):
            raise LayoutError(f"{path}: two members for {task} frame {number}")
        out[task][number] = member
    return out


class _SubjectImages:
    """Image lookup for one subject: a zip archive or an unpacked folder."""

    def __init__(self, image_dir: Path, subject: str):
        self.zip = image_dir / f"{subject}.zip"
        self.folder = image_dir / subject
        self.kind = "zip" if self.zip.is_file() else ("file" if self.folder.is_dir() else None)
        self._members = zip_images(self.zip) if self.kind == "zip" else None

    def images(self, task: str) -> dict[int, str]:
        if self.kind == "zip":
            return self._members.get(task.upper(), {})
        if self.kind == "file":
            return {k: str(v) for k, v in list_frame_images(self.folder / task).items()}
        return {}


def load_bp4dplus(root, aus=None, intensity_aus=None, image_offset="auto") -> pd.DataFrame:
    """Index of every labelled BP4D+ frame (see module docstring)."""
    root = check_root(root, "BP4D+")
    if image_offset not in ("auto", 0, -1):
        raise ValueError(f"image_offset must be 'auto', 0 or -1, got {image_offset!r}")
    aus = list(BP4DPLUS_AUS if aus is None else aus)
    intensity_aus = list(BP4DPLUS_INTENSITY_AUS if intensity_aus is None else intensity_aus)
    occ_dir = root / OCCURRENCE_DIR
    files = []
    if occ_dir.is_dir():
        for path in sorted(occ_dir.iterdir()):
            match = SEQUENCE_FILE.match(path.name)
            if match:
                files.append((match.group(1).upper(), match.group(2).upper(), path))
    if not files:
        raise LayoutError(f"unrecognised BP4D+ layout at {root}: expected occurrence labels "
                          f"{OCCURRENCE_DIR}/<S>_<T>.csv (e.g. F001_T1.csv)")
    problems = Problems("bp4dplus")
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        problems.add(f"no image folder {IMAGE_DIR}/", str(root))
    subjects: dict[str, _SubjectImages] = {}
    sequences = []
    for subject, task, path in files:
        seq = read_occurrence_csv(path, aus)
        seq.insert(0, "task", task)
        seq.insert(0, "subject", subject)
        if subject not in subjects:
            subjects[subject] = _SubjectImages(image_dir, subject)
        source = subjects[subject]
        images = source.images(task)
        if not images:
            problems.add("labelled sequence without images", f"{source.zip} / {task}",
                         len(seq))
        offset = image_offset
        if offset == "auto":
            offset = -1 if images and min(images) == 0 else 0
        wanted = seq["frame"] + offset
        located = [images.get(int(n), "") for n in wanted]
        problems.add("labelled frame without an image", f"{subject}/{task}",
                     sum(1 for m in located if not m) if images else 0)
        seq["image_kind"] = source.kind or "file"
        if source.kind == "zip":
            seq["image_path"] = [str(source.zip) if m else "" for m in located]
            seq["image_member"] = located
        else:
            seq["image_path"] = located
            seq["image_member"] = ""
        seq["image_index"] = -1
        landmark = root / LANDMARK_DIR / f"{subject}_{task}.mat"
        if not landmark.is_file():
            problems.add("missing landmark file", str(landmark))
        seq["landmark_kind"] = "bp4dplus_fit"
        seq["landmark_path"] = str(landmark) if landmark.is_file() else ""
        seq["landmark_index"] = seq["frame"]
        for au in intensity_aus:
            seq[int_col(au)] = _intensity(root, subject, task, au, seq["frame"], problems)
        seq["image_offset"] = offset
        sequences.append(seq)
    index = finalise(sequences, "bp4dplus", root, aus, intensity_aus, problems,
                     _conventions(image_offset))
    index["image_offset"] = pd.concat([s["image_offset"] for s in sequences],
                                      ignore_index=True).astype(np.int64)
    return index


def _intensity(root, subject, task, au, frames, problems) -> np.ndarray:
    path = root / INTENSITY_DIR / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv"
    if not path.is_file():
        problems.add("missing intensity file (its frames are NaN)", str(path))
        return np.full(len(frames), np.nan)
    values = read_intensity_file(path, allow_unknown=True)
    problems.add("labelled frames missing from an intensity file (NaN)", str(path),
                 int((~frames.isin(values.index)).sum()))
    return frames.map(values).to_numpy(dtype=float)
