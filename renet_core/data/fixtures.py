"""Tiny writers of the real file formats, for the data tests and ``python -m renet_core.bench
prepare``: a drawn face with known landmarks, MATLAB landmark files (BP4D v7.3 via h5py, BP4D+
v5 and DISFA via scipy.io), JPEGs and AVI videos. Not a dataset generator (that is
:mod:`renet_core.synth`); these exist to exercise every layout variant of the loaders.

The landmark writers take the 0-based pixel coordinates of the drawn face (OpenCV's convention)
and write them as the datasets do, 1-based (``origin=1``: 1 is added), so the loaders' default
reading gives back the drawn positions; ``origin=0`` writes them as given.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
from scipy.io import savemat


def canonical_landmarks() -> np.ndarray:
    """A plausible 49-point (IntraFace order) face: eye centres at (-1, 0) and (1, 0)."""
    pts = np.zeros((49, 2))
    pts[0:5] = np.c_[np.linspace(-1.8, -0.4, 5), [-0.6, -0.8, -0.85, -0.8, -0.7]]   # brow
    pts[5:10] = np.c_[np.linspace(0.4, 1.8, 5), [-0.7, -0.8, -0.85, -0.8, -0.6]]    # brow
    pts[10:14] = np.c_[np.zeros(4), np.linspace(0.2, 1.1, 4)]                       # bridge
    pts[14:19] = np.c_[np.linspace(-0.5, 0.5, 5), [1.3, 1.35, 1.4, 1.35, 1.3]]      # nostrils
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.c_[0.4 * np.cos(angles), 0.15 * np.sin(angles)]
    pts[19:25] = eye + [-1.0, 0.0]
    pts[25:31] = eye + [1.0, 0.0]
    outer = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[31:43] = np.c_[-0.8 * np.cos(outer), 2.0 + 0.35 * np.sin(outer)]  # 31, 37: corners
    inner = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts[43:49] = np.c_[-0.5 * np.cos(inner), 2.0 + 0.12 * np.sin(inner)]
    return pts


def similarity(points: np.ndarray, angle_deg: float = 0.0, scale: float = 1.0,
               shift=(0.0, 0.0)) -> np.ndarray:
    """Rotate by ``angle_deg`` (image coordinates), scale and shift a point set."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(points, float) @ rot.T * scale + np.asarray(shift, float)


def face_landmarks(width: int, height: int, eye_distance: float, angle_deg: float = 0.0,
                   centre=None) -> np.ndarray:
    """Canonical landmarks placed in a ``width x height`` image (pixels)."""
    centre = (width / 2, height * 0.42) if centre is None else centre
    return similarity(canonical_landmarks(), angle_deg, eye_distance / 2, centre)


def draw_face(points: np.ndarray, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A BGR image with a textured background, a skin ellipse, and red eye centres."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(max(height // 16, 2), max(width // 16, 2), 3),
                         dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    left, right = points[19:25].mean(0), points[25:31].mean(0)
    centre = (left + right) / 2 + (points[37] - (left + right) / 2) * 0.5
    d = float(np.hypot(*(right - left)))
    angle = float(np.degrees(np.arctan2(*(right - left)[::-1])))
    cv2.ellipse(image, tuple(int(v) for v in centre), (int(1.6 * d), int(2.1 * d)), angle, 0, 360,
                (150, 180, 220), -1)
    for p in points:
        cv2.circle(image, tuple(int(round(v)) for v in p), max(1, int(d / 40)), (60, 60, 60), -1)
    for eye in (left, right):
        cv2.circle(image, tuple(int(round(v)) for v in eye), max(2, int(d / 12)), (0, 0, 255), -1)
    return image


def write_jpeg(path, image, quality: int = 90) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _shifted(points, origin: int):
    return None if points is None else np.asarray(points, float) + origin


def write_bp4d_mat(path, points: list, origin: int = 1) -> Path:
    """BP4D ``2DFeatures`` file, MATLAB v7.3 layout: ``fit/pred`` cell of 49x2 (None: empty)."""
    points = [_shifted(p, origin) for p in points]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as fh:
        refs_group = fh.create_group("#refs#")
        refs = []
        for i, p in enumerate(points):
            if p is None:
                ds = refs_group.create_dataset(f"r{i}", data=np.zeros(2, dtype=np.uint64))
                ds.attrs["MATLAB_empty"] = np.uint8(1)
            else:
                ds = refs_group.create_dataset(f"r{i}", data=np.asarray(p, float).T)  # 2x49
            refs.append(ds.ref)
        fit = fh.create_group("fit")
        pred = fit.create_dataset("pred", (1, len(refs)), dtype=h5py.ref_dtype)
        for i, ref in enumerate(refs):
            pred[0, i] = ref
        fit.create_dataset("pose", data=np.zeros((1, 1)))
    with open(path, "r+b") as fh:  # MATLAB's 128-byte text header inside the userblock
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: renet_core.data".ljust(116))
    return path


def write_bp4dplus_mat(path, points_by_frame: dict, origin: int = 1) -> Path:
    """BP4D+ ``2DFeatures`` file, MATLAB v5: 1xN struct ``fit`` (frame, pts_2d, headPose)."""
    points_by_frame = {f: _shifted(p, origin) for f, p in points_by_frame.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fit = np.empty((1, len(points_by_frame)),
                   dtype=[("frame", "O"), ("pts_2d", "O"), ("headPose", "O")])
    for i, (frame, p) in enumerate(sorted(points_by_frame.items())):
        fit[0, i]["frame"] = np.array([[float(frame)]])
        fit[0, i]["pts_2d"] = np.zeros((0, 0)) if p is None else np.asarray(p, float)
        fit[0, i]["headPose"] = np.zeros((3, 1))
    savemat(path, {"fit": fit})
    return path


def to_66_points(points49: np.ndarray) -> np.ndarray:
    """Prepend 17 jaw points (DISFA's 66-point scheme) to 49 inner points."""
    points49 = np.asarray(points49, float)
    centre = points49.mean(0)
    angles = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)
    radius = np.ptp(points49, axis=0).max()
    jaw = centre + radius * np.c_[-np.cos(angles), 0.6 * np.sin(angles)]
    return np.vstack([jaw, points49])


def write_disfa_mat(path, points49: np.ndarray, origin: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"pts": to_66_points(points49) + origin})
    return path


def write_video(path, frames: list, fps: float = 20.0) -> Path:
    """An MJPG ``.avi`` of BGR frames (DISFA's videos are AVI)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}: no MJPG encoder in this OpenCV build")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
