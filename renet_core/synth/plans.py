"""Which subjects, tasks and frame numbers each SynthAU layout and size holds (synthetic).

Subject IDs are the real ones, so the standard subject-exclusive folds apply unchanged.

* ``bp4d``: all 41 subjects (F001-F023, M001-M018). smoke: 1 task x 4 frames each (164 frames);
  demo: 3 tasks x 20 frames each (2,460 frames), tasks rotating over T1-T8 so every task occurs.
  Coded segments start at frame 1 for about a third of the sequences and partway into the video
  otherwise; F001 T1 starts at 2440 and M007 T4 at 26 as in the real release.
* ``disfa``: all 27 subjects, one left and one right video each. smoke: 6 frames (SN010: 5);
  demo: 74 frames (SN010: 73), 1,997 frames in all.
* ``bp4dplus``: all 140 subjects (F001-F082, M001-M058), coded tasks T1, T6, T7, T8 (F082 never
  T1). smoke: 1 task x 3 frames each (420 frames); demo: 2 tasks x 9 frames each (2,520 frames).
  F042 also has uncoded T11 images (2 frames) in its zip.
"""

from __future__ import annotations

import numpy as np

from .labels import rng_for

BP4D_SUBJECTS = [f"F{i:03d}" for i in range(1, 24)] + [f"M{i:03d}" for i in range(1, 19)]
DISFA_SUBJECTS = [f"SN{i:03d}" for i in list(range(1, 14)) + [16, 17, 18, 21] + list(range(23, 33))]
BP4DPLUS_SUBJECTS = [f"F{i:03d}" for i in range(1, 83)] + [f"M{i:03d}" for i in range(1, 59)]
BP4D_TASKS = [f"T{i}" for i in range(1, 9)]
BP4DPLUS_TASKS = ["T1", "T6", "T7", "T8"]

SIZES = ("smoke", "demo")
#: frames per sequence and tasks per subject for each layout and size
SIZE_TABLE = {
    "bp4d": {"smoke": dict(tasks=1, frames=4), "demo": dict(tasks=3, frames=20)},
    "disfa": {"smoke": dict(tasks=1, frames=6), "demo": dict(tasks=1, frames=74)},
    "bp4dplus": {"smoke": dict(tasks=1, frames=3), "demo": dict(tasks=2, frames=9)},
}
FIXED_STARTS = {("F001", "T1"): 2440, ("M007", "T4"): 26, ("M009", "T8"): 1}


def _check_size(layout: str, size: str) -> dict:
    if layout not in SIZE_TABLE:
        raise ValueError(f"unknown SynthAU layout {layout!r}; expected one of {sorted(SIZE_TABLE)}")
    if size not in SIZES:
        raise ValueError(f"unknown SynthAU size {size!r}; expected one of {SIZES}")
    return SIZE_TABLE[layout][size]


def bp4d_plan(size: str, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """``(subject, task, frame numbers)`` of every BP4D sequence."""
    cfg = _check_size("bp4d", size)
    plan = []
    for i, s in enumerate(BP4D_SUBJECTS):
        tasks = [BP4D_TASKS[(i + 3 * k) % 8] for k in range(cfg["tasks"])]
        if s == "M007" and "T4" not in tasks:
            tasks[0] = "T4"
        for t in sorted(tasks):
            rng = rng_for(seed, "bp4d", s, t, "start")
            start = FIXED_STARTS.get((s, t))
            if start is None:
                start = 1 if rng.random() < 0.35 else int(rng.integers(20, 2600))
            plan.append((s, t, np.arange(start, start + cfg["frames"])))
    return plan


def disfa_plan(size: str, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """One ``(subject, "video", frameIdx 1..N)`` per DISFA subject; SN010 is one frame shorter."""
    cfg = _check_size("disfa", size)
    return [(s, "video", np.arange(1, cfg["frames"] + (0 if s == "SN010" else 1)))
            for s in DISFA_SUBJECTS]


def bp4dplus_plan(size: str, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """``(subject, task, frames 1..n)`` of every BP4D+ sequence, plus F042's uncoded T11."""
    cfg = _check_size("bp4dplus", size)
    plan = []
    for i, s in enumerate(BP4DPLUS_SUBJECTS):
        pool = [t for t in BP4DPLUS_TASKS if not (s == "F082" and t == "T1")]
        tasks = sorted({pool[(i + 2 * k) % len(pool)] for k in range(cfg["tasks"])})
        for t in tasks:
            plan.append((s, t, np.arange(1, cfg["frames"] + 1)))
        if s == "F042":
            plan.append((s, "T11", np.arange(1, 3)))
    return plan


PLANS = {"bp4d": bp4d_plan, "disfa": disfa_plan, "bp4dplus": bp4dplus_plan}
