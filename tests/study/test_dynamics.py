"""The training-dynamics study (notebook 09): variant configs, curve rows and the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from renet_core.base.metrics import always_positive_f1
from renet_core.engine import ExperimentConfig
from renet_core.engine.profiles import PROFILE_NAMES, profile_setting
from renet_core.study import dynamics

AUS = [1, 2, 4]


def base(**changes):
    values = dict(dataset="bp4d", aus=AUS, model="renet", batch_size=8, lr=1e-3, profile="demo")
    values.update(changes)
    return ExperimentConfig(**values)


def test_variant_configs_train_the_asked_steps_without_early_stopping():
    by_name = {v.name: v for v in dynamics.VARIANTS}
    cfg = dynamics.variant_config(base(), by_name["renet-lrC"], steps=600, eval_every=100)
    assert (cfg.epochs, cfg.steps_per_epoch) == (6, 100) and cfg.patience > cfg.epochs
    assert cfg.au_lr_scale == "C" and cfg.lr_scale() == 3.0 and cfg.method == "dynamics-renet-lrC"
    every_au = dynamics.variant_config(base(), by_name["renet-all"], steps=600, eval_every=100)
    assert every_au.strategy == "all" and every_au.epochs * every_au.steps_per_epoch == 150
    ref = dynamics.variant_config(base(), by_name["resnet18"], steps=600, eval_every=100)
    assert ref.model == "resnet18"
    names = [v.name for v in dynamics.VARIANTS]
    assert len(set(names)) == len(names)
    for profile in PROFILE_NAMES:
        chosen = profile_setting(profile, "dynamics")["variants"]
        assert chosen == "all" or set(chosen) <= set(names)
    # every variant is a distinct run
    hashes = {dynamics.variant_config(base(), v, 600, 100).config_hash() for v in dynamics.VARIANTS}
    assert len(hashes) == len(dynamics.VARIANTS)


def test_curve_rows_and_summary_read_the_history():
    variant = dynamics.VARIANTS[1]
    cfg = dynamics.variant_config(base(), variant, steps=20, eval_every=10)
    history = [{"epoch": 1, "loss": 0.7, "val": 0.2, "seconds": 3.0, "train_seconds": 2.0,
                "loss_per_au": [0.7, float("nan"), 0.6], "val_per_au": [0.0, 0.3, 0.3]},
               {"epoch": 2, "loss": 0.5, "val": 0.4, "seconds": 3.0, "train_seconds": 2.5,
                "loss_per_au": [0.5, 0.4, 0.3], "val_per_au": [0.4, 0.4, 0.4]}]
    rows = dynamics.curve_rows(variant, cfg, history, AUS)
    assert rows["step"].tolist() == [10, 20] and rows["train_seconds"].tolist() == [2.0, 4.5]
    assert rows["loss_au"].tolist() == [pytest.approx(0.65), pytest.approx(0.4)]
    assert rows["loss_AU2"].isna().tolist() == [True, False]
    tests = pd.DataFrame([{"variant": variant.name, "test_f1": 0.5, "test_aus_f1_0": 0, "test_aus_above_all_pos": 2}])
    table = dynamics.summary(rows, tests, AUS)
    row = table.iloc[0]
    assert (row["steps"], row["best_step"], row["val_f1_best"], row["val_aus_f1_0"]) == (20, 20, 0.4, 0)
    assert row["loss_first"] == 0.65 and row["test_f1"] == 0.5


def test_always_positive_f1_is_2p_over_1_plus_p():
    y = np.array([[1, 0, np.nan], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=float)
    np.testing.assert_allclose(always_positive_f1(y), [2 * 0.5 / 1.5, 0.0, 2 * (2 / 3) / (5 / 3)])


def test_unknown_variant_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown variants"):
        dynamics.study(profile="smoke", variants=["renet", "nope"], store_dir=tmp_path)


def test_variants_are_what_their_label_says_whatever_the_profile():
    """The demo profile trains RE-Net with au_lr_scale="C" and a cosine lr; the study's "renet"
    curve is still the paper's training, and "renet-lrC-cosine" is the demo's."""
    demo = base(au_lr_scale="C", lr_schedule="cosine", head="per_au")
    by_name = {v.name: v for v in dynamics.VARIANTS}
    paper = dynamics.variant_config(demo, by_name["renet"], 600, 100)
    assert (paper.lr_scale(), paper.lr_schedule, paper.head, paper.strategy) == (1.0, "constant", "shared", "one")
    fixed = dynamics.variant_config(demo, by_name["renet-lrC-cosine"], 600, 100)
    assert (fixed.lr_scale(), fixed.lr_schedule) == (3.0, "cosine")
    # a field the user sets for the whole study is kept unless the variant itself sets it
    mine = dynamics.variant_config(base(au_lr_scale=48), by_name["renet"], 600, 100, keep=["au_lr_scale"])
    assert mine.lr_scale() == 48.0
    theirs = dynamics.variant_config(base(au_lr_scale=48), by_name["renet-lrC"], 600, 100, keep=["au_lr_scale"])
    assert theirs.lr_scale() == 3.0


def test_parity_step_is_the_first_step_within_two_points_of_resnet18s_best():
    curves = pd.DataFrame({"variant": ["resnet18"] * 3 + ["renet-lrC"] * 3,
                           "step": [250, 500, 750] * 2,
                           "val_f1": [0.60, 0.70, 0.69, 0.50, 0.675, 0.69]})
    assert dynamics.parity_step(curves, "renet-lrC") == 750             # 0.675 < 0.70 - 0.02 <= 0.69
    curves.loc[curves["variant"] == "renet-lrC", "val_f1"] = [0.5, 0.6, 0.65]
    assert np.isnan(dynamics.parity_step(curves, "renet-lrC"))          # never within two points
    assert np.isnan(dynamics.parity_step(curves, "resnet18"))


def test_rerun_command_remakes_the_curve_at_its_own_setting():
    """The Markdown's rerun line carries the task, the name and every override: a curve made at
    32 px is remade at 32 px, not at the profile's 48."""
    cfg = base(image_size=32, task="intensity", aus=[6, 10], pretrained="standin")
    changes = {"image_size": 32, "device": "cpu", "amp": None}
    line = dynamics.rerun_command(cfg, 1500, 250, ["resnet18", "renet-lrC"], changes, "parity_32px")
    assert line == ("python -m renet_core dynamics --profile demo --dataset bp4d --task intensity --fold 1 --steps 1500 "
                    "--eval-every 250 --variants resnet18,renet-lrC --name parity_32px --set image_size=32 "
                    "--set pretrained=standin")
