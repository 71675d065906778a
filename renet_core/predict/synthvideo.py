"""SynthAU frames as a user's input: a run's test frames (DISFA layout: frames of the left-camera
videos) written to one video file with ``cv2.VideoWriter``, and their landmark files as an OpenFace
2.0 CSV. What the known-truth check (tests/predict) and notebook 12 feed ``predict``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from renet_core.data.landmarks import read_disfa_landmarks
from renet_core.predict.detect import IDX49
from renet_core.predict.landmarks import write_openface_csv

#: iBUG-68 indices of DISFA's 66 points (the inner mouth corners 60 and 64 dropped).
IDX66 = np.array([i for i in range(68) if i not in (60, 64)])


def landmarks68_from_49(points49: np.ndarray) -> np.ndarray:
    """The 49 training points placed in an iBUG-68 array; the 19 points the datasets' files lack
    and the alignment never uses (jaw, inner mouth corners) are set to the face's centroid."""
    out = np.tile(np.asarray(points49, dtype=float).mean(axis=0), (68, 1))
    out[IDX49] = points49
    return out


def video_frames(test: pd.DataFrame) -> list[np.ndarray]:
    """The frames of ``test`` (rows with ``image_path`` a video and ``image_index``), in order."""
    if not (test["image_kind"] == "video").all():
        raise ValueError("expected frames of a video layout (DISFA); got image kinds "
                         f"{sorted(test['image_kind'].unique())}")
    frames = []
    for path, rows in test.groupby("image_path", sort=False):
        capture = cv2.VideoCapture(str(path))
        decoded = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            decoded.append(image)
        capture.release()
        missing = [int(i) for i in rows["image_index"] if int(i) >= len(decoded)]
        if missing:
            raise ValueError(f"{path}: {len(decoded)} frames decoded, frame index {missing[0]} wanted")
        frames.extend(decoded[int(i)] for i in rows["image_index"])
    return frames


def write_video(frames: list[np.ndarray], target: str | Path, fps: float = 25.0, fourcc: str = "FFV1") -> Path:
    """``frames`` (BGR) as one video file (FFV1, lossless, by default; "MJPG" or "mp4v" work too)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write a {fourcc} video at {target}")
    try:
        for image in frames:
            writer.write(image)
    finally:
        writer.release()
    return target


def render_synthau(test: pd.DataFrame, video: str | Path, landmarks: str | Path, fps: float = 25.0,
                   fourcc: str = "FFV1") -> tuple[Path, Path]:
    """The DISFA-layout frames of ``test`` as one video and their landmarks as an OpenFace CSV
    (0-based pixels, as the training alignment read them)."""
    for _, rows in test.groupby("image_path", sort=False):
        if not rows["image_index"].is_monotonic_increasing:
            raise ValueError("the frames of each video must be in order")
    points = [read_disfa_landmarks(p) for p in test["landmark_path"]]
    marks = [None if p is None else landmarks68_from_49(p) for p in points]
    return (write_video(video_frames(test), video, fps, fourcc), write_openface_csv(landmarks, marks, fps))
