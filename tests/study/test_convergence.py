"""Issue 33's convergence rule (renet_core.study.convergence) on curves with known answers: a
curve still rising at its end is not converged, a flat one converges at its first step within the
margin, the margin's edge, NaN points, fewer than three folds; and the scoreboard's mark of a
claim from its runs' steps and their variants' budgets."""

from __future__ import annotations

import math

import pytest

from renet_core.study import convergence as cv


def three(curve, shifts=(0.0, 0.01, -0.01)):
    """Three folds of one curve, shifted per fold (the mean is the curve)."""
    return {fold: [(s, v + d) for s, v in curve] for fold, d in zip((1, 2, 3), shifts)}


def test_a_curve_still_rising_at_its_end_is_not_converged():
    rising = [(500, 0.40), (1000, 0.50), (1500, 0.55), (2000, 0.58), (3000, 0.61)]
    b = cv.converged_budget(three(rising), 0.01)
    assert not b.converged and b.steps is None and b.status == "not converged"
    assert b.peak == pytest.approx(0.61) and b.peak_step == 3000 and "still rising" in b.reason
    dipped = [(1250, 0.579), (1875, 0.582), (2815, 0.606), (4225, 0.600)]   # RE-Net BP4D at 4225 (measured)
    b = cv.converged_budget(three(dipped), 0.01)
    assert not b.converged and "still rising" not in b.reason and "maximum is at step 2815" in b.reason


def test_a_flat_curve_converges_at_its_first_step_within_the_margin():
    flat = [(250, 0.600), (500, 0.655), (750, 0.662), (1250, 0.660), (1875, 0.664)]
    b = cv.converged_budget(three(flat), 0.01)
    assert b.converged and b.steps == 500 and b.score == pytest.approx(0.655)   # 0.664 - 0.655 <= 0.01
    assert b.peak_step == 1875 and "within" in b.reason and 1875 >= cv.HORIZON * 500


def test_the_budget_needs_a_curve_three_rungs_longer():
    """Within the margin from step 1000 on, but only a step at 3.375 x 1000 or beyond judges it:
    a curve ending at 3000 leaves 1000 unjudged; the earlier 800 is not within the margin."""
    assert cv.HORIZON == pytest.approx(cv.LONGER ** 3) == pytest.approx(3.375)
    curve = [(800, 0.50), (1000, 0.70), (1500, 0.70), (3000, 0.70)]
    assert not cv.converged_budget(three(curve), 0.01).converged
    assert cv.converged_budget(three(curve + [(3375, 0.705)]), 0.01).steps == 1000
    assert cv.converged_budget(three(curve[:2] + [(1500, 0.705)]), 0.01, longer=1.5).steps == 1000


def test_one_rungs_look_ahead_is_myopic_three_are_not():
    """The shape measured for RE-Net on BP4D detection (mean best validation F1, 2026-12-03): flat
    from 1250 to 1875 steps, then a climb (0.646 at 5000 in the committed long schedules). A 1.5x
    look-ahead accepts 1250 on the flat; the three-rung horizon waits for the climb and refuses it."""
    seen = [(1250, 0.579), (1875, 0.582)]
    assert cv.converged_budget(three(seen), 0.01, longer=1.5).steps == 1250        # the myopic answer
    assert not cv.converged_budget(three(seen), 0.01).converged                    # not judged yet
    climb = seen + [(2815, 0.610), (4225, 0.640), (6340, 0.646), (9510, 0.648)]
    b = cv.converged_budget(three(climb), 0.01)
    assert not b.converged and "still rising" in b.reason    # 0.610 is 0.038 below; 4225 needs 14259
    assert cv.converged_budget(three(climb + [(14260, 0.649)]), 0.01).steps == 4225


def test_the_ladders_three_rungs_always_reach_the_horizon():
    demo = [365, 550, 830, 1250, 1875, 2815, 4225, 6340, 9510]      # study.budgets.ladder, demo
    assert all(demo[i + 3] >= cv.HORIZON * demo[i] for i in range(len(demo) - 3))


def test_the_margins_edge_is_inside_and_just_beyond_it_is_outside():
    edge = [(100, 0.69), (200, 0.70), (300, 0.70)]
    assert cv.converged_budget(three(edge, (0, 0, 0)), 0.01, longer=1.5).steps == 100
    beyond = [(100, 0.6899), (200, 0.70), (300, 0.70)]
    assert cv.converged_budget(three(beyond, (0, 0, 0)), 0.01, longer=1.5).steps == 200   # 300 = 1.5 x 200
    assert cv.converged_budget(three(beyond[:2] + [(299, 0.70)], (0, 0, 0)), 0.01, longer=1.5).steps is None
    assert cv.converged_budget(three(beyond, (0, 0, 0)), 0.0101, longer=1.5).steps == 100
    assert cv.converged_budget(three([(100, 0.7), (150, 0.7)]), 0.0, longer=1.5).steps == 100   # margin 0


def test_the_mean_over_folds_decides_not_each_fold():
    """Fold 1 alone is flat, folds 2 and 3 still rise: the mean rises by more than the margin."""
    curves = {1: [(100, 0.70), (200, 0.70), (340, 0.70)],
              2: [(100, 0.50), (200, 0.60), (340, 0.70)],
              3: [(100, 0.50), (200, 0.60), (340, 0.70)]}
    assert not cv.converged_budget(curves, 0.01).converged
    per_fold = cv.fold_budgets(curves, 0.01)
    assert per_fold[1].steps == 100 and not per_fold[2].converged


def test_nan_and_missing_points_leave_their_step_out_of_the_mean():
    curves = three([(100, 0.60), (200, 0.70), (300, 0.70), (400, 0.71)])
    curves[2][1] = (200, float("nan"))                 # step 200 not scored on fold 2
    curves[3] = [p for p in curves[3] if p[0] != 400] + [(500, 0.5)]   # 400 missing on fold 3, 500 on the others
    mean, dropped = cv.mean_curve(curves)
    assert [s for s, _ in mean] == [100, 300] and dropped == [200, 400, 500]
    b = cv.converged_budget(curves, 0.01)
    assert b.dropped == (200, 400, 500) and not b.converged      # 300 is not >= 3.375 x 100
    assert "too short" in b.reason
    assert cv.converged_budget({1: [(1, None)], 2: [(1, math.nan)], 3: [(1, 0.5)]}, 0.01).reason.startswith("no step")


def test_fewer_than_three_folds_give_no_budget():
    flat = [(100, 0.7), (200, 0.7), (340, 0.7)]
    b = cv.converged_budget({1: flat, 2: flat}, 0.01)
    assert b.status == "too few folds" and b.steps is None and b.folds == 2 and "3" in b.reason
    assert cv.converged_budget({1: flat, 2: flat}, 0.01, min_folds=2).steps == 100


def test_bad_curves_and_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="fold 2: step 100 appears twice"):
        cv.converged_budget({1: [(100, 0.5)], 2: [(100, 0.5), (100, 0.6)], 3: []}, 0.01)
    with pytest.raises(ValueError, match="fold 1: step -5"):
        cv.mean_curve({1: [(-5, 0.5)]})
    with pytest.raises(ValueError, match="fold 3: score 'high'"):
        cv.mean_curve({3: [(5, "high")]})
    with pytest.raises(ValueError, match="margin"):
        cv.converged_budget(three([(1, 0.5)]), -0.01)
    with pytest.raises(ValueError, match="intensity"):
        cv.margin_for("detection")
    assert cv.margin_for("occurrence") == cv.margin_for("intensity") == 0.01


def test_a_claim_is_converged_only_when_every_run_reached_its_variants_budget():
    runs = [{"dataset": "bp4d", "task": "occurrence", "variant": v, "steps": s}
            for v, s in (("renet", 1250), ("renet", 1250), ("resnet18", 1250), ("resnet18", 500))]
    budgets = {("bp4d", "occurrence", "renet"): 4220, ("bp4d", "occurrence", "resnet18"): 500}
    ok, why = cv.claim_convergence(runs, budgets)
    assert not ok and why == "renet 1250 < 4220 steps"
    budgets[("bp4d", "occurrence", "renet")] = 1250
    assert cv.claim_convergence(runs, budgets) == (True, "yes")
    del budgets[("bp4d", "occurrence", "resnet18")]
    assert cv.claim_convergence(runs, budgets) == (False, "no budget measured for resnet18")
    uncapped = [dict(runs[0], steps=None)]
    assert not cv.claim_convergence(uncapped, {("bp4d", "occurrence", "renet"): 1250})[0]
    assert cv.claim_convergence([], budgets) == (False, "no runs")
