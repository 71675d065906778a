"""The study's diagnostic scripts in ``tools/`` (docs/findings.md): ``rescore_validation.py``
(rescoring a finished run's kept weights on its validation subset gives back the recorded best
validation score; a run not in the cache is refused by name), ``test_sampling_split.py`` (its
frame bootstrap on a case with a known answer) and ``premise_partner_auc.py`` (AUCs within a
partner's strata on a case computed by hand) and ``parity_long.py`` (its parity rule on a curve
read by hand; a missing ResNet-18 reference run refused by name)."""

from __future__ import annotations


import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_an_unfinished_run_is_refused_with_its_identity(load_tool):
    from renet_core.study.configs import table_configs

    cfg = table_configs("smoke")["table1"]["renet"][0]
    with pytest.raises(FileNotFoundError, match=cfg.config_hash()):
        load_tool("rescore_validation").rescore(cfg)


@pytest.mark.slow
def test_rescoring_the_kept_weights_gives_back_the_recorded_validation_score(synth_roots, load_tool):
    from renet_core.engine import run
    from renet_core.study.configs import table_configs

    cfg = table_configs("smoke", roots=synth_roots)["table1"]["renet"][0]     # the session's SynthAU copy
    run(cfg)
    scores = load_tool("rescore_validation").rescore(cfg)
    assert scores["val_subset"] == pytest.approx(scores["recorded_best"], abs=1e-6)
    assert scores["n_val_whole"] >= scores["n_val_subset"] > 0 and scores["n_test"] > 0
    assert 0.0 <= scores["test"] <= 1.0


def test_the_frame_bootstrap_of_a_mean_is_its_standard_error(load_tool):
    """Scoring the mean of fixed values over resampled frames: the bootstrap sd is sd / sqrt(n),
    and over two folds the mean's sd is that over sqrt(2)."""
    values = np.random.default_rng(1).normal(0.0, 2.0, 400)
    fold = (np.repeat(np.arange(8), 50), lambda idx: float(values[idx].mean()))
    se, low, high = load_tool("test_sampling_split").frame_bootstrap([fold], resamples=500)
    expected = values.std() / np.sqrt(len(values))
    assert se == pytest.approx(expected, rel=0.15) and low < values.mean() < high
    se2 = load_tool("test_sampling_split").frame_bootstrap([fold, fold], resamples=500)[0]
    assert se2 == pytest.approx(expected / np.sqrt(2), rel=0.2)


def test_partner_aucs_separate_own_evidence_from_the_partners(load_tool):
    """A score for AU2 that is AU1's label and nothing else: over all frames it ranks AU2 well
    (AUC 12/16 = 0.75, counted by hand: 9 wins and 6 ties in 16 pairs), within AU1 on or off it
    ranks nothing (0.5: all ties). Unlabelled frames (NaN) are left out."""
    tool = load_tool("premise_partner_auc")
    au1 = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1], dtype=float)
    au2 = np.array([1, 1, 1, 0, 1, 0, 0, 0, np.nan])
    labels = np.stack([au1, au2], axis=1)
    scores = np.stack([au1, au1], axis=1).astype(np.float32)
    found = tool.partner_aucs(labels, scores, [1, 2], pairs=((2, 1),))
    assert found == pytest.approx({"AU2": 0.75, "AU2 | AU1 on": 0.5, "AU2 | AU1 off": 0.5})
    own = tool.partner_aucs(labels, np.stack([au1, np.nan_to_num(au2)], axis=1), [1, 2], pairs=((2, 1),))
    assert own == pytest.approx({"AU2": 1.0, "AU2 | AU1 on": 1.0, "AU2 | AU1 off": 1.0})


def test_partner_aucs_refuse_a_premise_run_that_is_not_in_the_cache(load_tool):
    with pytest.raises(FileNotFoundError, match="premise run .* is not finished in this cache"):
        load_tool("premise_partner_auc").collect("demo")


def test_parity_is_the_first_evaluation_within_the_tolerance(load_tool):
    """Reference 0.65, tolerance 0.02: 0.62 is 3 points short, 0.635 within 1.5 points."""
    tool = load_tool("parity_long")
    curve = [(500, 0.50), (1000, 0.62), (1500, 0.635), (2000, 0.70)]
    assert tool.first_parity(curve, 0.65) == 1500
    assert tool.first_parity(curve, 0.65, tolerance=0.04) == 1000
    assert tool.first_parity(curve[:2], 0.65) is None


def test_parity_long_refuses_a_missing_reference_run(load_tool):
    with pytest.raises(RuntimeError, match="ResNet-18's table1 run of fold 1 .* is not finished"):
        load_tool("parity_long").study("table1", "smoke", steps=8, evals=2, folds=(1,))
