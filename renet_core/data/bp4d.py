"""BP4D-Spontaneous layout -> frame index (paper section 4.1; layout facts in
docs/reproduction-notes.md, "Data layer").

Accepted variants:

* images ``BP4D-training/<S>/<T>/<frame>.jpg`` or ``Sequences_2D+3D/<S>/<T>/<frame>.jpg``, any
  zero padding (frame number = ``int(stem)``, no offset: the CSV frame number is the file name);
* occurrence ``AUCoding/AU_OCC/<S>_<T>.csv`` or flat ``AUCoding/<S>_<T>.csv``; legacy header
  ``0,1,...,99`` (column N = AU N) or AU names; 9 = unknown;
* intensity ``AU Intensity Codes3.0/AU%02d/<S>_<T>_AU%02d.csv``, ``AU-Intensity-Codes3.0/...`` or
  ``AUCoding/AU_INT/AU%02d/...``; frames missing from an intensity file -> NaN;
* landmarks ``2DFeatures/<S>_<T>.mat`` (v7.3): ``fit/pred`` holds one entry per tracked image
  of the sequence folder, in frame order, so frame f's landmarks are entry ``k`` where f's image
  is the k-th (0-based) image of ``<S>/<T>/`` (``landmark_index``). For a folder holding the
  whole video from frame 1 this is ``f - 1``; for a folder holding only the coded frames it is
  the row position. Frames without an image get ``landmark_index = -1``. When the entries do
  not match the images one to one (an image deleted), ``prepare`` matches them by frame number
  (entry ``f - 1``) where they cover frames 1 to the last image, else skips the sequence, named
  (:func:`renet_core.data.landmarks.bp4d_entry_keys`): never a neighbour's landmarks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.data.labels import BP4D_AUS, BP4D_INTENSITY_AUS, int_col, read_intensity_file, read_occurrence_csv
from renet_core.data.layout import LayoutError, Problems, check_root, finalise, first_existing, list_frame_images

IMAGE_DIRS = ("BP4D-training", "Sequences_2D+3D")
OCCURRENCE_DIRS = ("AUCoding/AU_OCC", "AUCoding")
INTENSITY_DIRS = ("AU Intensity Codes3.0", "AU-Intensity-Codes3.0", "AUCoding/AU_INT")
LANDMARK_DIR = "2DFeatures"
SEQUENCE_FILE = re.compile(r"^([FM]\d{3})_(T\d+)\.csv$", re.IGNORECASE)
CONVENTIONS = {
    "frame_convention": "image file number == label frame number (no offset)",
    "landmark_convention": "2DFeatures fit/pred entry k = rank of the frame's image among the "
                           "sequence folder's images (frame - 1 when the folder starts at 1); "
                           "frame - 1 when the entries cover frames 1..last image but not one "
                           "per image; else the sequence is skipped",
}


def occurrence_files(root: Path) -> list[tuple[str, str, Path]]:
    """``(subject, task, path)`` of every occurrence CSV, nested or flat layout."""
    for rel in OCCURRENCE_DIRS:
        folder = root / rel
        if not folder.is_dir():
            continue
        found = []
        for path in sorted(folder.iterdir()):
            match = SEQUENCE_FILE.match(path.name)
            if match and path.is_file():
                found.append((match.group(1).upper(), match.group(2).upper(), path))
        if found:
            return found
    raise LayoutError(f"unrecognised BP4D layout at {root}: expected occurrence labels "
                      "AUCoding/AU_OCC/<S>_<T>.csv or AUCoding/<S>_<T>.csv (e.g. F001_T1.csv)")


def load_bp4d(root, aus=None, intensity_aus=None) -> pd.DataFrame:
    """Index of every labelled BP4D frame (see module docstring for the accepted layouts)."""
    root = check_root(root, "BP4D")
    aus = list(BP4D_AUS if aus is None else aus)
    intensity_aus = list(BP4D_INTENSITY_AUS if intensity_aus is None else intensity_aus)
    problems = Problems("bp4d")
    files = occurrence_files(root)
    images_dir = first_existing(root, IMAGE_DIRS)
    if images_dir is None:
        problems.add("no image folder (expected one of BP4D-training/, Sequences_2D+3D/)",
                     str(root))
    intensity_dir = first_existing(root, INTENSITY_DIRS)
    if intensity_dir is None and intensity_aus:
        problems.add("no intensity folder (expected one of " + ", ".join(INTENSITY_DIRS) + ")",
                     str(root))
    sequences = []
    for subject, task, path in files:
        seq = read_occurrence_csv(path, aus)
        seq.insert(0, "task", task)
        seq.insert(0, "subject", subject)
        seq["image_kind"] = "file"
        seq["image_path"], ranks = _image_paths(images_dir, subject, task, seq["frame"],
                                                problems)
        seq["image_member"] = ""
        seq["image_index"] = -1
        landmark = root / LANDMARK_DIR / f"{subject}_{task}.mat"
        if not landmark.is_file():
            problems.add("missing landmark file", str(landmark))
        seq["landmark_kind"] = "bp4d_fit_pred"
        seq["landmark_path"] = str(landmark) if landmark.is_file() else ""
        seq["landmark_index"] = ranks
        for au in intensity_aus:
            seq[int_col(au)] = _intensity(intensity_dir, subject, task, au, seq["frame"],
                                          problems)
        sequences.append(seq)
    return finalise(sequences, "bp4d", root, aus, intensity_aus, problems, CONVENTIONS)


def _image_paths(images_dir, subject, task, frames, problems) -> tuple[list[str], list[int]]:
    """Image path of each frame and its rank among the folder's images (-1: no image)."""
    if images_dir is None:
        return [""] * len(frames), [-1] * len(frames)
    folder = images_dir / subject / task
    images = list_frame_images(folder)
    if not images:
        problems.add("labelled sequence without an image folder", str(folder), len(frames))
        return [""] * len(frames), [-1] * len(frames)
    rank = {number: k for k, number in enumerate(sorted(images))}
    paths = [str(images[f]) if f in images else "" for f in frames]
    missing = sum(1 for p in paths if not p)
    problems.add("labelled frame without an image", f"{folder} frame {frames.iloc[0]}",
                 missing)
    return paths, [rank.get(int(f), -1) for f in frames]


def _intensity(intensity_dir, subject, task, au, frames, problems) -> np.ndarray:
    if intensity_dir is None:
        return np.full(len(frames), np.nan)
    path = intensity_dir / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv"
    if not path.is_file():
        problems.add("missing intensity file (its frames are NaN)", str(path))
        return np.full(len(frames), np.nan)
    values = read_intensity_file(path, allow_unknown=True)
    mapped = frames.map(values).to_numpy(dtype=float)
    problems.add("labelled frames missing from an intensity file (NaN)", str(path),
                 int((~frames.isin(values.index)).sum()))
    return mapped
