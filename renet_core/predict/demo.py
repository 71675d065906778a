"""A real photograph through detection and alignment (issue 34): scikit-image's ``astronaut``
(NASA portrait of Eileen Collins, public domain, shipped inside the scikit-image wheel), the
default detector's box and 68 landmarks, and the face aligned by the training rule at the paper's
256 px crop. No AU is claimed for it: the committed weights are synthetic."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from renet_core.base.io import atomic_path
from renet_core.data.align import align_face
from renet_core.predict.detect import DlibDetector, points49

PHOTO = "scikit-image's data.astronaut() (NASA, public domain)"


def registry_photograph() -> np.ndarray:
    """The astronaut photograph (RGB uint8, 512x512) from the installed scikit-image."""
    # lazy: scikit-image only for this demonstration photograph
    from skimage import data
    return data.astronaut()


def real_face(detector=None, size: int = 256) -> dict:
    """The most confident face of the photograph: ``box``, ``confidence``, ``landmarks68``, and
    ``crop`` (RGB ``size x size``) with ``points`` (its 49 landmarks in crop coordinates)."""
    photo = registry_photograph()
    faces = (detector or DlibDetector()).detect(photo)
    if not faces:
        raise RuntimeError(f"no face found in {PHOTO}")
    face = faces[0]
    crop, points = align_face(np.ascontiguousarray(photo[:, :, ::-1]), points49(face.landmarks), size=size)
    return {"photo": photo, "box": face.box, "confidence": face.confidence, "landmarks68": face.landmarks,
            "crop": cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), "points": points, "n_faces": len(faces)}


def save_real_face_figure(path: str | Path, face: dict | None = None) -> Path:
    """The photograph with the detector's box and landmarks beside the aligned crop (PNG)."""
    face = face or real_face()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    axes[0].imshow(face["photo"])
    left, top, right, bottom = face["box"]
    axes[0].add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False, color="lime", lw=1.5))
    axes[0].scatter(*face["landmarks68"].T, s=3, c="yellow")
    axes[0].set_title(f"detected (dlib HOG, score {face['confidence']:.2f}) + 68 landmarks", fontsize=8)
    axes[1].imshow(face["crop"])
    axes[1].scatter(*face["points"].T, s=3, c="yellow")
    axes[1].set_title(f"aligned as training ({face['crop'].shape[0]} px, JAA-Net rule, 49 points)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{PHOTO}: detection and alignment only, no AU claims (the weights are synthetic)", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
