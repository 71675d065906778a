"""The claims scoreboard (renet_core.study.claims): differences, spreads and verdicts from result rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from renet_core.study import claims


def rows(entry: str, values: dict[int, list[float]], aus=(1, 2, 4)) -> pd.DataFrame:
    """Result rows of one table entry: ``values[fold]`` holds F1 (0-1) per AU."""
    return pd.DataFrame([{"entry": entry, "fold": fold, "au": au, "metric": "f1", "value": v}
                         for fold, vs in values.items() for au, v in zip(aus, vs)])


def test_verdicts_follow_the_interval():
    assert claims.verdict(3.0, 1.0) == "holds"
    assert claims.verdict(-3.0, 1.0) == "does not hold"
    assert claims.verdict(0.5, 1.0) == "inconclusive"
    assert claims.verdict(0.5, float("nan")) == "inconclusive"
    assert claims.verdict(0.5, 1.0, equivalent=True) == "holds"          # |0.5| + 1 <= 2
    assert claims.verdict(5.0, 1.0, equivalent=True) == "does not hold"  # 5 - 1 > 2
    assert claims.verdict(1.5, 1.0, equivalent=True) == "inconclusive"


def test_paired_difference_uses_fold_sd_then_au_standard_error():
    claim = claims.CLAIMS[0]                                           # renet vs resnet18, table 1
    three = pd.concat([rows("renet", {1: [.6, .6, .6], 2: [.7, .7, .7], 3: [.5, .5, .5]}),
                       rows("resnet18", {1: [.5, .5, .5], 2: [.5, .5, .5], 3: [.5, .5, .5]})])
    got = claims.paired_difference(three, claim)
    assert got["difference"] == pytest.approx(10.0)                    # F1 points
    assert got["spread"] == pytest.approx(10.0)                        # sd of (10, 20, 0)
    assert got["spread_from"] == "sd over 3 folds" and got["folds"] == 3
    one = pd.concat([rows("renet", {1: [.6, .7, .8]}), rows("resnet18", {1: [.5, .5, .5]})])
    got = claims.paired_difference(one, claim)
    assert got["difference"] == pytest.approx(20.0)
    assert got["spread"] == pytest.approx(10.0 / np.sqrt(3))
    assert got["spread_from"].startswith("1 fold: standard error over 3 AUs")


def test_bootstrap_spread_is_zero_for_identical_sides_and_grows_with_fewer_frames():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.3).astype(float)
    noisy = np.where(rng.random(400) < 0.8, y, 1 - y)                  # 80% right
    same, n = claims.bootstrap_f1_spread(y, noisy, noisy)
    assert same == 0.0 and n == 400
    wide, _ = claims.bootstrap_f1_spread(y[:50], noisy[:50], "always-positive")
    narrow, _ = claims.bootstrap_f1_spread(y, noisy, "always-positive")
    assert 0 < narrow < wide
    y_nan = y.copy()
    y_nan[:100] = np.nan                                               # unknown labels are dropped
    assert claims.bootstrap_f1_spread(y_nan, noisy, "label-prior")[1] == 300
    with pytest.raises(ValueError, match="do not match"):
        claims.bootstrap_f1_spread(y, noisy[:10], "always-positive")
    with pytest.raises(ValueError, match="unknown chance row"):
        claims.bootstrap_f1_spread(y, noisy, "coin")


def test_one_fold_one_au_claim_gets_a_bootstrap_spread_and_a_verdict():
    """Table 6's unseen-AU claims: one fold, one AU. Without predictions they have no spread
    ("inconclusive"); with the run's saved predictions the spread is the bootstrap sd."""
    rng = np.random.default_rng(0)
    aus = [1, 23]
    y = (rng.random((600, 2)) < 0.25).astype(float)
    good = np.where(rng.random((600, 2)) < 0.9, y, 1 - y)              # well above always-positive
    p = y[:, 1].mean()
    f1_23 = 2 * (good[:, 1] * y[:, 1]).sum() / (good[:, 1].sum() + y[:, 1].sum())
    table6 = pd.concat([
        rows("renet-unseenAU23", {1: [0.0, f1_23]}, aus=aus),
        rows("always-positive", {1: [0.0, 2 * p / (1 + p)]}, aus=aus)])
    without = claims.scoreboard({"table6": table6}).set_index("claim")
    text = "An unseen AU23 is recognised above chance (Table 6)"
    assert without.loc[text, "verdict"] == "inconclusive"
    assert without.loc[text, "spread_from"] == "1 fold, 1 AU: no spread"

    saved = {"y_true": y, "scores": good, "aus": np.array(aus)}
    calls = []

    def predictions(table, entry):
        calls.append((table, entry))
        return saved if entry == "renet-unseenAU23" else None

    board = claims.scoreboard({"table6": table6}, predictions=predictions).set_index("claim")
    assert board.loc[text, "spread_from"].startswith("1 fold, 1 AU: bootstrap sd over 600 test frames")
    assert 0 < board.loc[text, "spread"] < board.loc[text, "difference"]
    assert board.loc[text, "verdict"] == "holds"
    assert set(calls) == {("table6", "renet-unseenAU23")}


def test_render_marks_claims_whose_renet_runs_are_under_trained():
    """With the study's budget columns the scoreboard shows RE-Net's steps and marks a claim run
    below the parity steps; without them it renders as before."""
    one = pd.concat([rows("renet", {1: [.3, .3, .3]}), rows("resnet18", {1: [.5, .6, .7]})])
    board = claims.scoreboard({"table1": one, "table2": one})
    plain = claims.render(board)
    assert "RE-Net steps" not in plain and "under-trained" not in plain
    board = board[board["table"].isin(["table1", "table2"])].copy()
    board["renet_steps"] = pd.array([1250, 100], dtype="Int64")
    board["under_trained"] = [False, True]
    board.attrs["parity_steps"] = 1250
    text = claims.render(board)
    line1 = next(x for x in text.splitlines() if x.startswith("| RE-Net beats ResNet-18 on BP4D (Table 1)"))
    line2 = next(x for x in text.splitlines() if x.startswith("| RE-Net beats ResNet-18 on DISFA (Table 2)"))
    assert "| 1250 |" in line1 and "under-trained" not in line1 and "**does not hold**" in line1
    assert "| 100 |" in line2 and "**does not hold** (RE-Net under-trained)" in line2
    assert "about 1250 such steps" in text
