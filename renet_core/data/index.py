"""``load_index(name, root)``: one row per labelled frame of BP4D, DISFA or BP4D+."""

from __future__ import annotations

import pandas as pd

from renet_core.data.bp4d import load_bp4d
from renet_core.data.bp4dplus import load_bp4dplus
from renet_core.data.disfa import load_disfa

DATASETS = {"bp4d": "BP4D", "disfa": "DISFA", "bp4dplus": "BP4D+"}


def load_index(name: str, root, **options) -> pd.DataFrame:
    """Index of a dataset copy laid out as distributed (paper section 4.1).

    Columns: ``subject, task, frame``; the image location ``image_kind`` ("file", "zip" or
    "video"), ``image_path``, ``image_member`` (zip member), ``image_index`` (0-based decoded
    video frame); the landmark location ``landmark_kind``, ``landmark_path``,
    ``landmark_index``; occurrence ``AU1, AU2, ...`` (1.0/0.0/NaN = unknown) and intensity
    ``AU6_int, ...`` (0-5 or NaN). ``attrs``: ``dataset``, ``synthetic`` (root holds
    ``SYNTHAU.json``), ``frame_convention``, ``landmark_convention``, ``problems`` (counts of
    what was missing; each kind is also reported as a warning naming the first file).

    Options: ``aus``, ``intensity_aus`` (which AU columns; default the dataset's coded AUs);
    DISFA ``disfa_threshold`` (AU present when intensity >= it; default 1 = the paper's
    "intensity greater than 0") and ``camera`` ("left", the paper's, or "right"); BP4D+
    ``image_offset`` ("auto", 0 or -1; see :mod:`renet_core.data.bp4dplus`).
    """
    key = str(name).lower().replace("+", "plus").replace("-", "").replace("_", "")
    if key == "bp4d":
        return load_bp4d(root, **options)
    if key == "disfa":
        return load_disfa(root, **options)
    if key == "bp4dplus":
        return load_bp4dplus(root, **options)
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")


def describe_source(index: pd.DataFrame) -> str:
    """``"BP4D (real)"`` or ``"SynthAU demo, BP4D layout (synthetic)"`` (with a non-default
    SynthAU label structure: ``"SynthAU demo, coupling 0.5, BP4D layout (synthetic)"``)."""
    dataset = DATASETS.get(index.attrs.get("dataset"), str(index.attrs.get("dataset", "?")))
    if index.attrs.get("synthetic"):
        size = index.attrs.get("synthetic_size")
        variant = index.attrs.get("synthetic_variant")
        return (f"SynthAU{' ' + str(size) if size else ''}{', ' + variant if variant else ''}, "
                f"{dataset} layout (synthetic)")
    return f"{dataset} (real)"
