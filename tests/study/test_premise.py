"""The premise experiment (renet_core.study.premise, notebook 11): its configs go through the
same engine as the tables (shared runs at coupling 1), its intervals through one function, its
outputs have the columns the issue names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from renet_core import study
from renet_core.study import premise


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    from renet_core.engine import ROOT_ENV

    for var in ROOT_ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


def test_paired_interval_is_a_t_interval_over_folds():
    mean, low, high, how = premise.paired_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)                     # t(0.975, 2) x sd 1 / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert "3 folds" in how
    mean, low, high, how = premise.paired_interval([1.5, float("nan")])
    assert mean == 1.5 and np.isnan(low) and np.isnan(high) and "1 fold" in how


def test_settings_and_budget():
    names = [s.name for s in premise.settings()]
    assert names == ["coupling 0", "coupling 1", "coupling 2", "control"]
    assert [s.name for s in premise.settings([1.0], include_control=False)] == ["coupling 1"]
    assert premise.budget("demo") == {"epochs": 5, "steps_per_epoch": 250}       # the parity budget
    assert premise.budget("demo", 600) == {"epochs": 5, "steps_per_epoch": 120}
    assert premise.budget("smoke") == {}
    with pytest.raises(ValueError, match="steps"):
        premise.budget("demo", 0)


def test_coupling_one_is_table_7s_runs_and_other_settings_are_their_own():
    """At coupling 1 the premise's runs are the committed tables' runs (reused, not retrained);
    every other setting has its own data identity and runs."""
    default, other, control = (premise.Setting("coupling 1", 1.0), premise.Setting("coupling 0", 0.0),
                               premise.Setting("control", 2.0, "control"))
    mine = premise.setting_configs(default, "demo", folds=[1], models=("resnet18", "renet-none", "renet"))
    table7 = study.spec_configs(study.TABLES["table7"], "demo", folds=[1])
    for key, cfgs in mine.items():
        assert [c.config_hash() for c in cfgs] == [c.config_hash() for c in table7[key]], key
    table1 = study.spec_configs(study.TABLES["table1"], "demo", folds=[1, 2, 3])
    three = premise.setting_configs(default, "demo", models=("resnet18", "renet"))
    assert {k: [c.config_hash() for c in v] for k, v in three.items()} == \
        {k: [c.config_hash() for c in v] for k, v in table1.items()}
    hashes = {c.config_hash() for s in (default, other, control)
              for cfgs in premise.setting_configs(s, "demo").values() for c in cfgs}
    assert len(hashes) == 3 * 3 * 3
    cfg = premise.setting_configs(control, "demo", folds=[2], models=("renet",))["renet"][0]
    assert cfg.data_identity().endswith("-coupling2-control") and cfg.steps_per_epoch == 250 and cfg.fold == 2
    with pytest.raises(ValueError, match="unknown premise models"):
        premise.setting_configs(default, "demo", models=("renet-magic",))


def _runs():
    """Made-up run rows: RE-Net gains 1 point over Eq. 3 alone per 0.1 mean |PCC|, in every fold."""
    labels = pd.DataFrame({"setting": ["coupling 0", "coupling 1", "control"], "coupling": [0.0, 1.0, 2.0],
                           "synth_setting": ["default", "default", "control"], "mean_abs_pcc": [0.05, 0.15, 0.2]})
    records = []
    for setting, pcc in zip(labels["setting"], labels["mean_abs_pcc"]):
        for fold, offset in ((1, 0.0), (2, 1.0), (3, -1.0)):
            for model, gain in (("resnet18", 5.0), ("renet-none", 0.0), ("renet", 10 * pcc)):
                f1 = {f"f1_AU{a}": 40.0 + offset + gain for a in (1, 2, 4, 23)}
                records.append({"setting": setting, "model": model, "fold": fold, "avg_f1": 40.0 + offset + gain,
                                **f1})
    return pd.DataFrame.from_records(records), labels


def test_differences_and_trend_go_through_the_paired_interval():
    runs, labels = _runs()
    diffs = premise.differences(runs, labels)
    row = diffs[(diffs["setting"] == "coupling 1") & (diffs["model"] == "renet") & (diffs["minus"] == "renet-none")
                & (diffs["aus"] == "all")].iloc[0]
    assert row["difference"] == pytest.approx(1.5) and row["folds"] == 3
    faint = diffs[(diffs["setting"] == "control") & (diffs["minus"] == "resnet18") & (diffs["aus"] == "faint")]
    assert faint["difference"].item() == pytest.approx(2.0 - 5.0)           # AU2 and AU23 only
    trend = premise.trends(runs, labels).set_index("comparison")
    assert trend.loc["RE-Net (fixed PCC) minus Eq. 3 alone", "slope_per_0.1_pcc"] == pytest.approx(1.0)
    assert trend.loc["RE-Net (fixed PCC) minus Eq. 3 alone", "settings"] == 2       # not the control
    text = premise.render(runs.assign(coupling=0.0), labels.assign(mean_abs_pcc_train=0.1, frames=10), diffs,
                          trend.reset_index(), "SynthAU test", "Training budget: none.")
    assert "95% interval" in text and "control" in text and "[+" in text


def test_validation_gaps_say_whether_renet_reached_parity_with_resnet18():
    runs, _ = _runs()
    # best validation F1: ResNet-18 at 60, Eq. 3 alone at 59, RE-Net at 58 in coupling 0 and 59.5 elsewhere
    best = {"resnet18": 60.0, "renet-none": 59.0}
    runs["best_val_f1"] = [best.get(m, 58.0 if s == "coupling 0" else 59.5) for s, m in zip(runs["setting"], runs["model"])]
    gaps = premise.validation_gaps(runs).set_index(["setting", "minus"])
    assert gaps.loc[("coupling 0", "resnet18"), "val_gap"] == pytest.approx(-2.0)
    assert gaps.loc[("coupling 0", "resnet18"), "parity"] == "yes"                     # -2 is within the tolerance
    assert gaps.loc[("coupling 0", "renet-none"), "val_gap"] == pytest.approx(-1.0)
    assert gaps.loc[("coupling 0", "renet-none"), "parity"] == ""                      # parity is against ResNet-18
    runs.loc[(runs["setting"] == "control") & (runs["model"] == "renet"), "best_val_f1"] = 55.0
    gaps = premise.validation_gaps(runs).set_index(["setting", "minus"])
    assert gaps.loc[("control", "resnet18"), "parity"] == "no: under-trained"
    assert gaps.loc[("control", "resnet18"), "folds"] == 3
    assert premise.validation_gaps(runs.drop(columns="best_val_f1")).empty


def test_the_control_check_says_whether_making_the_aus_faint_cost_anything():
    """Made-up rows: in the control ResNet-18 loses 8 / 10 / 12 points on AU2+AU23 against the
    visible coupling-2 setting (the control bites); RE-Net loses 0 / -1 / +1 (it does not), and the
    other AUs do not enter."""
    labels = pd.DataFrame({"setting": ["coupling 2", "control"], "coupling": [2.0, 2.0],
                           "synth_setting": ["default", "control"], "mean_abs_pcc": [0.19, 0.19]})
    loss = {"resnet18": (8.0, 10.0, 12.0), "renet": (0.0, -1.0, 1.0)}
    records = []
    for setting in labels["setting"]:
        for model, by_fold in loss.items():
            for fold, lost in zip((1, 2, 3), by_fold):
                faint = 60.0 - (lost if setting == "control" else 0.0)
                records.append({"setting": setting, "model": model, "fold": fold, "avg_f1": 50.0,
                                "f1_AU1": 70.0 + fold, "f1_AU2": faint + 1.0, "f1_AU23": faint - 1.0})
    check = premise.control_check(pd.DataFrame.from_records(records), labels).set_index("model")
    half = 4.302652729911275 * 2.0 / np.sqrt(3)                          # t(0.975, 2) x sd 2 / sqrt(3)
    assert check.loc["resnet18", ["difference", "low", "high"]].tolist() == pytest.approx([-10.0, -10 - half, -10 + half])
    assert check.loc["resnet18", "visible_f1"] == pytest.approx(60.0) and check.loc["resnet18", "bites"] == "yes"
    assert check.loc["renet", "difference"] == pytest.approx(0.0) and check.loc["renet", "bites"] == "no"
    assert premise.control_check(pd.DataFrame.from_records(records), labels.iloc[:1]).empty     # no control run
    text = premise.render(pd.DataFrame.from_records(records).assign(coupling=2.0),
                          labels.assign(mean_abs_pcc_train=0.19, frames=10), pd.DataFrame(columns=["interval"]),
                          pd.DataFrame(), "SynthAU test", "Training budget: none.")
    assert "Does the control bite?" in text and "| resnet18 | 50.0 | 60.0 | -10.0 |" in text


@pytest.mark.slow
def test_a_smoke_premise_study_writes_its_tables_and_figure(tmp_path):
    out = premise.study("smoke", folds=[1], couplings=[0.0], include_control=False, models=("renet-none", "renet"),
                        store_dir=tmp_path / "store", tables_dir=tmp_path / "results", figures_dir=tmp_path / "figures")
    runs = pd.read_csv(tmp_path / "results" / "premise.csv")
    assert {"setting", "coupling", "model", "fold", "avg_f1", "f1_AU1", "f1_AU24", "config_hash"} <= set(runs.columns)
    assert len(runs) == 2 and set(runs["model"]) == {"renet-none", "renet"} and (runs["coupling"] == 0).all()
    assert runs["data_source"].str.contains("coupling 0").all()
    labels = pd.read_csv(tmp_path / "results" / "premise_labels.csv")
    assert {"setting", "coupling", "mean_abs_pcc", "mean_abs_pcc_train"} <= set(labels.columns) and len(labels) == 1
    assert (tmp_path / "figures" / "premise.png").stat().st_size > 10_000
    assert "Eq. 3 alone" in (tmp_path / "results" / "premise.md").read_text() and out.figure.exists()
    assert runs["best_val_f1"].between(0, 100).all()                     # read from each run's history
    assert "Is it the budget?" in (tmp_path / "results" / "premise.md").read_text()
    curves = pd.read_csv(tmp_path / "results" / "premise_curves.csv")        # every run's validation history
    assert set(curves["model"]) == {"renet-none", "renet"} and (curves["epoch"] >= 1).all()
    assert curves["val_f1"].max() == pytest.approx(runs["best_val_f1"].max(), abs=1e-3)
    assert (tmp_path / "figures" / "premise_validation.png").stat().st_size > 10_000
    assert "premise_validation.png" in (tmp_path / "results" / "premise.md").read_text()


def test_the_committed_premise_rows_keep_their_run_identities():
    """``results/premise.csv`` names the runs notebook 11 would train today: a change that moved a
    premise run's identity would leave the committed table pointing at runs nobody can find."""
    from pathlib import Path

    committed = pd.read_csv(Path(__file__).resolve().parents[2] / "results" / "premise.csv")
    for setting in premise.settings():
        for model, cfgs in premise.setting_configs(setting, "demo").items():
            rows = committed[(committed["setting"] == setting.name) & (committed["model"] == model)]
            assert sorted(rows["config_hash"].astype(str)) == sorted(c.config_hash() for c in cfgs), (setting, model)
