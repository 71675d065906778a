"""The convergence rule of issue 33, as pure functions on validation curves.

Issue 33 ("Verdicts at convergence"): *a run is converged when a longer schedule would not improve
its own validation score by more than a stated margin (for example, the budget at which the mean
validation curve over 3 folds comes within 1 F1 point, or 0.01 ICC, of its maximum over a
schedule at least 1.5x longer)*. Each dataset, task and model variant gets its measured budget
from curves on validation data only, and the scoreboard marks a claim "not converged" when any of
its runs trained fewer steps than its measured budget.

Here, for one (dataset, task, model variant):

* a **curve** per fold is ``[(step, validation score), ...]``; the study measures it as a ladder
  of whole schedules, one run per budget, each point the best validation score of the run whose
  own cosine schedule ends at that step (:mod:`renet_core.study.budgets`, tools/convergence_curves.py;
  why not the points of one long cosine schedule: docs/reproduction-notes.md, "The convergence rule");
* the **mean curve** is the mean over folds at each step every fold evaluated with a finite score
  (:func:`mean_curve`); a step missing or NaN on any fold is left out, not imputed;
* the **converged budget** is the smallest step ``B`` of the mean curve whose score is within
  :data:`MARGINS` of the curve's maximum, with the curve reaching at least :data:`HORIZON` x ``B``
  (:func:`converged_budget`); no such step: *not converged, budget unknown* (a curve still rising
  at its end: nothing early enough to be judged is within the margin of its maximum);
* the ladder's budgets are :data:`LONGER` (1.5x, the issue's "at least 1.5x longer") apart, and a
  budget is judged by the three rungs above it (:data:`HORIZON` = 1.5^3 = 3.375x): one rung's
  look-ahead was measured to be myopic for RE-Net, whose curve is flat from 1250 to 1875 steps and
  then climbs ~6 points by 5000 (docs/reproduction-notes.md, "The convergence rule");
* fewer than :data:`MIN_FOLDS` folds: *too few folds*, no budget.

A run is then converged when it trained at least its variant's budget (:func:`claim_convergence`);
the RE-Net-vs-ResNet-18 validation gap plays no part in it. Validation scores only: the rule never
sees a test score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

#: The margin of the rule per task, in the validation score's units: 1 F1 point (F1 as a
#: fraction, 0.01) for occurrence, 0.01 ICC for intensity (issue 33).
MARGINS = {"occurrence": 0.01, "intensity": 0.01}
#: The ladder's spacing: each budget at least this multiple of the one before (issue 33: "a
#: schedule at least 1.5x longer").
LONGER = 1.5
#: The evidence a budget needs: the curve must reach at least this multiple of it (three rungs
#: of the ladder). A single 1.5x look-ahead accepted RE-Net's 1250 steps on a flat stretch of a
#: curve that rises ~6 F1 points more by 5000 (measured 2026-12-03; reproduction notes).
HORIZON = LONGER ** 3
#: Folds the rule needs (issue 33: "the mean validation curve over 3 folds").
MIN_FOLDS = 3
#: Float slack of the comparisons (a score exactly at the margin is within it).
_EPS = 1e-9


@dataclass(frozen=True)
class Budget:
    """The rule's answer for one (dataset, task, model variant): ``steps`` (None unless
    ``status == "converged"``), the ``status`` ("converged", "not converged", "too few folds"),
    the ``reason`` in words, the mean curve it read and its maximum."""

    steps: int | None
    status: str
    reason: str
    folds: int
    margin: float
    curve: tuple[tuple[int, float], ...] = ()
    peak: float | None = None
    peak_step: int | None = None
    dropped: tuple[int, ...] = field(default=())

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def score(self) -> float | None:
        """The mean curve's score at the budget (None when not converged)."""
        return dict(self.curve).get(self.steps) if self.steps is not None else None


def rule_text() -> str:
    """The rule in words, stated once for the scoreboard's header (results/README.md) and the notes."""
    return (f"**Converged**: every run of the claim trained at least the converged budget measured for its "
            f"dataset, task and model variant (`renet_core/resources/converged_budgets.csv`; steps of one-AU "
            f"batches, a strategy-1 step of all C AUs counting C). The budget is issue 33's rule, on "
            f"validation data only: the smallest budget at which the mean over {MIN_FOLDS} folds of the "
            f"run's best validation score comes within {100 * MARGINS['occurrence']:g} F1 point "
            f"({MARGINS['intensity']:g} ICC) of its maximum, the curve reaching schedules at least {HORIZON:g}x "
            f"longer (three budgets of a ladder spaced {LONGER:g}x), each budget its own run of its own cosine schedule (`tools/convergence_curves.py`, "
            "`results/convergence_*.md`). A claim with a run below its budget, or with no budget measured "
            "for one of its runs, is marked *not converged*: its verdict may measure the training budget, "
            "not the method.")


def margin_for(task: str) -> float:
    """:data:`MARGINS` of ``task`` ("occurrence" or "intensity"); an error names the others."""
    if task not in MARGINS:
        raise ValueError(f"task {task!r}: no convergence margin; expected one of {sorted(MARGINS)}")
    return MARGINS[task]


def _checked(fold, curve: Sequence) -> dict[int, float]:
    """``{step: score}`` of one fold's curve, NaN for a missing score; a clear error for a step
    that is not a positive integer, a repeated step or a score that is not a number."""
    out: dict[int, float] = {}
    for point in curve:
        try:
            step, score = point
        except (TypeError, ValueError):
            raise ValueError(f"fold {fold}: curve point {point!r}; expected (step, validation score)") from None
        if isinstance(step, bool) or not float(step).is_integer() or int(step) < 1:
            raise ValueError(f"fold {fold}: step {step!r}; expected a positive integer (training steps)")
        step = int(step)
        if step in out:
            raise ValueError(f"fold {fold}: step {step} appears twice; expected one score per step")
        if score is None:
            score = math.nan
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            try:
                score = float(score)
            except (TypeError, ValueError):
                raise ValueError(f"fold {fold}: score {score!r} at step {step}; expected a number or NaN") from None
        out[step] = float(score)
    return out


def mean_curve(curves: Mapping[int, Sequence]) -> tuple[list[tuple[int, float]], list[int]]:
    """``(mean curve, dropped steps)``: per step, the mean over folds of ``curves`` (``{fold:
    [(step, score), ...]}``), in step order, at the steps where every fold has a finite score;
    the others are returned as dropped (a mean over fewer folds would mix other subjects in)."""
    checked = {fold: _checked(fold, curve) for fold, curve in curves.items()}
    steps = sorted({s for c in checked.values() for s in c})
    kept, dropped = [], []
    for step in steps:
        values = [c.get(step, math.nan) for c in checked.values()]
        if values and all(math.isfinite(v) for v in values):
            kept.append((step, sum(values) / len(values)))
        else:
            dropped.append(step)
    return kept, dropped


def converged_budget(curves: Mapping[int, Sequence], margin: float, longer: float = HORIZON,
                     min_folds: int = MIN_FOLDS) -> Budget:
    """Issue 33's rule on ``curves`` (``{fold: [(step, validation score), ...]}``): the smallest
    step ``B`` at which the mean-over-folds curve (:func:`mean_curve`) comes within ``margin`` of
    its maximum, where the curve extends to at least ``longer`` x ``B`` (evidence that a schedule
    that much longer gains no more than the margin). No such step: not converged, budget unknown.
    Fewer than ``min_folds`` folds: too few folds. Validation scores only."""
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin={margin!r}; expected a number >= 0 (0.01: 1 F1 point or 0.01 ICC)")
    if not longer >= 1:
        raise ValueError(f"longer={longer!r}; expected a number >= 1 (default {HORIZON:g}: three 1.5x rungs)")
    n = len(curves)
    curve, dropped = mean_curve(curves)
    common = dict(folds=n, margin=float(margin), curve=tuple(curve), dropped=tuple(dropped))
    if curve:
        peak_step, peak = max(curve, key=lambda p: (p[1], -p[0]))   # the earliest of equal maxima
        common.update(peak=peak, peak_step=peak_step)
    if n < min_folds:
        return Budget(None, "too few folds", f"{n} fold(s); the rule needs the mean curve over {min_folds}", **common)
    if not curve:
        return Budget(None, "not converged", "no step with a finite validation score on every fold", **common)
    last = curve[-1][0]
    for step, score in curve:
        if step * longer > last + _EPS:
            break
        if score >= peak - margin - _EPS:
            return Budget(step, "converged", f"{score:.4f} at step {step} is within {margin:g} of the maximum "
                          f"{peak:.4f} (step {peak_step}) of a curve that reaches step {last} "
                          f"(>= {longer:g} x {step})", **common)
    limit = last / longer
    if curve[0][0] > limit + _EPS:
        return Budget(None, "not converged", f"the curve ends at step {last}: too short to judge any of its budgets "
                      f"(the first, {curve[0][0]}, needs one reaching {longer:g}x it), budget unknown", **common)
    shape = ("still rising at its end" if peak_step == last else
             f"the curve rises past the budgets it can judge (its maximum is at step {peak_step}, before its end {last})")
    return Budget(None, "not converged", f"no step up to {limit:g} (the curve's end {last} / {longer:g}) is within "
                  f"{margin:g} of its maximum {peak:.4f} at step {peak_step}: {shape}, budget unknown", **common)


def fold_budgets(curves: Mapping[int, Sequence], margin: float, longer: float = HORIZON) -> dict:
    """The rule on each fold's curve alone (``{fold: Budget}``): information beside the mean's
    budget, which is the one that decides."""
    return {fold: converged_budget({fold: curve}, margin, longer, min_folds=1) for fold, curve in curves.items()}


def claim_convergence(runs: Iterable[Mapping], budgets: Mapping[tuple[str, str, str], int | None]) -> tuple[bool, str]:
    """Whether a claim's runs are all converged, and why not: ``runs`` are its runs (``dataset``,
    ``task``, ``variant`` -- the run's method name, e.g. "renet-learnable" -- and ``steps``, the
    one-AU steps its schedule trains, None when not capped), ``budgets`` the measured budget per
    (dataset, task, variant). A run is converged when its steps are at least its variant's
    budget; a run whose variant has no measured budget, or whose steps are not capped, is not.
    ``(True, "yes")`` or ``(False, "<reasons>")``; a claim with no runs is not converged."""
    runs = list(runs)
    if not runs:
        return False, "no runs"
    missing, uncapped, short = [], [], []
    for key in dict.fromkeys((r["dataset"], r["task"], r["variant"]) for r in runs):
        steps = [r["steps"] for r in runs if (r["dataset"], r["task"], r["variant"]) == key]
        budget = budgets.get(key)
        if budget is None:
            missing.append(key[2])
        elif any(s is None for s in steps):
            uncapped.append(f"{key[2]} (budget {int(budget)})")
        elif min(steps) < budget:
            short.append(f"{key[2]} {min(steps)} < {int(budget)} steps")
    reasons = ([f"no budget measured for {', '.join(missing)}"] if missing else []) + short + \
        ([f"steps not capped: {', '.join(uncapped)}"] if uncapped else [])
    return (False, "; ".join(reasons)) if reasons else (True, "yes")
