"""SynthAU latent expression process: AU intensity sequences with real label structure (synthetic).

Per sequence (one subject doing one task) the generator draws, in frame units:

1. **Expression episodes** one after another, separated by neutral gaps: an EMFACS-style
   prototype (happiness 6+12, sadness 1+4+15, surprise 1+2+5+26, fear 1+2+4+5+20+25, anger
   4+5+7+23+24, disgust 9+10+15, pain 4+6+7+9+10, embarrassment 12+14+17+24, lip tension
   17+23+24, brow flash 1+2) chosen from the task's mixture weighted by the subject's
   propensities, with a trapezoidal onset-apex-offset envelope and a random apex strength.
2. **Talking** bouts (25/26 with some 10, 17, 23) overlaid where the task involves talking.
3. **Random single AUs** (short blips of one AU).
4. **Subject tonic offsets** from three correlated traits (smiling, tension, brow activity) and
   AU-specific idiosyncrasies, plus smooth AR(1) noise per AU.

The sum is a continuous *drive* per AU and frame. Per layout and AU, a threshold is placed at the
quantile of all drives that gives the target occurrence rate (:data:`TARGET_RATES`: BP4D's
published rates; DISFA and BP4D+ approximate literature rates), and intensity is
``1 + (drive - threshold) / step`` clipped to 0-5: its floor (0-5) is the label (occurrence is
intensity >= 1), the continuous value drives the pixels, so frames just under threshold move a
little and labels are ambiguous near it, as with human coders.

Because the prototypes share AUs and episodes do not overlap, the correlation structure the paper
exploits is real: AU1-AU2 strongly positive, AU6/AU10/AU12 together, AU12 vs AU15 and AU4 vs
AU12 negative, AU17/AU23/AU24 together.

``coupling`` (:func:`generate_sequences`) scales that structure for the premise experiment
(notebook 11): 0 gives every AU a process of its own (:func:`solo_drive`), 1 is the above
exactly, above 1 tightens it; the calibration keeps every AU's rate at its target either way.
On the demo BP4D labels the mean |PCC| of the 12 BP4D AUs is 0.04 at 0 (the sampling floor of
2,460 frames), 0.07 at 0.5, 0.15 at 1 and 0.19 at 2.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from .aus import AU_INDEX, AUS

PROTOTYPES: dict[str, dict[int, float]] = {
    "happiness": {6: 1.0, 7: 0.5, 10: 0.7, 12: 1.3, 14: 0.4, 25: 0.6, 26: 0.2},
    "sadness": {1: 0.8, 2: 0.2, 4: 0.9, 15: 1.1, 17: 0.8, 24: 0.3},
    "surprise": {1: 1.1, 2: 1.1, 5: 0.9, 25: 0.8, 26: 0.9},
    "fear": {1: 1.0, 2: 1.0, 4: 0.8, 5: 0.9, 20: 1.0, 25: 0.8, 26: 0.3},
    "anger": {4: 1.1, 5: 0.4, 7: 1.0, 17: 0.6, 23: 1.0, 24: 0.9},
    "disgust": {4: 0.5, 7: 0.4, 9: 1.1, 10: 1.0, 15: 0.6, 17: 0.6},
    "pain": {4: 0.9, 6: 1.0, 7: 1.1, 9: 0.6, 10: 0.9, 25: 0.5},
    "embarrassment": {6: 0.4, 7: 0.3, 12: 0.9, 14: 0.9, 17: 0.6, 24: 0.8},
    "tension": {7: 0.5, 14: 0.5, 17: 1.0, 23: 1.0, 24: 1.0},
    "brow_flash": {1: 1.1, 2: 1.1},
}
PROTO_NAMES = tuple(PROTOTYPES)

#: Task -> prototype mixture and talking share. BP4D tasks (Zhang et al. 2014): T1 amusement,
#: T2 sadness, T3 startle, T4 embarrassment, T5 fear, T6 pain, T7 anger, T8 disgust. BP4D+ coded
#: tasks T1 happiness, T6 embarrassment, T7 fear, T8 pain. DISFA: one emotive video, no talking.
TASK_MIX: dict[str, dict[str, tuple[dict[str, float], float]]] = {
    "bp4d": {
        "T1": ({"happiness": 5, "embarrassment": 1, "surprise": 0.5, "brow_flash": 0.5}, 0.5),
        "T2": ({"sadness": 4, "tension": 1, "happiness": 0.7, "brow_flash": 0.3}, 0.4),
        "T3": ({"surprise": 4, "fear": 1.5, "brow_flash": 1, "happiness": 1.5}, 0.2),
        "T4": ({"embarrassment": 4, "happiness": 2.5, "tension": 1}, 0.5),
        "T5": ({"fear": 3, "tension": 2, "surprise": 1, "happiness": 1}, 0.4),
        "T6": ({"pain": 5, "tension": 2, "anger": 1, "happiness": 0.5}, 0.2),
        "T7": ({"anger": 4, "tension": 2, "disgust": 1, "happiness": 0.5}, 0.5),
        "T8": ({"disgust": 4, "pain": 1, "anger": 1, "happiness": 1.5}, 0.3),
    },
    "bp4dplus": {
        "T1": ({"happiness": 5, "embarrassment": 1, "surprise": 0.5, "brow_flash": 0.5}, 0.6),
        "T6": ({"embarrassment": 4, "happiness": 2.5, "tension": 1}, 0.5),
        "T7": ({"fear": 3, "tension": 2, "surprise": 1, "happiness": 1}, 0.4),
        "T8": ({"pain": 5, "tension": 2, "anger": 1, "happiness": 0.5}, 0.2),
        "T11": ({"happiness": 1, "tension": 1}, 0.5),
    },
    "disfa": {
        "video": ({"happiness": 3, "surprise": 2, "disgust": 2, "fear": 1, "sadness": 1,
                   "brow_flash": 0.5}, 0.0),
    },
}

#: Target occurrence rates (intensity >= 1) per layout. BP4D: the published rates for its 12
#: detection AUs (datasets.md, "approximate, for realism checks"); the others are generator
#: defaults. DISFA (intensity > 0) and BP4D+ are approximate literature values, not facts.
TARGET_RATES: dict[str, dict[int, float]] = {
    "bp4d": {1: 0.21, 2: 0.17, 4: 0.20, 5: 0.05, 6: 0.46, 7: 0.55, 9: 0.06, 10: 0.59, 12: 0.56,
             14: 0.47, 15: 0.17, 17: 0.34, 20: 0.05, 23: 0.17, 24: 0.15, 25: 0.35, 26: 0.12},
    "disfa": {1: 0.07, 2: 0.06, 4: 0.19, 5: 0.03, 6: 0.12, 7: 0.10, 9: 0.06, 10: 0.08, 12: 0.18,
              14: 0.06, 15: 0.07, 17: 0.10, 20: 0.04, 23: 0.05, 24: 0.04, 25: 0.32, 26: 0.16},
    "bp4dplus": {1: 0.10, 2: 0.08, 4: 0.07, 5: 0.04, 6: 0.48, 7: 0.60, 9: 0.05, 10: 0.63,
                 12: 0.55, 14: 0.52, 15: 0.11, 17: 0.14, 20: 0.04, 23: 0.16, 24: 0.06, 25: 0.35,
                 26: 0.10},
}

#: Subject traits -> AU loadings (smiling, tension, brow activity).
_TRAITS = {
    "smile": {6: 0.5, 7: 0.3, 10: 0.4, 12: 0.6, 14: 0.3, 4: -0.3, 15: -0.3},
    "tension": {4: 0.2, 7: 0.35, 10: 0.2, 14: 0.25, 17: 0.4, 23: 0.4, 24: 0.4},
    "brows": {1: 0.5, 2: 0.5, 5: 0.15},
}
_TALK = {25: 1.0, 26: 0.55, 10: 0.25, 17: 0.25, 23: 0.3, 14: 0.15}


def stable_code(*parts) -> int:
    """Deterministic 32-bit code of strings/ints (Python's ``hash`` is salted per process)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def rng_for(seed: int, *parts) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the names in ``parts``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_code(*parts)]))


def _loading(table: dict[int, float]) -> np.ndarray:
    v = np.zeros(len(AUS))
    for au, w in table.items():
        v[AU_INDEX[au]] = w
    return v


PROTO_MATRIX = np.stack([_loading(PROTOTYPES[p]) for p in PROTO_NAMES])  # [P, 17]
TRAIT_MATRIX = np.stack([_loading(t) for t in _TRAITS.values()])          # [3, 17]
TALK_VECTOR = _loading(_TALK)


@dataclass
class SubjectTraits:
    """A subject's stable expressive style."""

    tonic: np.ndarray        # [17] drive offset
    propensity: np.ndarray   # [P] multiplier on each prototype's selection weight
    vigour: float            # multiplier on episode strength


def sample_subject(rng: np.random.Generator) -> SubjectTraits:
    """Draw the traits of one subject (correlated tonic offsets, prototype propensities)."""
    z = rng.standard_normal(len(_TRAITS))
    tonic = 0.35 * z @ TRAIT_MATRIX + 0.15 * rng.standard_normal(len(AUS))
    return SubjectTraits(tonic=tonic, propensity=np.exp(0.5 * rng.standard_normal(len(PROTO_NAMES))),
                         vigour=float(np.exp(0.2 * rng.standard_normal())))


def _envelope(n: int, start: int, onset: int, apex: int, offset: int) -> np.ndarray:
    t = np.arange(n) - start
    up = np.clip((t + 1) / onset, 0, 1)
    down = np.clip((onset + apex + offset - t) / offset, 0, 1)
    return np.minimum(up, down) * (t >= 0)


def sequence_drive(rng: np.random.Generator, n: int, mix: dict[str, float], talk: float,
                   subject: SubjectTraits, time_scale: float = 1.0, strength: float = 1.0) -> np.ndarray:
    """``[n, 17]`` continuous AU drive of one sequence (see the module docstring).

    ``time_scale`` stretches every duration (1.0: an episode lasts about 6-30 frames, so short
    demo sequences still hold a few expression changes). ``strength`` >= 1 tightens the shared
    structure (:func:`coupled_drive`, coupling above 1): gaps between episodes, the per-AU jitter
    of an episode, the single-AU blips and the AR(1) noise are divided by it; 1 is today's process.
    """
    drive = np.tile(subject.tonic, (n, 1))
    w = np.array([mix.get(p, 0.0) for p in PROTO_NAMES]) * subject.propensity
    w = w / w.sum()
    t = int(rng.integers(-12, 4))
    ts, tight = time_scale, strength
    while t < n:
        onset, apex, offset = (max(1, int(rng.integers(a, b) * ts)) for a, b in ((2, 7), (2, 14), (2, 9)))
        k = rng.choice(len(PROTO_NAMES), p=w)
        amount = subject.vigour * rng.uniform(0.6, 1.6)
        jitter = np.exp(0.25 / tight * rng.standard_normal(len(AUS)))
        drive += amount * np.outer(_envelope(n, t, onset, apex, offset), PROTO_MATRIX[k] * jitter)
        t += onset + apex + offset + int(rng.geometric(min(1.0, tight / (4 * ts))))
    if talk > 0:
        t = int(rng.integers(-10, 10))
        while t < n:
            dur = max(2, int(rng.integers(4, 20) * ts))
            if rng.random() < talk:
                bout = np.zeros(n)
                seg = slice(max(t, 0), max(min(t + dur, n), 0))
                bout[seg] = 0.5 + 0.5 * np.abs(np.sin(np.arange(seg.stop - seg.start) * rng.uniform(0.6, 1.4)))
                drive += 0.9 * np.outer(bout, TALK_VECTOR)
            t += dur
    # random single-AU blips
    for _ in range(rng.poisson(n / (25 * ts * tight))):
        i = int(rng.integers(len(AUS)))
        s = int(rng.integers(-3, n))
        drive[:, i] += rng.uniform(0.5, 1.3) * _envelope(n, s, 2, int(rng.integers(1, 6)), 2)
    # smooth AR(1) noise
    e = np.zeros((n, len(AUS)))
    e[0] = rng.standard_normal(len(AUS))
    phi = 0.8
    for i in range(1, n):
        e[i] = phi * e[i - 1] + np.sqrt(1 - phi ** 2) * rng.standard_normal(len(AUS))
    return drive + 0.22 / tight * e


@dataclass
class Sequence:
    """Labels of one synthetic sequence."""

    subject: str
    task: str
    frames: np.ndarray        # [n] frame numbers as written in the label files
    drive: np.ndarray         # [n, 17]
    amplitude: np.ndarray = field(default=None)  # [n, 17] continuous intensity 0-5 (pixels)
    intensity: np.ndarray = field(default=None)  # [n, 17] int 0-5 (labels)

    @property
    def occurrence(self) -> np.ndarray:
        """``[n, 17]`` 0/1 occurrence (intensity >= 1)."""
        return (self.intensity >= 1).astype(np.int8)


def calibrate(sequences: list[Sequence], rates: dict[int, float]) -> dict[int, tuple[float, float]]:
    """Per-AU ``(threshold, step)`` so that the pooled occurrence rate equals ``rates``."""
    d = np.concatenate([s.drive for s in sequences])
    out = {}
    for au, i in AU_INDEX.items():
        tau = float(np.quantile(d[:, i], 1.0 - rates[au]))
        top = float(np.quantile(d[:, i], 0.998))
        out[au] = (tau, max((top - tau) / 4.6, 0.05))
    return out


def apply_calibration(seq: Sequence, cal: dict[int, tuple[float, float]]) -> None:
    """Fill ``seq.amplitude`` (continuous, pixels) and ``seq.intensity`` (0-5 labels)."""
    tau = np.array([cal[au][0] for au in AUS])
    step = np.array([cal[au][1] for au in AUS])
    c = 1.0 + (seq.drive - tau) / step
    seq.amplitude = np.clip(c, 0.0, 5.0)
    seq.intensity = np.where(c >= 1.0, np.clip(np.floor(c), 1, 5), 0).astype(np.int8)


def pooled_mix(layout: str) -> tuple[dict[str, float], float]:
    """The layout's task mixtures averaged over its tasks (each normalised first) and the mean
    talking share: what an AU follows when it follows no task (the solo process, coupling 0)."""
    tasks = TASK_MIX[layout]
    mix: dict[str, float] = {}
    for weights, _ in tasks.values():
        total = sum(weights.values())
        for name, w in weights.items():
            mix[name] = mix.get(name, 0.0) + w / total / len(tasks)
    return mix, float(np.mean([talk for _, talk in tasks.values()]))


def solo_drive(seed: int, layout: str, subject: str, task: str, n: int, time_scale: float = 1.0) -> np.ndarray:
    """``[n, 17]`` drive in which every AU moves on its own: column i is AU i's column of a draw
    of the whole process (:func:`sequence_drive`) made for AU i alone -- its own random stream,
    its own subject traits, the layout's pooled task mixture (:func:`pooled_mix`, so the task is
    no common cause either). Each AU keeps its episodes, talking, blips, subject offset and noise;
    no two AUs share any of them."""
    mix, talk = pooled_mix(layout)
    out = np.empty((n, len(AUS)))
    for au, i in AU_INDEX.items():
        traits = sample_subject(rng_for(seed, layout, subject, "traits", "solo", au))
        out[:, i] = sequence_drive(rng_for(seed, layout, subject, task, "labels", "solo", au), n, mix, talk,
                                   traits, time_scale)[:, i]
    return out


def check_coupling(coupling: float) -> float:
    """``coupling`` as a float; a ValueError unless it is a finite number >= 0."""
    value = float(coupling)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"SynthAU coupling={coupling!r}; expected a number >= 0 (0: AUs independent, "
                         "1: the default prototypes, above 1: stronger co-occurrence)")
    return value


def generate_sequences(layout: str, plan: list[tuple[str, str, np.ndarray]], seed: int,
                       time_scale: float = 1.0, rates: dict[int, float] | None = None,
                       coupling: float = 1.0) -> list[Sequence]:
    """Labels for every ``(subject, task, frames)`` of ``plan``, calibrated to ``rates``.

    Depends only on ``layout``, ``seed``, the plan and ``coupling`` (each sequence has its own
    random stream), never on rendering. ``coupling`` sets how strongly AUs co-occur, the rates
    staying at their targets (the calibration places every AU's threshold afterwards):

    * 1 (default): the shared process of the module docstring, exactly;
    * 0 <= c < 1: ``sqrt(c) * shared + sqrt(1 - c) * solo`` (:func:`solo_drive`: every AU on its
      own), so at 0 no two AUs share anything;
    * c > 1: the shared process tightened by c (:func:`sequence_drive`'s ``strength``): c times
      as many episodes per frame of gap, 1/c of the single-AU blips, episode jitter and noise.
    """
    coupling = check_coupling(coupling)
    traits: dict[str, SubjectTraits] = {}
    seqs = []
    for subject, task, frames in plan:
        if subject not in traits:
            traits[subject] = sample_subject(rng_for(seed, layout, subject, "traits"))
        mix, talk = TASK_MIX[layout][task]
        n = len(frames)
        drive = 0.0
        if coupling > 0:
            drive = sequence_drive(rng_for(seed, layout, subject, task, "labels"), n, mix, talk, traits[subject],
                                   time_scale, max(1.0, coupling))
        if coupling < 1:
            drive = np.sqrt(coupling) * drive + np.sqrt(1.0 - coupling) * solo_drive(seed, layout, subject, task,
                                                                                      n, time_scale)
        seqs.append(Sequence(subject, task, np.asarray(frames), drive))
    coded = [s for s in seqs if task_is_coded(layout, s.task)]
    cal = calibrate(coded or seqs, rates or TARGET_RATES[layout])
    for s in seqs:
        apply_calibration(s, cal)
    return seqs


def task_is_coded(layout: str, task: str) -> bool:
    """BP4D+ T11 (F042's extra task) has images but no AU coding."""
    return not (layout == "bp4dplus" and task == "T11")
