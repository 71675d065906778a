"""Evaluation metrics of the paper (section 4.2) and how its "Avg" columns are formed.

* AU occurrence: F1 per AU at a fixed threshold of 0.5 on the predicted probability (Tables 1-3,
  6-8). Unknown labels (NaN) are dropped per AU. No threshold is ever tuned on test data.
* AU intensity: ICC(3,1) (Shrout & Fleiss 1979: two-way mixed, consistency, single rater) and
  the mean absolute error (Tables 4-5), per AU.
* "Avg": per fold the plain mean over AUs, then the mean of those over the three folds
  (:func:`paper_average`), as the public code of the compared methods does.

All per-AU functions take arrays ``[N, C]`` (frames x AUs) and return ``C`` values.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import pandas as pd

#: Intensity decoding rules from 6-way logits (levels 0-5); see :func:`decode_intensity`.
INTENSITY_RULES = ("argmax", "expected")


def _as_2d(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an array [N, C] (frames x AUs); got shape {arr.shape}")
    return arr


def _check_pair(y_true, y_other, other_name: str) -> tuple[np.ndarray, np.ndarray]:
    t = _as_2d(y_true, "y_true")
    o = _as_2d(y_other, other_name)
    if t.shape != o.shape:
        raise ValueError(f"y_true has shape {t.shape} but {other_name} has shape {o.shape}")
    return t, o


def f1_per_au(y_true, y_prob, threshold: float = 0.5, zero_division: float = 0.0) -> np.ndarray:
    """F1 score per AU (section 4.2; Tables 1-3).

    ``y_true`` [N, C] holds 1/0 and NaN for unknown labels (dropped per AU); ``y_prob`` [N, C]
    holds probabilities, predicted positive where ``y_prob >= threshold`` (0.5, fixed).

    Edge cases: an AU with no known label gives NaN. An AU whose known labels contain no
    positive and that is never predicted positive has F1 = 0/0; it gives ``zero_division``
    (0.0 by default, as ``sklearn.metrics.f1_score`` does). If it is predicted positive somewhere
    its F1 is 0 (no true positive is possible).
    """
    t, p = _check_pair(y_true, y_prob, "y_prob")
    out = np.full(t.shape[1], np.nan)
    for c in range(t.shape[1]):
        known = ~np.isnan(t[:, c])
        if not known.any():
            continue
        truth = t[known, c] > 0.5
        pred = p[known, c] >= threshold
        tp = np.sum(truth & pred)
        fp = np.sum(~truth & pred)
        fn = np.sum(truth & ~pred)
        denom = 2 * tp + fp + fn
        out[c] = zero_division if denom == 0 else 2.0 * tp / denom
    return out


def always_positive_f1(y_true) -> np.ndarray:
    """F1 per AU of predicting every frame positive: ``2p / (1 + p)``, ``p`` the positive rate
    over the known labels of ``y_true`` [N, C] (NaN = unknown; NaN for an AU with no label).

    It is the best label-independent predictor: one that says "present" with rate ``q`` has
    expected F1 ``2pq / (p + q)``, largest at ``q = 1``. A model that learned anything beats it.
    """
    t = _as_2d(y_true, "y_true")
    known = ~np.isnan(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(known, t > 0, False).sum(0) / known.sum(0)
    return 2 * p / (1 + p)


def icc3_1_formula(ratings) -> float:
    """ICC(3,1) written out from Shrout & Fleiss (1979), Table 1, case 3 (consistency, single):

    ``ICC(3,1) = (BMS - EMS) / (BMS + (k - 1) * EMS)`` with ``ratings`` [n targets, k raters],
    BMS the between-targets mean square and EMS the residual mean square of the two-way ANOVA.
    """
    x = np.asarray(ratings, dtype=np.float64)
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((x - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems
    return float("nan") if denom == 0 else float((bms - ems) / denom)


def _pingouin_icc3(truth: np.ndarray, pred: np.ndarray) -> float:
    import pingouin as pg  # lazy: slow to import (~1 s), used for ICC only

    n = len(truth)
    long = pd.DataFrame(
        {
            "target": np.concatenate([np.arange(n), np.arange(n)]),
            "rater": np.repeat(["truth", "prediction"], n),
            "rating": np.concatenate([truth, pred]),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pg.intraclass_corr(long, targets="target", raters="rater", ratings="rating")
    # pingouin < 0.7 names the row "ICC3", from 0.7 on "ICC(C,1)".
    row = table[table["Type"].isin(["ICC3", "ICC(C,1)"])]
    if len(row) != 1:
        raise RuntimeError(f"pingouin.intraclass_corr returned no ICC3/ICC(C,1) row: {list(table['Type'])}")
    return float(row["ICC"].iloc[0])


def icc3_1(y_true, y_pred) -> np.ndarray:
    """ICC(3,1) per AU between ground-truth and predicted intensity (section 4.2; Tables 4-5).

    Computed with ``pingouin.intraclass_corr`` (row "ICC3", called "ICC(C,1)" in pingouin >= 0.7),
    the two "raters" being the annotation and the model. Frames with an unknown label are dropped
    per AU. An AU with fewer than two known frames, or with no variance at all in truth and
    prediction together, gives NaN (the ratio is 0/0).
    """
    t, p = _check_pair(y_true, y_pred, "y_pred")
    out = np.full(t.shape[1], np.nan)
    for c in range(t.shape[1]):
        known = ~np.isnan(t[:, c])
        truth, pred = t[known, c], p[known, c]
        if len(truth) < 2:
            continue
        if np.ptp(truth) == 0 and np.ptp(pred) == 0:
            continue  # no variance at all: 0/0
        out[c] = _pingouin_icc3(truth, pred)
    return out


def mae(y_true, y_pred) -> np.ndarray:
    """Mean absolute error per AU (section 4.2; Tables 4-5); unknown labels dropped per AU."""
    t, p = _check_pair(y_true, y_pred, "y_pred")
    out = np.full(t.shape[1], np.nan)
    for c in range(t.shape[1]):
        known = ~np.isnan(t[:, c])
        if known.any():
            out[c] = float(np.mean(np.abs(t[known, c] - p[known, c])))
    return out


def decode_intensity(logits, rule: str = "expected") -> np.ndarray:
    """Turn 6-way intensity logits ``[N, C, 6]`` into intensities ``[N, C]`` (levels 0-5).

    ``rule="expected"``: the expected level under the softmax, ``sum_l l * p(l)`` (a real number
    in [0, 5]; the default, because ICC and MAE reward being close, not only being exact).
    ``rule="argmax"``: the most probable level (an integer). The paper does not say which one
    it used (section 4.5 only says "the output of the model is set as six").
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"intensity logits must be [N, C, levels]; got shape {z.shape}")
    if rule == "argmax":
        return z.argmax(axis=-1).astype(np.float64)
    if rule == "expected":
        z = z - z.max(axis=-1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=-1, keepdims=True)
        return prob @ np.arange(z.shape[-1], dtype=np.float64)
    raise ValueError(f"unknown intensity rule {rule!r}; expected one of {INTENSITY_RULES}")


def fold_mean(per_au: Iterable[float]) -> float:
    """The "Avg" of one fold: the plain mean over AUs (NaN AUs ignored, with a warning)."""
    values = np.asarray(list(per_au), dtype=np.float64)
    if np.isnan(values).all():
        return float("nan")
    if np.isnan(values).any():
        warnings.warn(f"{int(np.isnan(values).sum())} AU value(s) are NaN and left out of the mean")
    return float(np.nanmean(values))


def paper_average(per_fold_per_au) -> float:
    """The papers' "Avg": mean over AUs within each fold, then the mean over folds.

    ``per_fold_per_au`` is ``[folds, C]`` (or a list of per-fold AU vectors). With equal AU counts
    per fold this equals the mean of the per-AU fold means shown in the AU columns.
    """
    return float(np.mean([fold_mean(row) for row in per_fold_per_au]))
