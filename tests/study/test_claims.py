"""The claims scoreboard (renet_core.study.claims, renet_core.study.intervals): per-fold
differences, 95% intervals with known answers, verdict rules, the test-sampling bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from renet_core.study import claims, intervals


def rows(entry: str, values: dict[int, list[float]], aus=(1, 2, 4)) -> pd.DataFrame:
    """Result rows of one table entry: ``values[fold]`` holds F1 (0-1) per AU."""
    return pd.DataFrame([{"entry": entry, "fold": fold, "au": au, "metric": "f1", "value": v}
                         for fold, vs in values.items() for au, v in zip(aus, vs)])


def test_paired_t_interval_by_hand():
    mean, low, high = intervals.paired_t_interval([10.0, 20.0, 0.0])      # mean 10, sd 10, n 3
    half = 4.302652729911275 * 10.0 / np.sqrt(3)                           # t(0.975, 2) = 4.3027
    assert (mean, low, high) == pytest.approx((10.0, 10.0 - half, 10.0 + half))
    assert intervals.paired_t_interval([1.0, 3.0])[1:] == pytest.approx(
        (2.0 - stats.t.ppf(0.975, 1) * np.sqrt(2) / np.sqrt(2), 2.0 + stats.t.ppf(0.975, 1)))
    one = intervals.paired_t_interval([5.0])                               # one run: no interval
    assert one[0] == 5.0 and one[1] == -np.inf and one[2] == np.inf


def test_verdicts_follow_the_interval():
    assert intervals.verdict(0.5, 3.0) == "holds"
    assert intervals.verdict(-3.0, -0.1) == "does not hold"
    assert intervals.verdict(-0.5, 1.0) == "inconclusive"
    assert intervals.verdict(-np.inf, np.inf) == "inconclusive"
    assert intervals.verdict(-1.5, 1.9, margin=2.0) == "holds"             # inside +-2
    assert intervals.verdict(2.5, 6.0, margin=2.0) == "does not hold"      # wholly outside
    assert intervals.verdict(1.0, 3.0, margin=2.0) == "inconclusive"


def test_subject_bootstrap_knows_only_test_sampling():
    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(40), 20)                               # 40 subjects x 20 frames
    effect = rng.normal(0, 1.0, 40)[subjects]                             # per-subject difference
    sd, low, high = intervals.subject_bootstrap([(subjects, lambda idx: effect[idx].mean())], resamples=3000)
    expected = effect.reshape(40, 20)[:, 0].std(ddof=0) / np.sqrt(40)     # se of a mean of 40 subjects
    assert sd == pytest.approx(expected, rel=0.1) and low < effect.mean() < high
    same = intervals.subject_bootstrap([(subjects, lambda idx: 0.0)] * 2, resamples=50)
    assert same == (0.0, 0.0, 0.0)


def test_coverage_simulation_justifies_the_t_interval():
    """With retraining noise, an interval that knows only test sampling covers far too rarely;
    the paired t-interval over three folds keeps its 95%."""
    assert intervals.coverage("t", retrain_sd=2.0, test_sd=1.0) == pytest.approx(0.95, abs=0.015)
    assert intervals.coverage("test-only", retrain_sd=2.0, test_sd=1.0) < 0.7     # theory: 0.62
    assert intervals.coverage("test-only", retrain_sd=0.0, test_sd=1.0) == pytest.approx(0.95, abs=0.015)


def test_scoreboard_decides_by_the_interval_and_names_the_paper_difference():
    three = pd.concat([rows("renet", {1: [.6, .6, .6], 2: [.7, .7, .7], 3: [.62, .62, .62]}),
                       rows("resnet18", {1: [.5, .5, .5], 2: [.5, .5, .5], 3: [.5, .5, .5]})])
    board = claims.scoreboard({"table1": three}, {"table1": True}).set_index("claim")
    row = board.loc["RE-Net beats ResNet-18 on BP4D (Table 1)"]
    mean, low, high = intervals.paired_t_interval([10.0, 20.0, 12.0])
    assert (row["difference"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high))
    assert row["ci_method"] == intervals.T_METHOD and row["folds"] == 3 and row["verdict"] == "holds"
    assert row["paper_difference"] == pytest.approx(65.5 - 59.6) and row["paper_inside"] is None  # synthetic
    real = claims.scoreboard({"table1": three}, {"table1": False}).set_index("claim")
    assert real.loc["RE-Net beats ResNet-18 on BP4D (Table 1)", "paper_inside"] is True
    assert board.loc["RE-Net beats ResNet-18 on DISFA (Table 2)", "verdict"] == "not run"
    one = pd.concat([rows("renet", {1: [.9, .9, .9]}), rows("resnet18", {1: [.1, .1, .1]})])
    assert claims.scoreboard({"table1": one}).iloc[0]["verdict"] == "inconclusive"   # one run decides nothing


def test_test_sampling_se_from_saved_predictions_per_fold():
    rng = np.random.default_rng(0)
    aus = [1, 23]

    def saved(fold):
        y = (rng.random((300, 2)) < 0.25).astype(float)
        good = np.where(rng.random((300, 2)) < 0.9, y, 1 - y)
        return {"y_true": y, "scores": good, "aus": np.array(aus), "subject": np.repeat(np.arange(15), 20)}

    preds = {f: saved(f) for f in (1, 2, 3)}
    table6 = pd.concat([rows("renet-unseenAU23", {f: [0.0, 0.8] for f in (1, 2, 3)}, aus=aus),
                        rows("always-positive", {f: [0.0, 0.4] for f in (1, 2, 3)}, aus=aus)])
    board = claims.scoreboard({"table6": table6}, predictions=lambda t, e: preds if e == "renet-unseenAU23"
                              else None).set_index("claim")
    row = board.loc["An unseen AU23 is recognised above chance (Table 6)"]
    assert 0 < row["se_test_sampling"] < 10 and row["verdict"] == "holds"     # the same +40 on every fold
    assert np.isnan(claims.scoreboard({"table6": table6}).iloc[7]["se_test_sampling"])


def test_render_marks_claims_not_converged_and_keeps_the_gap_as_information():
    """A claim is marked not converged from its runs' budgets (``converged``), never from the
    validation gap, and the mark never changes the verdict; the header states the rule once."""
    three = pd.concat([rows("renet", {f: [.3, .3, .3] for f in (1, 2, 3)}),
                       rows("resnet18", {1: [.5, .6, .7], 2: [.55, .6, .7], 3: [.5, .65, .7]})])
    board = claims.scoreboard({"table1": three, "table2": three})
    plain = claims.render(board)
    assert "converged" not in plain and "95% interval" in plain and intervals.T_METHOD in plain
    board = board[board["table"].isin(["table1", "table2"])].copy()
    verdicts = list(board["verdict"])
    board["val_gap"] = [-0.013, -0.30]                     # a large gap: information only
    board["converged"] = [True, False]
    board["convergence"] = ["yes", "renet 1250 < 4220 steps"]
    text = claims.render(board)
    line1 = next(x for x in text.splitlines() if x.startswith("| RE-Net beats ResNet-18 on BP4D (Table 1)"))
    line2 = next(x for x in text.splitlines() if x.startswith("| RE-Net beats ResNet-18 on DISFA (Table 2)"))
    assert "| -1.3 | yes | **does not hold** |" in line1
    assert "| -30.0 | no: renet 1250 < 4220 steps | **does not hold** (not converged) |" in line2
    assert list(board["verdict"]) == verdicts and text.count("3.375x longer") == 1 and "information only" in text
    # a claim kept from a committed claims.csv reads its mark back as text
    kept = board.assign(converged=["True", "False"], convergence=["yes", float("nan")])
    lines = claims.render(kept).splitlines()
    assert any("| yes | **does not hold** |" in x for x in lines)
    assert any("| no | **does not hold** (not converged) |" in x for x in lines)
    # Fig. 3's silhouette claim reads Table 1's detection runs: its gap is in F1 points too
    fig3 = board.iloc[[0]].assign(claim="Fig. 3 claim", metric="silhouette", val_gap=-0.077)
    line3 = next(x for x in claims.render(fig3).splitlines() if x.startswith("| Fig. 3 claim"))
    assert "| -7.7 |" in line3


def test_validation_gap_reads_the_best_validation_of_both_runs_per_fold():
    """board.validation_gap: RE-Net's best validation score minus ResNet-18's, mean over the folds
    where both are finished (a NaN epoch is skipped); None without a finished pair."""
    from types import SimpleNamespace

    from renet_core.study import board

    histories = {"r1": [0.50, 0.62, float("nan")], "b1": [0.66, 0.64], "r2": [0.70], "b2": [0.69], "r3": [0.9]}

    class Store:
        def is_done(self, key):
            return key in histories

        def done_summary(self, key):
            return {"history": [{"epoch": i + 1, "val": v} for i, v in enumerate(histories[key])]}

    def cfg(key):
        return SimpleNamespace(config_hash=lambda: key)

    configs = {"renet": [cfg("r1"), cfg("r2"), cfg("r3")], "resnet18": [cfg("b1"), cfg("b2"), cfg("b3")]}
    assert board.validation_gap(configs, Store()) == pytest.approx(((0.62 - 0.66) + (0.70 - 0.69)) / 2)
    assert board.validation_gap({"renet": configs["renet"][2:], "resnet18": configs["resnet18"][2:]}, Store()) is None
    assert board.validation_gap({"renet": configs["renet"]}, Store()) is None
    assert -0.015 > -board.PARITY_TOLERANCE > -0.025
