"""Face alignment: the JAA-Net 49-point eye-based similarity transform (paper section 4.3).

Paper: "All the face images are aligned and cropped to the size of 256x256 using affine
transformation based on the provided facial landmarks." The paper does not give the rule; we use
the one of JAA-Net (Shao et al., PyTorch-JAANet ``align_face_49pts``), the de-facto standard for
BP4D/DISFA crops:

1. eye centres = means of the 49-point indices 20-25 and 26-31 (1-based);
2. rotate about the origin so that the line between the eye centres is horizontal;
3. take the bounding box of the two eye centres, the nose point 14 and the mouth corners 32 and
   38 (all rotated); its centre is the crop centre;
4. ``halfSize = 0.5 * 2.9 * max(w, h)`` (``enlarge=2.9``), ``scale = (S - 1) / 2 / halfSize``;
5. ``cv2.warpAffine`` to ``S x S`` with bilinear interpolation and a grey (128) border.

The transform is a similarity (rotation, uniform scale, translation) computed from the landmarks
alone, so the same face under any roll, scale or position maps to the same crop: its eye centres
land on the same output pixels (tested).
"""

from __future__ import annotations

import cv2
import numpy as np

LEFT_EYE = list(range(19, 25))   # 1-based 20..25
RIGHT_EYE = list(range(25, 31))  # 1-based 26..31
NOSE = 13                        # 1-based 14
MOUTH_CORNERS = (31, 37)         # 1-based 32, 38
ENLARGE = 2.9
BORDER_VALUE = (128, 128, 128)


class AlignmentError(ValueError):
    """Landmarks from which no alignment can be computed (degenerate or non-finite)."""


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two eye centres (x, y) of a 49x2 landmark array."""
    points = np.asarray(points, dtype=float)
    return points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)


def alignment_matrix(points: np.ndarray, size: int = 256, enlarge: float = ENLARGE) -> np.ndarray:
    """The 2x3 similarity matrix mapping image pixels to the ``size x size`` aligned crop."""
    points = np.asarray(points, dtype=float)
    if points.shape != (49, 2) or not np.isfinite(points).all():
        raise AlignmentError(f"expected finite 49x2 landmarks, got shape {points.shape}")
    left, right = eye_centres(points)
    delta = right - left
    length = float(np.hypot(*delta))
    if length < 1e-6:
        raise AlignmentError("eye centres coincide")
    cos, sin = delta / length
    rotate = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    anchors = np.stack([left, right, points[NOSE], points[MOUTH_CORNERS[0]],
                        points[MOUTH_CORNERS[1]]])
    rotated = anchors @ rotate[:2, :2].T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    centre = (low + high) / 2.0
    half = 0.5 * enlarge * float((high - low).max())
    if half < 1e-6:
        raise AlignmentError("landmarks collapse to a point")
    scale = (size - 1) / 2.0 / half
    place = np.array([[scale, 0.0, scale * (half - centre[0])],
                      [0.0, scale, scale * (half - centre[1])],
                      [0.0, 0.0, 1.0]])
    return (place @ rotate)[:2]


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    points = np.asarray(points, dtype=float)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, points: np.ndarray, size: int = 256,
               enlarge: float = ENLARGE) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``size x size`` crop and the landmarks in crop coordinates (section 4.3)."""
    matrix = alignment_matrix(points, size=size, enlarge=enlarge)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_VALUE)
    return crop, transform_points(matrix, points)
