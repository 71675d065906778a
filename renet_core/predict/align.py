"""A face of a user's frame aligned exactly as the run's training crops were made (section 4.3;
:mod:`renet_core.data.crops`), then cut to the network's input as at test time
(:class:`renet_core.data.dataset.AUDataset`, ``train=False``).

Training made each crop so (and so does this module, with the same functions):

1. the 49 landmarks give JAA-Net's similarity transform (:func:`renet_core.data.align.alignment_matrix`)
   to a ``crop_size(image_size)`` square (256 for the paper's 224; 37 for the smoke profile's 32);
2. frames stored as JPEG files (BP4D, BP4D+) were decoded at the largest libjpeg reduction (2, 4,
   8) that never upsamples the crop, the landmarks scaled alike; video frames (DISFA) at full size.
   A run trained on a JPEG layout gets the same here: a JPEG input is decoded reduced by libjpeg
   exactly as in training; any other frame (a video frame, a PNG) is shrunk by the same factor
   with area averaging, the nearest equivalent (not bit-identical to libjpeg's DCT scaling);
3. ``cv2.warpAffine``, bilinear, grey (128) border, then stored as JPEG quality 95: the crop goes
   through the same JPEG encode and decode here, so the network sees the same artefacts;
4. at test time the crop (already ``crop_size`` square) is centre-cropped to ``image_size``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from renet_core.data.crops import _crop_bytes, _decode, _reduction
from renet_core.data.dataset import resize_size

#: Layouts whose frames were JPEG files in training (reduced decode); others were video frames.
JPEG_LAYOUTS = ("bp4d", "bp4dplus")


def reduction_for(dataset: str | None, points49: np.ndarray, size: int) -> int:
    """The decode reduction training used for a face of this size: libjpeg's factor for JPEG
    layouts (:func:`renet_core.data.crops._reduction`), 1 for video layouts."""
    return _reduction(points49, size) if dataset in JPEG_LAYOUTS else 1


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """A frame shrunk as a libjpeg reduced decode sizes it (ceil(w / f) x ceil(h / f))."""
    h, w = image.shape[:2]
    return cv2.resize(image, (math.ceil(w / factor), math.ceil(h / factor)), interpolation=cv2.INTER_AREA)


def aligned_crop(image: np.ndarray, points49: np.ndarray, size: int, reduce: int = 1,
                 jpeg: bytes | None = None) -> np.ndarray:
    """The training crop (RGB uint8 ``size x size``) of the face with 49 landmarks ``points49``
    (full-frame pixel coordinates, 0-based) in ``image`` (BGR); ``jpeg``: the frame's JPEG bytes,
    decoded reduced by libjpeg when ``reduce`` > 1 (else the frame is shrunk by area)."""
    source = image
    if reduce > 1:
        decoded = _decode(jpeg, reduce) if jpeg is not None else None
        source = decoded if decoded is not None else _shrink(image, reduce)
    data = _crop_bytes(source, np.asarray(points49, dtype=float), size, reduce)
    crop = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def crop_side(image_size: int) -> int:
    """Side of the aligned crop for a network input of ``image_size`` (256 for 224)."""
    return resize_size(image_size)


def network_input(crops: list[np.ndarray], image_size: int) -> np.ndarray:
    """Centre ``image_size`` squares of the crops as a uint8 ``[N, 3, S, S]`` array (RGB), as
    :class:`renet_core.data.dataset.AUDataset` cuts a test item."""
    out = []
    for crop in crops:
        top = (crop.shape[0] - image_size) // 2
        out.append(crop[top:top + image_size, top:top + image_size].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out)) if out else np.zeros((0, 3, image_size, image_size), np.uint8)
