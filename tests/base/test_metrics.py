"""Metrics against sklearn, a hand-computed ICC and the Shrout & Fleiss (1979) worked example."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, mean_absolute_error

from renet_core.base import metrics


def _labels_with_unknowns(rng, n=300, c=5, missing=0.15):
    y = (rng.random((n, c)) < np.linspace(0.1, 0.6, c)).astype(float)
    prob = np.clip(y * 0.4 + rng.random((n, c)) * 0.7, 0, 1)
    y[rng.random((n, c)) < missing] = np.nan
    return y, prob


def test_f1_per_au_matches_sklearn_with_unknown_labels_dropped():
    rng = np.random.default_rng(0)
    y, prob = _labels_with_unknowns(rng)
    got = metrics.f1_per_au(y, prob)
    for c in range(y.shape[1]):
        known = ~np.isnan(y[:, c])
        want = f1_score(y[known, c].astype(int), (prob[known, c] >= 0.5).astype(int))
        assert got[c] == pytest.approx(want, abs=1e-12)
    assert got.shape == (y.shape[1],)


def test_f1_edge_cases_are_documented_values():
    y = np.array([[0, np.nan, 1], [0, np.nan, 1], [0, np.nan, 0]], dtype=float)
    p = np.array([[0.1, 0.9, 0.9], [0.2, 0.9, 0.4], [0.3, 0.9, 0.6]])
    got = metrics.f1_per_au(y, p)
    assert got[0] == 0.0  # no positives, none predicted: zero_division
    assert np.isnan(got[1])  # no known label at all
    assert got[2] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # TP=1, FP=1, FN=1
    assert np.isnan(metrics.f1_per_au(y[:, :1], p[:, :1], zero_division=np.nan)[0])
    # a threshold is a parameter, never tuned here
    assert metrics.f1_per_au([[1.0]], [[0.5]])[0] == 1.0
    assert metrics.f1_per_au([[1.0]], [[0.5]], threshold=0.6)[0] == 0.0


def test_prior_f1_is_always_present_predictor():
    y = np.array([[1], [0], [0], [0]], dtype=float)  # p = 0.25
    assert metrics.always_positive_f1(y)[0] == pytest.approx(2 * 0.25 / 1.25)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.f1_per_au(np.zeros((3, 2)), np.zeros((3, 3)))


def test_icc_formula_reproduces_shrout_fleiss_1979_table2():
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; published ICC(3,1) = .71.
    ratings = np.array(
        [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    )
    assert metrics.icc3_1_formula(ratings) == pytest.approx(0.7148, abs=5e-4)


def test_icc_hand_computed_two_rater_example():
    # truth 0,1,2,3 and prediction 1,1,3,3: BMS = 8.5/3, EMS = 0.5/3, ICC = (8/3)/(9/3) = 8/9
    got = metrics.icc3_1(np.array([[0.0], [1], [2], [3]]), np.array([[1.0], [1], [3], [3]]))
    assert got[0] == pytest.approx(8 / 9, abs=1e-12)


def test_icc_pingouin_agrees_with_written_out_formula_and_drops_unknowns():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, size=(200, 3)).astype(float)
    pred = np.clip(truth + rng.normal(0, 1.0, size=truth.shape), 0, 5)
    truth_nan = truth.copy()
    truth_nan[:20, 1] = np.nan
    got = metrics.icc3_1(truth_nan, pred)
    for c in range(3):
        keep = ~np.isnan(truth_nan[:, c])
        want = metrics.icc3_1_formula(np.stack([truth[keep, c], pred[keep, c]], axis=1))
        assert got[c] == pytest.approx(want, abs=1e-10)
    # consistency ICC ignores a constant offset, unlike agreement
    shifted = metrics.icc3_1(truth, truth + 1.0)
    assert np.allclose(shifted, 1.0)
    assert np.isnan(metrics.icc3_1(np.zeros((5, 1)), np.zeros((5, 1)))[0])


def test_mae_matches_sklearn():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 6, size=(100, 4)).astype(float)
    pred = rng.random((100, 4)) * 5
    truth[::7, 2] = np.nan
    got = metrics.mae(truth, pred)
    for c in range(4):
        keep = ~np.isnan(truth[:, c])
        assert got[c] == pytest.approx(mean_absolute_error(truth[keep, c], pred[keep, c]))


def test_decode_intensity_rules():
    logits = np.full((2, 1, 6), -30.0)
    logits[0, 0, 3] = 30.0
    logits[1, 0, [1, 2]] = 0.0  # two equally likely levels
    assert metrics.decode_intensity(logits, "argmax")[:, 0].tolist() == [3.0, 1.0]
    assert metrics.decode_intensity(logits, "expected")[:, 0] == pytest.approx([3.0, 1.5])
    with pytest.raises(ValueError, match="rule"):
        metrics.decode_intensity(logits, "median")


def test_paper_average_is_mean_over_aus_then_folds():
    per_fold = [[0.2, 0.4], [0.6, 0.8], [0.1, 0.3]]
    assert metrics.paper_average(per_fold) == pytest.approx(np.mean([0.3, 0.7, 0.2]))
