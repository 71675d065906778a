"""Rendering SynthAU sequences: head pose trajectories, lighting, JPEG (synthetic frames)."""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from . import defaults
from .aus import AU_INDEX, AUS
from .face import Identity, Pose, background_image, render_face, sample_identity
from .labels import check_coupling, rng_for

#: Default frame sizes (width, height). The real BP4D and BP4D+ frames are 1040x1392 (portrait)
#: and DISFA's 1024x768; SynthAU draws about 1/6 (BP4D, BP4D+) and 1/4.6 (DISFA) of that for
#: speed. The face spans about 110 pixels either way.
FRAME_SIZES = {"bp4d": (174, 232), "bp4dplus": (174, 232), "disfa": (224, 168)}

JPEG_COMMENT = b"SynthAU synthetic face (renet_core.synth); not a real person"


@dataclass(frozen=True)
class Knobs:
    """Difficulty and format knobs of SynthAU; the defaults are what ``demo`` and ``smoke`` use.

    The default values are defined once, in :mod:`renet_core.synth.defaults` (which the drawing
    functions' defaults share); why they are what they are: docs/reproduction-notes.md, SynthAU
    difficulty (with the first ones a ResNet-18 trained from scratch in the CPU demo did not
    generalise across subjects: test F1 below the all-positive baseline).

    * ``subtlety``: AU displacement grows as ``(intensity/5) ** (1 + subtlety)``; larger
      values make low intensities subtler (0: linear, intensity 1 moves landmarks 1/5 of the way).
    * ``noise``: sensor noise standard deviation in grey levels (0-255), before JPEG.
    * ``pose``: scale of head-pose variation (roll about +-0.1 rad, yaw about +-0.15 rad,
      scale +-6 %, translation +-4 % of the frame at 1.0).
    * ``identity_spread``: scale of between-subject variation of shape and appearance.
    * ``blur``: Gaussian blur sigma in pixels; ``jpeg_quality``.
    * ``frame_size``: ``(width, height)``; ``None`` = :data:`FRAME_SIZES` of the layout.
    * ``time_scale``: stretches expression episodes (frames per episode).
    * ``coupling``: how strongly AUs co-occur, each AU's rate held at its target (0: every AU
      independent, 1: the default prototypes, above 1: stronger; see
      :func:`~renet_core.synth.labels.generate_sequences`). Labels, hence pixels.
    * ``faint_aus``, ``faint_gain``: these AUs are drawn with their continuous intensity times
      ``faint_gain`` (every pixel effect of theirs weaker; labels unchanged): the positive
      control of the premise experiment (``defaults.SETTINGS``).

    The last three enter :meth:`as_dict` (the ``SYNTHAU.json`` marker) only when they differ from
    their defaults, so a default dataset's marker is what it was before they existed.
    """

    subtlety: float = defaults.SUBTLETY
    noise: float = defaults.NOISE
    pose: float = defaults.POSE
    identity_spread: float = defaults.IDENTITY_SPREAD
    blur: float = defaults.BLUR
    jpeg_quality: int = defaults.JPEG_QUALITY
    frame_size: tuple[int, int] | None = None
    time_scale: float = defaults.TIME_SCALE
    coupling: float = defaults.COUPLING
    faint_aus: tuple[int, ...] = ()
    faint_gain: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "coupling", check_coupling(self.coupling))
        object.__setattr__(self, "faint_aus", tuple(int(a) for a in self.faint_aus))
        stray = [a for a in self.faint_aus if a not in AU_INDEX]
        if stray:
            raise ValueError(f"SynthAU faint_aus {stray} are not rendered AUs; expected AUs among {AUS}")
        if not 0.0 <= float(self.faint_gain) <= 1.0:
            raise ValueError(f"SynthAU faint_gain={self.faint_gain!r}; expected a number in [0, 1]")

    def pixel_amplitudes(self, amplitudes: np.ndarray) -> np.ndarray:
        """``[n, 17]`` continuous intensities as drawn: ``faint_aus`` times ``faint_gain``."""
        if not self.faint_aus or self.faint_gain == 1.0:
            return amplitudes
        gain = np.ones(len(AUS))
        gain[[AU_INDEX[a] for a in self.faint_aus]] = self.faint_gain
        return np.asarray(amplitudes) * gain

    def size_for(self, layout: str) -> tuple[int, int]:
        """``(width, height)`` of the frames of ``layout``."""
        return tuple(self.frame_size) if self.frame_size else FRAME_SIZES[layout]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["frame_size"] = list(d["frame_size"]) if d["frame_size"] else None
        d["faint_aus"] = list(d["faint_aus"])
        for name, default in LATER_KNOBS.items():   # absent at their defaults (class docstring)
            if d[name] == default:
                del d[name]
        return d


#: Knobs added after datasets were first written, in the marker only when not at these defaults.
LATER_KNOBS = {"coupling": defaults.COUPLING, "faint_aus": [], "faint_gain": 1.0}


def identity_for(seed: int, layout: str, subject: str, knobs: Knobs) -> Identity:
    """The synthetic person behind ``subject`` in ``layout`` (fixed by the seed)."""
    return sample_identity(rng_for(seed, layout, subject, "identity"), knobs.identity_spread)


def _ar1(rng: np.random.Generator, n: int, phi: float = 0.9) -> np.ndarray:
    e = np.empty(n)
    e[0] = rng.standard_normal()
    for i in range(1, n):
        e[i] = phi * e[i - 1] + np.sqrt(1 - phi ** 2) * rng.standard_normal()
    return e


def pose_track(rng: np.random.Generator, n: int, width: int, height: int, amount: float,
               yaw_offset: float = 0.0) -> list[Pose]:
    """Smooth random head pose per frame (see :class:`Knobs` for the ranges)."""
    portrait = height > width
    base = 0.31 * min(width, height)
    cy0 = (0.45 if portrait else 0.54) * height
    r0, y0, s0 = rng.normal(0, 0.06 * amount), rng.normal(0, 0.08 * amount), rng.normal(0, 0.04 * amount)
    tx0, ty0 = rng.normal(0, 0.025 * amount, 2)
    tracks = [_ar1(rng, n) for _ in range(5)]
    return [Pose(roll=r0 + 0.04 * amount * tracks[0][i],
                 yaw=yaw_offset + y0 + 0.07 * amount * tracks[1][i],
                 scale=base * (1 + s0 + 0.02 * amount * tracks[2][i]),
                 cx=width * (0.5 + tx0 + 0.015 * amount * tracks[3][i]),
                 cy=cy0 + height * (ty0 + 0.015 * amount * tracks[4][i]))
            for i in range(n)]


def render_sequence(ident: Identity, amplitudes: np.ndarray, rng: np.random.Generator,
                    knobs: Knobs, width: int, height: int, yaw_offset: float = 0.0,
                    ) -> tuple[list[np.ndarray], np.ndarray, list[Pose]]:
    """Draw every frame of one sequence; returns ``(images BGR uint8, landmarks [n,68,2], poses)``."""
    amplitudes = knobs.pixel_amplitudes(amplitudes)
    n = len(amplitudes)
    poses = pose_track(rng, n, width, height, knobs.pose, yaw_offset)
    bg = background_image(ident, width, height)
    light = rng.normal(0, 0.25, 2)
    images, marks = [], []
    for i in range(n):
        gaze = tuple(np.clip(rng.normal(0, 0.3, 2), -0.8, 0.8))
        img, lm = render_face(ident, amplitudes[i], poses[i], width, height, rng, background=bg,
                              subtlety=knobs.subtlety, noise=knobs.noise, blur=knobs.blur,
                              light=tuple(light + rng.normal(0, 0.03, 2)), gaze=gaze)
        images.append(img)
        marks.append(lm)
    return images, np.stack(marks) if marks else np.zeros((0, 68, 2)), poses


def encode_jpeg(img: np.ndarray, quality: int = defaults.JPEG_QUALITY) -> bytes:
    """JPEG bytes of ``img`` with a COM segment saying the image is synthetic (deterministic)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG frame")
    data = buf.tobytes()
    com = b"\xff\xfe" + struct.pack(">H", len(JPEG_COMMENT) + 2) + JPEG_COMMENT
    return data[:2] + com + data[2:]
