"""95% intervals that decide the claims scoreboard's verdicts (issue: "claims that are evidence").

A claim is a paired difference between two table rows, measured once per fold: each fold trains
both models afresh on its own training subjects and tests them on its own test subjects, so the
spread of the per-fold differences holds both sources a verdict has to beat -- retraining on other
subjects (and other floating-point paths) and the sampling of the test frames. The decision uses
the **paired t-interval over folds** (:func:`paired_t_interval`): mean +- t(0.975, n-1) sd / sqrt(n).
With three folds t = 4.30, so an interval is about 2.5 per-fold standard deviations wide on each
side; that is the honest price of three replicates.

:func:`subject_bootstrap` measures one source alone, the test sampling, by resampling the test
*subjects* of each fold (frames of one subject are not independent) and combining folds: it is
reported beside the verdict to say which variation dominates, never used to decide, because it is
blind to retraining variation. :func:`coverage` is the small simulation behind this choice
(docs/reproduction-notes.md, "Claims scoreboard: the 95% interval").
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
#: How the deciding interval is computed, as the scoreboard names it (``ci_method``).
T_METHOD = "paired t over folds (95%)"
#: Subject-bootstrap resamples (:func:`subject_bootstrap`).
RESAMPLES = 2000


def paired_t_interval(per_fold: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the paired differences ``per_fold`` (one per fold): the Student-t
    interval mean +- t((1 + level) / 2, n - 1) * sd / sqrt(n). Needs two or more folds; with one,
    the interval is (-inf, inf): one training run says nothing about retraining."""
    d = np.asarray([v for v in per_fold if v == v], dtype=float)
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    if len(d) < 2:
        return mean, -np.inf, np.inf
    half = float(stats.t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return mean, mean - half, mean + half


def subject_bootstrap(folds: Sequence[tuple[np.ndarray, Callable[[np.ndarray], float]]],
                      resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> tuple[float, float, float]:
    """Test-sampling alone: ``(sd, low, high)`` of the mean over folds of a difference recomputed
    on test subjects drawn with replacement within each fold. ``folds`` holds per fold the test
    frames' subject ids [N] and ``score(frame_indices) -> difference`` (e.g. the F1 difference of
    two models' predictions on those frames)."""
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for subjects, score in folds:
        subjects = np.asarray(subjects)
        names, first = np.unique(subjects, return_inverse=True)
        members = [np.flatnonzero(first == k) for k in range(len(names))]
        for r in range(resamples):
            chosen = rng.integers(0, len(names), len(names))
            draws[r] += score(np.concatenate([members[k] for k in chosen]))
    draws /= max(len(folds), 1)
    tail = (1 - level) / 2
    return float(draws.std(ddof=1)), float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))


def verdict(low: float, high: float, margin: float | None = None) -> str:
    """"holds" when the interval lies above zero, "does not hold" below, else "inconclusive"; for a
    claim of no difference (``margin``: the equivalence margin), "holds" when the whole interval
    lies within +-margin, "does not hold" when it lies wholly outside, else "inconclusive"."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if margin is not None:
        if -margin <= low and high <= margin:
            return "holds"
        if high < -margin or low > margin:
            return "does not hold"
        return "inconclusive"
    if low > 0:
        return "holds"
    if high < 0:
        return "does not hold"
    return "inconclusive"


def coverage(method: str, retrain_sd: float, test_sd: float, folds: int = 3, trials: int = 4000,
             seed: int = 0) -> float:
    """The simulation behind the choice: how often a 95% interval covers the true difference 0
    when each fold's measured difference = retraining noise (sd ``retrain_sd``) + test-sampling
    noise (sd ``test_sd``). ``method`` "t": the paired t-interval over folds; "test-only": an
    interval that knows only the test-sampling sd (as a bootstrap over test frames or subjects),
    mean +- 1.96 test_sd / sqrt(folds)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0, retrain_sd, (trials, folds)) + rng.normal(0, test_sd, (trials, folds))
    if method == "t":
        bounds = [paired_t_interval(row)[1:] for row in d]
    elif method == "test-only":
        half = stats.norm.ppf(0.975) * test_sd / np.sqrt(folds)
        bounds = [(row.mean() - half, row.mean() + half) for row in d]
    else:
        raise ValueError(f"method {method!r}; expected 't' or 'test-only'")
    return float(np.mean([lo <= 0 <= hi for lo, hi in bounds]))
