"""FACS effects of the 17 action units SynthAU renders (synthetic data, not a face model of record).

Every AU used by BP4D, DISFA or BP4D+ (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24,
25, 26) gets

* a landmark displacement in the canonical face frame (:mod:`renet_core.synth.face`; units are
  face half-widths, x to the image right, y down) at full intensity 5, following the FACS
  descriptions of the action (Ekman, Friesen & Hager 2002): brows up, in, down; lids; cheeks;
  nose; lip corners; lips apart; jaw, and
* an appearance weight for the cues FACS names (glabella lines for AU4, crow's feet and raised
  cheeks for AU6, nasal wrinkles for AU9, nasolabial furrow for AU10/AU12, dimples for AU14,
  chin boss for AU17, lip-pressing bulges for AU24, teeth for AU25/AU26).

The displacement grows with intensity as ``(a / 5) ** (1 + subtlety)`` so low intensities are
subtle on purpose when ``subtlety`` > 0 (default :data:`.defaults.SUBTLETY`, see
:func:`intensity_gain`).
"""

from __future__ import annotations

import numpy as np

from . import defaults

#: Every AU that SynthAU renders and labels, ascending.
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
AU_INDEX = {au: i for i, au in enumerate(AUS)}

#: FACS names, for plots and docs.
AU_NAMES = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor", 17: "chin raiser",
    20: "lip stretcher", 23: "lip tightener", 24: "lip presser", 25: "lips part", 26: "jaw drop",
}


def _sym(pairs: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Mirror left-side displacements (image left) onto the right side of the iBUG-68 face."""
    mirror = {0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9,
              17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
              31: 35, 32: 34, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,
              48: 54, 49: 53, 50: 52, 59: 55, 58: 56, 60: 64, 61: 63, 67: 65}
    out = dict(pairs)
    for i, (dx, dy) in pairs.items():
        if i in mirror:
            out[mirror[i]] = (-dx, dy)
    return out


# Displacements at intensity 5 (canonical units; the face is about 2 units wide).
_DISPLACEMENTS: dict[int, dict[int, tuple[float, float]]] = {
    # frontalis, medial part: inner brow corners up (and a little in)
    1: _sym({21: (0.02, -0.20), 20: (0.0, -0.15), 19: (0.0, -0.08), 18: (0.0, -0.03)}),
    # frontalis, lateral part: outer brows up, upper lids follow slightly
    2: _sym({17: (-0.01, -0.20), 18: (0.0, -0.18), 19: (0.0, -0.10), 20: (0.0, -0.04),
             37: (0.0, -0.015), 38: (0.0, -0.01)}),
    # corrugator/depressor: brows down and together, upper lids covered a little
    4: _sym({17: (0.02, 0.07), 18: (0.03, 0.10), 19: (0.05, 0.12), 20: (0.07, 0.13),
             21: (0.09, 0.13), 37: (0.0, 0.02), 38: (0.0, 0.025)}),
    # levator palpebrae: upper lids up, sclera above the iris shows
    5: _sym({37: (0.0, -0.09), 38: (0.0, -0.09), 36: (0.0, -0.01), 39: (0.0, -0.01)}),
    # orbicularis oculi, orbital part: cheeks up, lower lids pushed up, outer corners up
    6: _sym({40: (0.0, -0.06), 41: (0.0, -0.065), 36: (0.0, -0.03), 48: (-0.01, -0.03),
             1: (0.0, -0.02), 2: (0.0, -0.03), 3: (0.0, -0.02), 17: (0.0, 0.03)}),
    # orbicularis oculi, palpebral part: lids narrow, lower lid straightens and rises
    7: _sym({40: (0.0, -0.08), 41: (0.0, -0.08), 37: (0.0, 0.035), 38: (0.0, 0.035),
             36: (0.01, 0.0), 39: (-0.01, 0.0)}),
    # levator labii alaeque nasi: nose wings and upper lip up, inner brows down
    9: _sym({31: (0.01, -0.07), 32: (0.0, -0.06), 30: (0.0, -0.03), 49: (0.0, -0.05),
             50: (0.0, -0.05), 61: (0.0, -0.03), 21: (0.02, 0.07), 20: (0.0, 0.05),
             40: (0.0, -0.03), 41: (0.0, -0.03)}),
    # levator labii superioris: upper lip up (squarish), nose wings up a little
    10: _sym({49: (0.0, -0.11), 50: (0.0, -0.12), 61: (0.0, -0.08), 31: (0.0, -0.03),
              32: (0.0, -0.025), 48: (0.0, -0.03)}),
    # zygomaticus major: lip corners up and out, lips stretched along the curve
    12: _sym({48: (-0.12, -0.14), 60: (-0.10, -0.12), 49: (-0.05, -0.06), 59: (-0.06, -0.05),
              67: (-0.03, -0.03), 61: (-0.03, -0.03), 58: (-0.02, -0.01), 3: (-0.01, -0.02)}),
    # buccinator: lip corners tightened inward and slightly up
    14: _sym({48: (0.07, -0.02), 60: (0.06, -0.02), 49: (0.02, 0.0), 59: (0.02, 0.0)}),
    # depressor anguli oris: lip corners down
    15: _sym({48: (0.0, 0.12), 60: (0.0, 0.10), 59: (0.0, 0.05), 49: (0.0, 0.04),
              67: (0.0, 0.02)}),
    # mentalis: chin boss up, lower lip pushed up
    17: _sym({58: (0.0, -0.07), 59: (0.0, -0.05), 67: (0.0, -0.03), 7: (0.0, -0.06),
              6: (0.0, -0.04), 5: (0.0, -0.02)} | {57: (0.0, -0.08), 66: (0.0, -0.035),
                                                     8: (0.0, -0.07)}),
    # risorius/platysma: lip corners pulled laterally, lips flattened
    20: _sym({48: (-0.18, 0.04), 60: (-0.16, 0.04), 49: (-0.08, 0.04), 59: (-0.08, -0.03),
              50: (-0.02, 0.03), 58: (-0.02, -0.04), 61: (-0.03, 0.0), 67: (-0.03, 0.0)}
             | {51: (0.0, 0.03), 57: (0.0, -0.04)}),
    # orbicularis oris: lips narrowed and thinned (red margins roll in)
    23: _sym({48: (0.09, 0.0), 60: (0.08, 0.0), 49: (0.05, 0.05), 50: (0.01, 0.06),
              59: (0.05, -0.05), 58: (0.01, -0.06), 61: (0.02, 0.0), 67: (0.02, 0.0)}
             | {51: (0.0, 0.06), 57: (0.0, -0.06)}),
    # orbicularis oris: lips pressed together, red parts nearly vanish
    24: _sym({49: (0.0, 0.08), 50: (0.0, 0.09), 59: (0.0, -0.08), 58: (0.0, -0.09),
              48: (0.03, 0.0), 60: (0.02, 0.0)} | {51: (0.0, 0.09), 57: (0.0, -0.09)}),
    # lips part: inner lips separate, lower lip drops a little
    25: _sym({61: (0.0, -0.03), 67: (0.0, 0.07), 58: (0.0, 0.05), 59: (0.0, 0.03)}
             | {62: (0.0, -0.035), 66: (0.0, 0.08), 57: (0.0, 0.055)}),
    # masseter relaxed: jaw and lower lip drop, chin moves down
    26: _sym({67: (0.0, 0.16), 58: (0.0, 0.15), 59: (0.0, 0.10), 4: (0.0, 0.05),
              5: (0.0, 0.10), 6: (0.0, 0.15), 7: (0.0, 0.18), 3: (0.0, 0.02)}
             | {66: (0.0, 0.18), 57: (0.0, 0.17), 8: (0.0, 0.19)}),
}


def displacement_basis() -> np.ndarray:
    """``[17, 68, 2]`` landmark displacement of each AU (order :data:`AUS`) at intensity 5."""
    basis = np.zeros((len(AUS), 68, 2))
    for au, moves in _DISPLACEMENTS.items():
        for i, d in moves.items():
            basis[AU_INDEX[au], i] = d
    return basis


DISPLACEMENT_BASIS = displacement_basis()


def intensity_gain(amplitude: np.ndarray, subtlety: float = defaults.SUBTLETY) -> np.ndarray:
    """Fraction of the full effect at continuous intensity ``amplitude`` (0-5).

    ``(a / 5) ** (1 + subtlety)``: 0 at intensity 0, 1 at intensity 5, and below the linear
    ramp in between (``subtlety=0`` is linear; larger values make A/B-level AUs subtler).
    """
    a = np.clip(np.asarray(amplitude, dtype=float), 0.0, 5.0) / 5.0
    return a ** (1.0 + subtlety)


def displaced_landmarks(shape68: np.ndarray, amplitudes: np.ndarray,
                        subtlety: float = defaults.SUBTLETY,
                        effect_scale: float | np.ndarray = 1.0) -> np.ndarray:
    """Canonical landmarks moved by every AU's displacement at its amplitude.

    ``amplitudes`` is ``[17]`` in :data:`AUS` order (continuous intensities 0-5); effects add
    (FACS scores combinations additively in appearance, up to the mouth-closure fix below).
    ``effect_scale`` may be a per-AU ``[17]`` array (subject-specific expressiveness).
    """
    gains = intensity_gain(amplitudes, subtlety) * effect_scale
    pts = shape68 + np.tensordot(gains, DISPLACEMENT_BASIS, axes=1)
    # lips cannot interpenetrate: the lower inner lip stays at or below the upper inner lip
    for up, low in ((61, 67), (62, 66), (63, 65)):
        if pts[low, 1] < pts[up, 1]:
            mid = 0.5 * (pts[low, 1] + pts[up, 1])
            pts[low, 1] = pts[up, 1] = mid
    return pts
