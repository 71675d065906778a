"""Shared helpers for the on-disk layouts: folder variants, image listings, problem counts."""

from __future__ import annotations

import json
import re
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.data.labels import int_col, occ_col

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
SYNTH_MARKER = "SYNTHAU.json"
#: location columns, in this order, between ``frame`` and the AU columns
LOCATION_COLUMNS = ["image_kind", "image_path", "image_member", "image_index",
                    "landmark_kind", "landmark_path", "landmark_index"]


class LayoutError(FileNotFoundError):
    """A dataset root that is missing or does not have a recognised layout."""


def check_root(root, name: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise LayoutError(f"{name} root {root} does not exist")
    if not root.is_dir():
        raise LayoutError(f"{name} root {root} is not a folder")
    return root


def first_existing(root: Path, candidates) -> Path | None:
    """The first of ``root/candidate`` that is a folder, else None."""
    for candidate in candidates:
        path = root / candidate
        if path.is_dir():
            return path
    return None


def image_number(name: str) -> int | None:
    """``"0042.jpg"`` -> 42 (zero padding of any width); None for non-image names."""
    stem, dot, ext = name.rpartition(".")
    if not dot or "." + ext.lower() not in IMAGE_EXTENSIONS or not stem.isdigit():
        return None
    return int(stem)


def list_frame_images(folder: Path) -> dict[int, Path]:
    """``{int(stem): path}`` for the images in ``folder`` (any zero padding)."""
    out: dict[int, Path] = {}
    if not folder.is_dir():
        return out
    for entry in folder.iterdir():
        number = image_number(entry.name)
        if number is None:
            continue
        if number in out:
            raise LayoutError(f"{folder}: two images for frame {number}: {out[number].name} "
                              f"and {entry.name}")
        out[number] = entry
    return out


class Problems:
    """Counted, named problems found while indexing (reported once per kind as a warning for a
    real copy; SynthAU's are the deliberate imitations of the real datasets' quirks, recorded in
    ``attrs["problems"]`` without a warning)."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, str] = {}

    def add(self, kind: str, example: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[kind] += count
        self.examples.setdefault(kind, example)

    def report(self, warn: bool = True) -> dict[str, int]:
        for kind, count in self.counts.items():
            if warn:
                warnings.warn(f"{self.dataset}: {count} x {kind} (first: {self.examples[kind]})",
                              stacklevel=3)
        return dict(self.counts)


def synthetic_variant(marker: dict | None) -> str:
    """A SynthAU copy's non-default label structure in words, from its marker's knobs (e.g.
    "coupling 0.5, faint AU2+AU23"); "" for the default (whose marker has neither knob)."""
    knobs = (marker or {}).get("knobs") or {}
    words = []
    if "coupling" in knobs:
        words.append(f"coupling {knobs['coupling']:g}")
    if knobs.get("faint_aus"):
        words.append("faint " + "+".join(f"AU{a}" for a in knobs["faint_aus"]))
    return ", ".join(words)


def synthetic_marker(root: Path) -> dict | None:
    """The SynthAU marker ``root/SYNTHAU.json`` as a dict, or None for a real copy."""
    path = root / SYNTH_MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"synthetic": True}


def finalise(sequences: list[pd.DataFrame], dataset: str, root: Path, aus, intensity_aus,
             problems: Problems, conventions: dict) -> pd.DataFrame:
    """Concatenate per-sequence frames, order the columns, set ``attrs``."""
    occ = [occ_col(a) for a in aus]
    inten = [int_col(a) for a in intensity_aus]
    columns = ["subject", "task", "frame"] + LOCATION_COLUMNS + occ + inten
    if sequences:
        index = pd.concat(sequences, ignore_index=True)
    else:
        index = pd.DataFrame(columns=columns)
    for col in occ + inten:
        if col not in index:
            index[col] = np.nan
    index = index[columns]
    index["frame"] = index["frame"].astype(np.int64)
    index["image_index"] = index["image_index"].astype(np.int64)
    index["landmark_index"] = index["landmark_index"].astype(np.int64)
    for col in occ + inten:
        index[col] = index[col].astype(float)
    marker = synthetic_marker(root)
    index.attrs.update({
        "dataset": dataset,
        "synthetic": marker is not None,
        "synthetic_size": (marker or {}).get("size"),
        "root": str(root),
        "aus": list(aus),
        "intensity_aus": list(intensity_aus),
        "problems": problems.report(warn=marker is None),
        **conventions,
    })
    if synthetic_variant(marker):   # only then: a default copy's attrs (and prepared caches) as before
        index.attrs["synthetic_variant"] = synthetic_variant(marker)
    return index


SUBJECT_TASK = re.compile(r"^([A-Za-z]+\d+)_([A-Za-z]+\d+)$")
