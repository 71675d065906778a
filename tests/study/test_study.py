"""The study layer: tables declared as configs, rows found by run identity (renet_core.study)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from renet_core import study
from renet_core.engine.profiles import profile_setting
from renet_core.engine.store import ResultsStore
from renet_core.study import budgets, configs, report


@pytest.fixture(autouse=True)
def _no_real_roots(monkeypatch, tmp_path):
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


def fake_rows(cfg, value: float) -> pd.DataFrame:
    aus = cfg.resolved_aus()
    return pd.DataFrame({"dataset": cfg.dataset, "task": cfg.task, "method": cfg.method_name(), "fold": cfg.fold,
                         "au": aus, "metric": "f1", "seed": cfg.seed, "value": value,
                         "config_hash": cfg.config_hash(), "data_source": "SynthAU smoke (synthetic)",
                         "synthetic": True})


def test_every_spec_row_selects_exactly_its_own_configs(tmp_path):
    """Rows are found by run identity: a run with the same method label but another setting (lr)
    is never picked up, and each table row gets exactly its folds' runs."""
    spec = study.TABLES["table7"]
    configs = study.spec_configs(spec, "smoke", folds=[1, 2], store_dir=tmp_path)
    assert list(configs) == [r.key for r in spec.rows]
    assert all(len(c) == 2 for c in configs.values())
    hashes = {c.config_hash() for cfgs in configs.values() for c in cfgs}
    assert len(hashes) == 8                                       # 4 methods x 2 folds, all distinct
    decoy = configs["renet"][0].replace(lr=0.5)                   # same label "renet", other run
    assert decoy.method_name() == "renet" and decoy.config_hash() not in hashes
    rows = pd.concat([fake_rows(c, 0.1 * i) for i, c in enumerate(c for cfgs in configs.values() for c in cfgs)]
                     + [fake_rows(decoy, 0.99)], ignore_index=True)
    picked = study.select_rows(rows, configs)
    assert set(picked["config_hash"]) == hashes
    assert (picked["value"] != 0.99).all()
    for key, cfgs in configs.items():
        assert set(picked.loc[picked["entry"] == key, "config_hash"]) == {c.config_hash() for c in cfgs}


def test_row_overrides_reach_the_config_and_shared_runs_share_an_identity(tmp_path):
    t6 = study.spec_configs(study.TABLES["table6"], "smoke", folds=[1], store_dir=tmp_path)
    t1 = study.spec_configs(study.TABLES["table1"], "smoke", folds=[1], store_dir=tmp_path)
    t8 = study.spec_configs(study.TABLES["table8"], "smoke", folds=[1], store_dir=tmp_path)
    assert t6["renet-unseenAU23"][0].holdout_aus == [23] and t6["renet-unseenAU24"][0].holdout_aus == [24]
    assert t8["renet+DA"][0].duplicate_aus == study.DUPLICATED_AUS
    # RE-Net of Table 1 is the reference row of Table 6 and the "w/o DA" row of Table 8: one run
    assert t1["renet"][0].config_hash() == t6["renet"][0].config_hash() == t8["renet"][0].config_hash()
    strategies = study.spec_configs(study.TABLES["strategies"], "smoke", folds=[1], store_dir=tmp_path)
    assert strategies["renet-all"][0].strategy == "all"
    # a user's override reaches every run; one of a field that defines the rows is refused
    # (issue 21, case 4: tests/study/test_round3_study.py)
    changed = study.spec_configs(study.TABLES["table7"], "smoke", folds=[1], store_dir=tmp_path, lr=0.01)
    assert {c[0].lr for c in changed.values()} == {0.01}
    assert changed["renet-learnable"][0].model == "renet"
    with pytest.raises(ValueError, match="model='resnet18' would change what its rows measure"):
        study.spec_configs(study.TABLES["table7"], "smoke", folds=[1], store_dir=tmp_path, lr=0.01, model="resnet18")


def test_every_detection_and_intensity_table_is_declared_once():
    assert [study.table_name("occurrence", d) for d in ("bp4d", "disfa", "bp4dplus")] == ["table1", "table2", "table3"]
    assert [study.table_name("intensity", d) for d in ("bp4d", "disfa")] == ["table4", "table5"]
    with pytest.raises(ValueError, match="no intensity table"):
        study.table_name("intensity", "bp4dplus")
    with pytest.raises(ValueError, match="unknown table or figure"):
        study.reproduce("table9")


def test_chance_rows_come_from_the_saved_test_labels(tmp_path):
    """Always-positive F1 = 2p/(1+p) and the label prior's expected F1 = p, per AU and fold."""
    spec = study.TABLES["table1"]
    configs = study.spec_configs(spec, "smoke", folds=[1], store_dir=tmp_path)
    cfg = configs["renet"][0]
    store = ResultsStore(cfg.results_dir)
    aus = cfg.resolved_aus()
    y = np.zeros((10, len(aus)))
    y[:4, 0] = 1                      # AU1: p = 0.4
    y[:, 1] = 1                       # AU2: p = 1
    y[0, 2] = np.nan                  # AU4: unlabelled frame ignored, p = 0
    store.save_predictions(cfg.config_hash(), y_true=y, scores=y, aus=np.array(aus))
    store.mark_done(cfg.config_hash(), {})
    rows = study.chance_rows(configs, spec)
    got = rows.set_index(["entry", "au"])["value"]
    assert got[("always-positive", 1)] == pytest.approx(2 * 0.4 / 1.4)
    assert got[("label-prior", 1)] == pytest.approx(0.4)
    assert got[("always-positive", 2)] == pytest.approx(1.0)
    assert got[("always-positive", 4)] == pytest.approx(0.0)
    table = report.build_table(rows, spec)
    chance = table[table["entry"] == "always-positive"]
    assert list(chance["row"]) == ["this run"] and chance["AU1"].item() == pytest.approx(100 * 2 * 0.4 / 1.4)


def test_table_shows_fold_spread_paper_only_methods_and_chance(tmp_path):
    spec = study.TABLES["table1"]
    aus = spec.aus
    rows = []
    for fold, v in ((1, 0.5), (2, 0.6), (3, 0.7)):
        rows.append(pd.DataFrame({"entry": "renet", "method": "renet", "fold": fold, "au": aus, "metric": "f1",
                                  "value": v, "data_source": "SynthAU demo (synthetic)", "synthetic": True}))
    table = report.build_table(pd.concat(rows, ignore_index=True), spec)
    ours = table[(table["entry"] == "renet") & (table["row"] == "this run")].iloc[0]
    assert ours["Avg"] == pytest.approx(60.0) and ours["Avg sd"] == pytest.approx(10.0)
    paper_only = table[table["entry"].str.startswith("paper:")]
    assert list(paper_only["method"])[:3] == ["LSVM", "JPML", "DRML"]      # the paper's order
    assert set(paper_only["row"]) == {"paper"}
    assert table.index[table["entry"] == "paper:DRML"][0] < table.index[table["entry"] == "renet"][0]
    md = report.render_markdown(table)
    assert "60.0 ± 10.0" in md and "| DRML |" in md


def test_every_demo_table_gets_the_comparison_budget(tmp_path):
    """Issue 23: every table's runs of the demo (Tables 1-8, strategies, Fig. 3) get the profile's
    table budget; a user's own steps win; other profiles are untouched."""
    budget = profile_setting("demo", "table_budgets", ("bp4d", "occurrence"))
    long_steps = budget["epochs"] * budget["steps_per_epoch"]
    for name in ("table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8"):
        for cfgs in study.spec_configs(study.TABLES[name], "demo", store_dir=tmp_path).values():
            assert all(c.epochs * c.steps_per_epoch == long_steps for c in cfgs), name
            assert sorted(c.fold for c in cfgs) == [1, 2, 3], name
    strategies = study.spec_configs(study.TABLES["strategies"], "demo", store_dir=tmp_path)
    one, every = strategies["renet"][0], strategies["renet-all"][0]
    assert one.config_hash() == study.spec_configs(study.TABLES["table1"], "demo", folds=[1],
                                                    store_dir=tmp_path)["renet"][0].config_hash()
    assert every.steps_per_epoch == round(budget["steps_per_epoch"] / len(every.resolved_aus()))   # "1/C"
    assert study.TABLES["strategies"].row("renet-all").scale(6) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="steps_scale"):
        study.Row("x", "x", {}, steps_scale="half").scale(12)
    mine = study.spec_configs(study.TABLES["table1"], "demo", folds=[1], store_dir=tmp_path, steps_per_epoch=7)
    assert mine["renet"][0].steps_per_epoch == 7
    assert study.config("smoke", "bp4d", store_dir=tmp_path).steps_per_epoch == 4   # other profiles untouched


def test_under_trained_marks_the_demo_tables_below_the_parity_steps(tmp_path):
    """study.under_trained: a table's RE-Net runs below its parity steps are marked (a user's
    shorter budget), the demo's are not where parity is measured (strategy 1 counts C AUs a
    step); the paper profile does not cap steps."""
    flags = {name: study.under_trained(study.spec_configs(spec, "demo", store_dir=tmp_path), "demo")
             for name, spec in study.TABLES.items()}
    parity = study.parity_steps("demo", "bp4d", "occurrence")
    for name in ("table1", "table6", "table7", "table8", "strategies"):
        assert flags[name] == (parity, False), name
    for name in ("table2", "table3", "table4", "table5"):
        spec = study.TABLES[name]
        own = study.parity_steps("demo", spec.dataset, spec.task)
        assert flags[name] == (parity, own is not None and parity < own), name
    few = study.spec_configs(study.TABLES["table1"], "demo", store_dir=tmp_path, steps_per_epoch=20)
    assert study.under_trained(few, "demo") == (100, True)        # 5 epochs of 20 < parity
    every = study.spec_configs(study.TABLES["strategies"], "demo", store_dir=tmp_path)["renet-all"][0]
    assert study.au_steps(every) == every.epochs * every.steps_per_epoch * 12 >= parity
    paper = study.spec_configs(study.TABLES["table1"], "paper", store_dir=tmp_path)
    assert study.under_trained(paper, "paper") == (None, False)


def test_scoreboard_builds_each_tables_configs_once(tmp_path, monkeypatch):
    """study.scoreboard shares one set of configs between finished_rows, Fig. 3's silhouette
    (Table 1's runs) and the budget mark; on an empty store no claim is run."""
    calls = []
    real = study.spec_configs

    def counting(spec, *args, **kwargs):
        calls.append(spec)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(configs, "spec_configs", counting)   # what table_configs calls
    empty = tmp_path / "budgets.csv"                          # no budget measured (the shipped file fills up)
    empty.write_text("profile,data,dataset,task,variant,steps,source\n")
    monkeypatch.setattr(budgets, "BUDGETS_CSV", empty)
    board = study.scoreboard("demo", store_dir=tmp_path)
    assert len(calls) == len(study.TABLES)
    assert (board["verdict"] == "not run").all() and not board["converged"].any()
    assert set(board["convergence"]) == {f"no budget measured for {runs}" for runs in (
        "renet, resnet18", "renet-unseenAU23", "renet-unseenAU24", "renet, renet-learnable",
        "renet-learnable, renet-none", "resnet18+DA, resnet18", "renet+DA, renet", "renet, renet-all")}
