"""Landmarks from a file instead of the detector (``--landmarks FILE``): an OpenFace 2.0
``FeatureExtraction`` CSV, one row per frame and face with ``frame`` (1-based), optionally
``face_id``, ``confidence`` and ``success``, and the 68 points ``x_0..x_67, y_0..y_67`` in pixels
(0-based, OpenCV's convention; OpenFace pads its column names with spaces, which are ignored).

A frame without a row, or whose row has ``success`` 0 or non-finite points, has no face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import to_csv_atomic
from renet_core.predict.detect import Detection

X_COLUMNS = [f"x_{i}" for i in range(68)]
Y_COLUMNS = [f"y_{i}" for i in range(68)]


class LandmarkFileError(ValueError):
    """A landmark file that cannot be used (named, with what was expected)."""


def read_openface_csv(path: str | Path) -> dict[int, list[Detection]]:
    """``{frame: [Detection, ...]}`` from an OpenFace 2.0 CSV (faces in ``face_id`` order; the
    box is the landmarks' bounding box, the confidence OpenFace's, else 1)."""
    path = Path(path)
    expected = "expected an OpenFace 2.0 CSV with columns frame, x_0..x_67, y_0..y_67"
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except FileNotFoundError:
        raise LandmarkFileError(f"{path}: landmark file not found; {expected}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise LandmarkFileError(f"{path}: not a readable CSV ({exc}); {expected}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ["frame"] + X_COLUMNS + Y_COLUMNS if c not in table.columns]
    if missing:
        raise LandmarkFileError(f"{path}: missing columns {missing[:6]}{' ...' if len(missing) > 6 else ''}; "
                                f"{expected}")
    try:
        frames = table["frame"].to_numpy(dtype=float)
        points = np.stack([table[X_COLUMNS].to_numpy(dtype=float), table[Y_COLUMNS].to_numpy(dtype=float)], axis=-1)
    except (TypeError, ValueError) as exc:
        raise LandmarkFileError(f"{path}: non-numeric frame or landmark values ({exc}); {expected}") from None
    if not np.isfinite(frames).all() or (frames != np.round(frames)).any():
        raise LandmarkFileError(f"{path}: the frame column holds non-integer values; {expected} (frame 1-based)")
    face_id = table["face_id"].to_numpy(dtype=int) if "face_id" in table else np.zeros(len(table), int)
    success = table["success"].to_numpy(dtype=float) if "success" in table else np.ones(len(table))
    confidence = table["confidence"].to_numpy(dtype=float) if "confidence" in table else np.ones(len(table))
    out: dict[int, list[tuple[int, Detection]]] = {}
    for i in np.argsort(face_id, kind="stable"):
        if success[i] != 1 or not np.isfinite(points[i]).all():
            continue
        low, high = points[i].min(axis=0), points[i].max(axis=0)
        box = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
        out.setdefault(int(frames[i]), []).append((int(face_id[i]), Detection(box, float(confidence[i]), points[i])))
    return {frame: [d for _, d in faces] for frame, faces in out.items()}


def write_openface_csv(path: str | Path, landmarks68: list[np.ndarray | None], fps: float = 30.0) -> Path:
    """An OpenFace-2.0-style landmark CSV (frame, face_id, timestamp, confidence, success,
    x_0..x_67, y_0..y_67) of one face per frame; None = no face (success 0). For tests and for
    users converting their own tracker's output."""
    rows = []
    for k, points in enumerate(landmarks68, start=1):
        ok = points is not None
        pts = np.asarray(points, dtype=float) if ok else np.zeros((68, 2))
        row = {"frame": k, "face_id": 0, "timestamp": (k - 1) / fps, "confidence": 1.0 if ok else 0.0,
               "success": int(ok)}
        row.update({f"x_{i}": pts[i, 0] for i in range(68)})
        row.update({f"y_{i}": pts[i, 1] for i in range(68)})
        rows.append(row)
    return to_csv_atomic(pd.DataFrame(rows), path, index=False)
