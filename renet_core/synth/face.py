"""SynthAU face model and renderer: a 2D face drawn from a 68-point landmark model (synthetic).

* :func:`mean_shape` gives the iBUG-68 landmark layout (jaw 0-16, brows 17-26, nose 27-35,
  eyes 36-47, outer lips 48-59, inner lips 60-67) in a canonical frame: x to the image right,
  y down, the face about 2 units wide, origin between the eyes and the mouth.
* :func:`sample_identity` draws a person: face shape modes, feature sizes and spacing, skin and
  hair tone, brow thickness, background (all scaled by ``identity_spread``).
* :func:`project` applies head pose (roll, scale, translation and a little yaw through a
  per-landmark depth) to canonical points.
* :func:`render_face` draws the face antialiased with OpenCV (skin, hair, ears, brows, eyes with
  iris, nose, lips, teeth) plus the AU appearance cues, then a lighting gradient, blur and
  sensor noise. JPEG compression is applied by the writers.

Every image drawn here is synthetic. The landmarks returned are exactly the ones the face was
drawn from (after pose), so face alignment from them is exact up to the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import defaults
from .aus import AU_INDEX, displaced_landmarks

SHIFT = 4  # OpenCV fixed-point bits for subpixel, antialiased drawing
_ONE = 1 << SHIFT

#: iBUG-68 indices kept by the 49-point (IntraFace / BP4D, BP4D+) scheme: no jaw, no inner
#: mouth corners 60 and 64.
IDX49 = np.array(list(range(17, 60)) + [61, 62, 63, 65, 66, 67])
#: iBUG-68 indices of the 66-point DISFA scheme (inner mouth corners 60 and 64 dropped).
IDX66 = np.array([i for i in range(68) if i not in (60, 64)])


def mean_shape() -> np.ndarray:
    """``[68, 2]`` canonical iBUG-68 landmarks of the average SynthAU face."""
    p = np.zeros((68, 2))
    phi = np.pi + 0.15 - np.arange(17) * (np.pi + 0.30) / 16
    x = 0.92 * np.cos(phi)
    y = 0.05 + 1.02 * np.sin(phi)
    x *= 1.0 - 0.18 * np.clip(np.sin(phi), 0, 1) ** 3  # narrower, squarer chin
    p[0:17] = np.stack([x, y], 1)
    s = np.linspace(0, 1, 5)
    bx = -0.80 + 0.62 * s
    by = -0.50 - 0.11 * np.sin(np.pi * (0.15 + 0.75 * s))
    p[17:22] = np.stack([bx, by], 1)
    p[22:27] = np.stack([-bx[::-1], by[::-1]], 1)
    p[27:31] = np.stack([np.zeros(4), [-0.30, -0.16, -0.02, 0.12]], 1)
    p[31:36] = np.stack([[-0.19, -0.10, 0.0, 0.10, 0.19], [0.20, 0.235, 0.25, 0.235, 0.20]], 1)
    for cx, idx in ((-0.40, 36), (0.40, 42)):  # both start at the image-left corner
        hw, hh, cy = 0.19, 0.085, -0.27
        pts = [(-hw, 0), (-hw / 3, -hh), (hw / 3, -hh), (hw, 0), (hw / 3, 0.85 * hh),
               (-hw / 3, 0.85 * hh)]
        p[idx:idx + 6] = np.array(pts) + [cx, cy]
    p[48:60] = [(-0.36, 0.52), (-0.22, 0.46), (-0.08, 0.43), (0.0, 0.445), (0.08, 0.43),
                (0.22, 0.46), (0.36, 0.52), (0.23, 0.60), (0.10, 0.64), (0.0, 0.645),
                (-0.10, 0.64), (-0.23, 0.60)]
    p[60:68] = [(-0.31, 0.52), (-0.11, 0.515), (0.0, 0.52), (0.11, 0.515), (0.31, 0.52),
                (0.11, 0.525), (0.0, 0.525), (-0.11, 0.525)]
    return p


#: Depth of each landmark (canonical units, towards the camera) for the small-yaw projection.
DEPTH68 = np.concatenate([
    -0.75 * np.cos(np.linspace(0, np.pi, 17)) ** 2,  # jaw: far at the ears, near at the chin
    np.full(10, 0.15), [0.25, 0.35, 0.45, 0.55], [0.3, 0.38, 0.42, 0.38, 0.3],
    np.full(12, 0.05), np.full(20, 0.3)])


@dataclass
class Identity:
    """One synthetic person: neutral landmarks and appearance parameters."""

    shape: np.ndarray          # [68, 2] neutral canonical landmarks
    skin: np.ndarray           # BGR 0-255
    hair: np.ndarray           # BGR
    lips: np.ndarray           # BGR
    iris: np.ndarray           # BGR
    background: np.ndarray     # [2, 3] BGR gradient endpoints
    bg_blobs: np.ndarray       # [k, 5] blob x, y, radius, intensity, channel mix
    shirt: np.ndarray          # BGR
    brow_thick: float          # canonical units
    hair_style: int            # 0 short, 1 long, 2 bald-ish
    hairline: float            # canonical y of the hairline centre
    expressiveness: np.ndarray  # [17] per-AU gain of the displacement (subject idiosyncrasy)
    wrinkle: float             # baseline depth of static wrinkles (age)


def sample_identity(rng: np.random.Generator,
                    identity_spread: float = defaults.IDENTITY_SPREAD) -> Identity:
    """Draw a synthetic person; ``identity_spread`` scales every deviation from the mean face."""
    s = identity_spread
    p = mean_shape()
    # face shape modes
    p[:, 0] *= 1.0 + s * 0.06 * rng.standard_normal()
    p[:, 1] *= 1.0 + s * 0.06 * rng.standard_normal()
    jaw = s * 0.08 * rng.standard_normal()
    p[3:14, 0] *= 1.0 + jaw * np.sin(np.linspace(0, np.pi, 11))
    chin = s * 0.06 * rng.standard_normal()
    p[5:12, 1] += chin * np.sin(np.linspace(0, np.pi, 7))
    # eyes: spacing, size, height
    sep, esz, eh = s * 0.035 * rng.standard_normal(3)
    for idx, sign in ((36, -1), (42, 1)):
        c = p[idx:idx + 6].mean(0)
        p[idx:idx + 6] = c + (p[idx:idx + 6] - c) * (1 + 1.5 * esz) + [sign * sep, eh]
    # brows: height, tilt
    bh, tilt = s * 0.04 * rng.standard_normal(2)
    p[17:22, 1] += bh + tilt * np.linspace(1, -1, 5)
    p[22:27, 1] += bh + tilt * np.linspace(-1, 1, 5)
    # nose length and width
    nl, nw = s * 0.04 * rng.standard_normal(2)
    p[28:36, 1] += nl * np.array([0.3, 0.6, 1, 1, 1, 1, 1, 1])
    p[31:36, 0] *= 1.0 + 2.5 * nw
    # mouth: width, height, lip thickness
    mw, mh, lt = s * 0.04 * rng.standard_normal(3)
    p[48:68, 0] *= 1.0 + 2.5 * mw
    p[48:68, 1] += mh
    p[49:54, 1] -= 1.2 * lt
    p[55:60, 1] += 1.2 * lt
    tone = rng.uniform(0.0, 1.0) if s > 0 else 0.5
    light = np.array([150, 185, 225.0])   # BGR, light skin
    dark = np.array([55, 80, 120.0])
    skin = light + (dark - light) * (0.5 + s * (tone - 0.5)) + s * rng.normal(0, 6, 3)
    hair = np.clip(np.array([25, 35, 50.0]) * (1 + s * rng.uniform(-0.5, 2.0)) + s * rng.normal(0, 8, 3), 5, 200)
    lips = np.clip(skin * np.array([0.6, 0.52, 0.92]) + [0, 0, 18] + rng.normal(0, 4, 3) * s, 0, 255)
    iris = np.clip(np.array([40, 60, 80.0]) * (1 + s * rng.uniform(-0.6, 1.2)), 10, 200)
    bgc = rng.uniform(40, 220, size=(2, 3)) if s > 0 else np.array([[128.0] * 3, [110.0] * 3])
    blobs = np.column_stack([rng.uniform(0, 1, (6, 2)), rng.uniform(0.05, 0.3, 6),
                             rng.uniform(-40, 40, 6), rng.uniform(0, 1, 6)])
    shirt = rng.uniform(20, 230, 3)
    expressiveness = np.exp(s * 0.15 * rng.standard_normal(len(AU_INDEX)))
    return Identity(shape=p, skin=np.clip(skin, 20, 245), hair=hair, lips=lips, iris=iris,
                    background=bgc, bg_blobs=blobs, shirt=shirt,
                    brow_thick=0.05 + s * 0.012 * float(np.clip(rng.standard_normal(), -2, 2)),
                    hair_style=int(rng.integers(0, 3)) if s > 0 else 0,
                    hairline=-1.0 + s * 0.08 * rng.standard_normal(),
                    expressiveness=expressiveness, wrinkle=float(rng.uniform(0, 0.3) * s))


@dataclass
class Pose:
    """Head pose of one frame: roll (rad), yaw (rad), scale (pixels per canonical unit), centre."""

    roll: float
    yaw: float
    scale: float
    cx: float
    cy: float

    def head_pose(self) -> np.ndarray:
        """``[3]`` pitch, yaw, roll in radians (pitch is always 0 here)."""
        return np.array([0.0, self.yaw, self.roll])

    def rotation(self) -> np.ndarray:
        """``[3, 3]`` rotation matrix (yaw about y, then roll about z)."""
        cy, sy, cr, sr = np.cos(self.yaw), np.sin(self.yaw), np.cos(self.roll), np.sin(self.roll)
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return rz @ ry


def project(points: np.ndarray, pose: Pose, depth: np.ndarray | float = 0.0) -> np.ndarray:
    """Image coordinates (pixels) of canonical ``points`` ``[n, 2]`` under ``pose``."""
    x = points[:, 0] * np.cos(pose.yaw) + np.asarray(depth) * np.sin(pose.yaw)
    y = points[:, 1]
    c, s = np.cos(pose.roll), np.sin(pose.roll)
    u = pose.scale * (c * x - s * y) + pose.cx
    v = pose.scale * (s * x + c * y) + pose.cy
    return np.stack([u, v], 1)


def _fx(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts) * _ONE).astype(np.int32)


def _poly(img, pts, color, closed=True, thick=None):
    if thick is None:
        cv2.fillPoly(img, [_fx(pts)], tuple(float(c) for c in color), cv2.LINE_AA, SHIFT)
    else:
        cv2.polylines(img, [_fx(pts)], closed, tuple(float(c) for c in color),
                      max(1, int(round(thick))), cv2.LINE_AA, SHIFT)


def _ellipse(img, centre, axes, angle, color, thick=-1):
    c = tuple(int(v) for v in _fx(centre))
    a = tuple(max(1, int(v)) for v in _fx(np.abs(axes)))
    cv2.ellipse(img, c, a, float(angle), 0, 360, tuple(float(v) for v in color), thick,
                cv2.LINE_AA, SHIFT)


def _bezier(p0, p1, p2, n=8):
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _mix(c1, c2, a):
    return np.asarray(c1) * (1 - a) + np.asarray(c2) * a


def background_image(ident: Identity, width: int, height: int) -> np.ndarray:
    """Per-subject backdrop: a two-colour gradient with soft blobs (float32 BGR)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (yy / max(height - 1, 1))[..., None]
    img = ident.background[0] * (1 - t) + ident.background[1] * t
    for bx, by, br, bi, _ in ident.bg_blobs:
        r2 = ((xx - bx * width) ** 2 + (yy - by * height) ** 2) / (br * max(width, height)) ** 2
        img = img + (bi * np.exp(-r2))[..., None]
    return img.astype(np.float32)


def render_face(ident: Identity, amplitudes: np.ndarray, pose: Pose, width: int, height: int,
                rng: np.random.Generator, background: np.ndarray | None = None,
                subtlety: float = defaults.SUBTLETY, noise: float = defaults.NOISE,
                blur: float = defaults.BLUR,
                light: tuple[float, float] = (0.0, 0.0), gaze: tuple[float, float] = (0.0, 0.0),
                ) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic frame.

    One long function on purpose: it paints the face in painter's order (background to lips,
    then light, blur and noise), and SynthAU's pixels, hence every cached crop and result, depend
    on that exact sequence of operations; it reads top to bottom as the face is drawn.

    ``amplitudes`` is ``[17]`` continuous AU intensities 0-5 (order :data:`aus.AUS`).
    Returns ``(image uint8 [H, W, 3] BGR, landmarks [68, 2] pixels)``; the landmarks are the
    ones the face was drawn from.
    """
    a = np.clip(np.asarray(amplitudes, dtype=float), 0, 5)
    g = {au: float((a[i] / 5.0) ** (1 + subtlety)) for au, i in AU_INDEX.items()}
    can = displaced_landmarks(ident.shape, a, subtlety, ident.expressiveness)
    lm = project(can, pose, DEPTH68)
    P = lambda pts, d=0.0: project(np.atleast_2d(np.asarray(pts, dtype=float)), pose, d)  # noqa: E731
    sc = pose.scale

    if background is None:
        background = background_image(ident, width, height)
    img = background.copy()
    skin = ident.skin
    shade = skin * 0.72

    # neck and shirt
    neck = P([[-0.45, 0.6], [0.45, 0.6], [0.5, 1.7], [-0.5, 1.7]], -0.3)
    _poly(img, neck, skin * 0.8)
    _poly(img, P([[-1.6, 1.45], [1.6, 1.45], [2.2, 3.5], [-2.2, 3.5]], -0.3), ident.shirt)
    # hair behind the head
    centre = P([[0.0, -0.25]], -0.2)[0]
    if ident.hair_style == 1:
        _ellipse(img, centre + [0, 0.35 * sc], (1.25 * sc, 1.45 * sc), np.degrees(pose.roll), ident.hair)
    # ears
    for side in (-1, 1):
        ear = P([[side * 0.95, -0.12]], -0.6)[0]
        _ellipse(img, ear, (0.13 * sc, 0.24 * sc), np.degrees(pose.roll), skin * 0.9)
    # face: jaw plus forehead arc; hair cap underneath and over the forehead
    th = np.linspace(0.05, np.pi - 0.05, 15)
    fw = abs(ident.shape[0, 0]) * 1.02
    fore = np.stack([fw * np.cos(th), -0.15 - 1.2 * np.sin(th)], 1)
    cap = np.stack([1.1 * fw * np.cos(th[::-1]), -0.15 - 1.4 * np.sin(th[::-1])], 1)
    if ident.hair_style != 2:
        _poly(img, P(cap, -0.2), ident.hair)
    face = np.concatenate([lm[0:17], P(fore, -0.2)])
    _poly(img, face, skin)
    if ident.hair_style != 2:
        f = (-ident.hairline - 0.15) / 1.2
        top = np.stack([fw * np.cos(th), -0.15 - 1.2 * f * np.sin(th)], 1)
        _poly(img, P(np.concatenate([top, cap]), -0.2), ident.hair)
    # cheek shading and AU6 cheek raise (lighter, rounder cheeks)
    for side, eye in ((-1, 41), (1, 46)):
        ck = can[eye] + [side * 0.05, 0.30 - 0.08 * g[6] - 0.04 * g[12]]
        _ellipse(img, P([ck], 0.2)[0], ((0.22 + 0.05 * g[6]) * sc, (0.15 + 0.04 * g[6]) * sc),
                 np.degrees(pose.roll), _mix(skin, np.minimum(skin * 1.12 + [0, 0, 12], 255), 0.35 + 0.65 * g[6]))
    # nose: bridge shadow, wings, nostrils
    _poly(img, lm[27:31] + [0.05 * sc, 0], _mix(skin, shade, 0.45), closed=False, thick=0.05 * sc)
    for side, (w, n) in ((-1, (31, 32)), (1, (35, 34))):
        wing = _bezier(lm[w] + [side * 0.02 * sc, -0.1 * sc], lm[w] + [side * 0.08 * sc, 0.0], lm[n])
        _poly(img, wing, _mix(skin, shade, 0.8), closed=False, thick=0.035 * sc)
        _ellipse(img, 0.5 * (lm[w] + lm[n]) + [0, 0.01 * sc], (0.045 * sc, 0.022 * sc),
                 np.degrees(pose.roll), skin * 0.35)
    # nasolabial furrows: deepen with AU10 and AU12 (and AU9, AU6)
    fur = 0.15 + 0.85 * min(1.0, g[10] + g[12] + 0.5 * g[9] + 0.3 * g[6] + ident.wrinkle)
    for side, (w, c) in ((-1, (31, 48)), (1, (35, 54))):
        p0 = lm[w] + [side * 0.10 * sc, -0.04 * sc]
        p2 = lm[c] + [side * 0.06 * sc, 0.08 * sc]
        p1 = 0.5 * (p0 + p2) + [side * 0.10 * sc, 0]
        _poly(img, _bezier(p0, p1, p2), _mix(skin, skin * 0.6, fur), closed=False,
              thick=(0.015 + 0.03 * fur) * sc)
    # AU9 nasal wrinkles across the bridge
    if g[9] > 0.01:
        for k, yv in enumerate((-0.18, -0.12, -0.06)):
            seg = P([[-0.09 + 0.01 * k, yv], [0.09 - 0.01 * k, yv - 0.005]], 0.4)
            _poly(img, seg, _mix(skin, skin * 0.45, g[9]), closed=False, thick=0.02 * sc)
    # AU4 glabella lines (vertical furrows between the brows)
    if g[4] > 0.01:
        for side in (-1, 1):
            top = 0.5 * (can[21] + can[22]) + [side * 0.05, -0.02]
            seg = P([top, top + [side * 0.01, 0.14]], 0.3)
            _poly(img, seg, _mix(skin, skin * 0.45, g[4]), closed=False, thick=0.022 * sc)
    # AU1/AU2 forehead lines
    fh = max(g[1], g[2])
    if fh > 0.01:
        for k in range(3):
            yv = min(can[19, 1], can[24, 1]) - 0.14 - 0.09 * k
            arc = np.stack([np.linspace(-0.45, 0.45, 7), yv + 0.03 * np.linspace(-1, 1, 7) ** 2], 1)
            _poly(img, P(arc, 0.2), _mix(skin, skin * 0.6, fh), closed=False, thick=0.018 * sc)
    # AU6 crow's feet at the outer eye corners
    if g[6] > 0.01:
        for side, corner in ((-1, 36), (1, 45)):
            for ang in (-0.45, 0.0, 0.45):
                d = np.array([side * np.cos(ang), np.sin(ang)]) * 0.13
                seg = P([can[corner] + [side * 0.05, 0], can[corner] + [side * 0.05, 0] + d], 0.05)
                _poly(img, seg, _mix(skin, skin * 0.5, g[6]), closed=False, thick=0.016 * sc)
    # brows
    for seg in (lm[17:22], lm[22:27]):
        _poly(img, seg, ident.hair * 0.8 + 10, closed=False, thick=ident.brow_thick * sc)
    # eyes: sclera, iris (clipped), upper lid line, lower lid crease (AU6/AU7)
    for idx in (36, 42):
        eye = lm[idx:idx + 6]
        x0, y0 = np.floor(eye.min(0)).astype(int) - 2
        x1, y1 = np.ceil(eye.max(0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, width), min(y1, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        roi = img[y0:y1, x0:x1]
        layer = np.empty_like(roi)
        layer[:] = (225.0, 230.0, 235.0)
        local = eye - [x0, y0]
        ctr = 0.5 * (local[0] + local[3]) + np.array(gaze) * 0.07 * sc
        r = 0.075 * sc
        cv2.circle(layer, tuple(int(v) for v in _fx(ctr)), int(r * _ONE), tuple(float(c) for c in ident.iris), -1, cv2.LINE_AA, SHIFT)
        cv2.circle(layer, tuple(int(v) for v in _fx(ctr)), int(0.45 * r * _ONE), (15.0, 15.0, 15.0), -1, cv2.LINE_AA, SHIFT)
        mask = np.zeros(roi.shape[:2], np.float32)
        cv2.fillPoly(mask, [_fx(local)], 1.0, cv2.LINE_AA, SHIFT)
        roi += (layer - roi) * mask[..., None]
        _poly(img, eye[[0, 1, 2, 3]], (20, 20, 25), closed=False, thick=0.035 * sc)
        crease = (eye[[0, 5, 4, 3]] + [0, (0.03 + 0.03 * g[6]) * sc])
        _poly(img, crease, _mix(skin, skin * 0.55, 0.3 + 0.7 * max(g[6], g[7])), closed=False,
              thick=0.018 * sc)
        lid = eye[[0, 1, 2, 3]] - [0, (0.05 - 0.03 * g[5]) * sc]
        _poly(img, lid, _mix(skin, skin * 0.7, 0.6), closed=False, thick=0.015 * sc)
    # AU14 dimples, AU24 lip-press bulges, AU17 chin boss
    if g[14] > 0.01:
        for side, c in ((-1, 48), (1, 54)):
            _ellipse(img, lm[c] + [side * 0.06 * sc, 0], (0.018 * sc, 0.045 * sc), np.degrees(pose.roll),
                     _mix(skin, skin * 0.45, g[14]))
    if g[24] > 0.01 or g[23] > 0.01:
        bul = max(g[24], 0.7 * g[23])
        for seg in (lm[49:54] - [0, 0.055 * sc], lm[[59, 58, 57, 56, 55]] + [0, 0.06 * sc]):
            _poly(img, seg, _mix(skin, skin * 0.5, bul), closed=False, thick=0.04 * sc)
        for c, dy in ((51, -0.11), (57, 0.12)):  # bulging skin above and below pressed lips
            _ellipse(img, lm[c] + [0, dy * sc], (0.17 * sc, 0.035 * sc), np.degrees(pose.roll),
                     _mix(skin, np.minimum(skin * 1.2, 255), g[24]))
    if g[20] > 0.01:
        for side, c in ((-1, 48), (1, 54)):
            seg = np.array([lm[c] + [side * 0.05 * sc, -0.05 * sc], lm[c] + [side * 0.10 * sc, 0.06 * sc]])
            _poly(img, seg, _mix(skin, skin * 0.55, g[20]), closed=False, thick=0.025 * sc)
    if g[17] > 0.01:
        chin = 0.5 * (lm[8] + lm[57])
        _ellipse(img, chin, (0.16 * sc, 0.08 * sc), np.degrees(pose.roll),
                 _mix(skin, skin * 0.72, g[17]), thick=max(1, int(0.02 * sc)))
        for dx in (-0.06, 0.0, 0.06):
            _ellipse(img, chin + [dx * sc, 0.02 * sc], (0.012 * sc, 0.012 * sc), 0,
                     _mix(skin, skin * 0.55, g[17]))
    _poly(img, P([[-0.25, 0.80], [0.0, 0.84], [0.25, 0.80]], 0.3) + [0, 0.04 * g[26] * sc],
          _mix(skin, skin * 0.75, 0.5), closed=False, thick=0.02 * sc)
    # lips and mouth cavity with teeth
    _poly(img, lm[48:60], ident.lips)
    inner = lm[60:68]
    if np.ptp(inner[:, 1]) > 0.01 * sc:
        x0, y0 = np.floor(inner.min(0)).astype(int) - 1
        x1, y1 = np.ceil(inner.max(0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, width), min(y1, height)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = img[y0:y1, x0:x1]
            layer = np.empty_like(roi)
            layer[:] = (30.0, 25.0, 60.0)
            local = inner - [x0, y0]
            tooth_h = 0.07 * sc
            teeth = np.concatenate([local[[0, 1, 2, 3, 4]], local[[4, 3, 2, 1, 0]] + [0, tooth_h]])
            cv2.fillPoly(layer, [_fx(teeth)], (215.0, 225.0, 230.0), cv2.LINE_AA, SHIFT)
            mask = np.zeros(roi.shape[:2], np.float32)
            cv2.fillPoly(mask, [_fx(local)], 1.0, cv2.LINE_AA, SHIFT)
            roi += (layer - roi) * mask[..., None]
    _poly(img, np.concatenate([lm[60:65], lm[[65, 66, 67]][::-1][::-1]]), ident.lips * 0.55,
          closed=False, thick=0.02 * sc)
    # lighting gradient, blur, sensor noise
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gain = 1.0 + light[0] * (xx / width - 0.5) + light[1] * (yy / height - 0.5)
    img *= gain[..., None]
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), lm
