"""Converged budgets as data (renet_core.study.budgets, issue 33): the budgets file read and
refused by name, a run at a budget is the demo's own run at the demo's budget (same identity),
the ladder a curve is measured on steps by at least 1.5x, and the profile switch gives each
table row its recorded budget only when it is on."""

from __future__ import annotations

import pytest

from renet_core.engine import profiles
from renet_core.study import budgets, configs
from renet_core.study.tables import TABLES

HEADER = "profile,data,dataset,task,variant,steps,source\n"


pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_the_committed_budgets_file_is_readable_and_no_profile_applies_it_yet():
    assert isinstance(budgets.recorded_budgets(), dict)
    assert not any(budgets.per_run_budgets(p) for p in profiles.PROFILE_NAMES)


def test_the_budgets_file_is_read_and_bad_rows_are_refused_by_name(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,renet,4220,results/x.md\n")
    assert budgets.recorded_budgets(path) == {("demo", "synthetic", "bp4d", "occurrence", "renet"): 4220}
    cfg = configs.spec_configs(TABLES["table1"], "demo", folds=[1])["renet"][0]
    assert budgets.recorded_budget("demo", cfg, path) == 4220
    assert budgets.recorded_budget("smoke", cfg, path) is None
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,renet,many,x\n")
    with pytest.raises(ValueError, match=r"b\.csv, line 2: steps='many'"):
        budgets.recorded_budgets(path)
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,renet,10,x\n" * 2)
    with pytest.raises(ValueError, match="line 3: .* recorded twice"):
        budgets.recorded_budgets(path)
    path.write_text("profile,dataset,steps\n")
    with pytest.raises(ValueError, match=r"b\.csv: columns \['data', 'task', 'variant', 'source'\] missing"):
        budgets.recorded_budgets(path)


def test_record_budget_writes_and_replaces_one_row(tmp_path):
    path = tmp_path / "b.csv"
    cfg = configs.spec_configs(TABLES["table7"], "demo", folds=[1])["renet-learnable"][0]
    budgets.record_budget("demo", cfg, 2815, "results/convergence_bp4d_occurrence_renet-learnable.md", path)
    budgets.record_budget("demo", cfg, 4225, "again", path)
    assert budgets.recorded_budgets(path) == {("demo", "synthetic", "bp4d", "occurrence", "renet-learnable"): 4225}


def test_a_run_at_the_demos_budget_is_the_demos_own_run():
    """at_budget(1250) of the demo's runs gives back their configs (so their identities): the
    curves' runs and the study's runs are one. Strategy 1 counts C one-AU steps a step."""
    evals = budgets.evaluations("demo", "bp4d", "occurrence")
    assert evals == 5 and budgets.evaluations("smoke", "bp4d", "occurrence") == 2
    for name, row in (("table1", "renet"), ("table1", "resnet18"), ("strategies", "renet-all"),
                      ("table5", "resnet18")):
        cfg = configs.spec_configs(TABLES[name], "demo", folds=[2])[row][0]
        again = budgets.at_budget(cfg, 1250, evals)
        assert again.config_hash() == cfg.config_hash(), (name, row)
    every = configs.spec_configs(TABLES["strategies"], "demo", folds=[1])["renet-all"][0]
    for steps in (1, 100, 1875, 2815):
        at = budgets.at_budget(every, steps, evals)
        assert steps <= budgets.au_steps(at) < steps + 12 * evals
        assert budgets.at_budget(every, budgets.au_steps(at), evals).config_hash() == at.config_hash()
    with pytest.raises(ValueError, match="positive"):
        budgets.at_budget(every, 0, evals)


def test_the_ladder_steps_by_at_least_one_and_a_half_and_holds_the_anchor():
    for name, row in (("table1", "renet"), ("strategies", "renet-all")):
        cfg = configs.spec_configs(TABLES[name], "demo", folds=[1])[row][0]
        rungs = budgets.ladder(cfg, 5, 1250, below=3, above=4)
        assert len(rungs) == 8 and budgets.au_steps(budgets.at_budget(cfg, 1250, 5)) in rungs
        assert all(b >= 1.5 * a for a, b in zip(rungs, rungs[1:])), rungs
        assert all(budgets.au_steps(budgets.at_budget(cfg, r, 5)) == r for r in rungs)
    smoke = configs.spec_configs(TABLES["table1"], "smoke", folds=[1])["renet"][0]
    assert budgets.ladder(smoke, 2, 8, below=5, above=1) == [2, 4, 8, 12]   # none under 2 steps


def test_the_switch_gives_each_row_its_recorded_budget_and_nothing_else(tmp_path, monkeypatch):
    path = tmp_path / "b.csv"
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,renet,4220,x\n"
                    "demo,synthetic,bp4d,occurrence,renet-all,2500,x\n")
    monkeypatch.setattr(budgets, "BUDGETS_CSV", path)
    before = {k: [c.config_hash() for c in v] for k, v in configs.spec_configs(TABLES["strategies"], "demo").items()}
    monkeypatch.setitem(profiles.PROFILES["demo"], "per_run_budgets", True)
    table1 = configs.spec_configs(TABLES["table1"], "demo")
    assert [budgets.au_steps(c) for c in table1["renet"]] == [4220] * 3 and table1["renet"][0].epochs == 5
    assert [budgets.au_steps(c) for c in table1["resnet18"]] == [1250] * 3        # none recorded: the profile's
    every = configs.spec_configs(TABLES["strategies"], "demo")["renet-all"][0]
    assert budgets.au_steps(every) == 2520 and every.steps_per_epoch == 42
    mine = configs.spec_configs(TABLES["table1"], "demo", steps_per_epoch=7)["renet"][0]
    assert budgets.au_steps(mine) == 35                                           # a user's budget wins
    monkeypatch.setitem(profiles.PROFILES["demo"], "per_run_budgets", False)
    after = {k: [c.config_hash() for c in v] for k, v in configs.spec_configs(TABLES["strategies"], "demo").items()}
    assert after == before


def test_the_scoreboards_mark_reads_each_runs_steps_against_its_variants_budget(tmp_path):
    """board.convergence_marks on the demo's configs and a made-up budgets file: Table 1's claim
    and Fig. 3's (Table 1's runs) are converged when both variants' budgets are <= 1250 steps;
    Table 7's fixed-vs-learnable is not while the learnable's is 1875; a budget of another
    profile or data counts for nothing."""
    from renet_core.study import board, claims

    path = tmp_path / "b.csv"
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,renet,1250,x\n"
                    "demo,synthetic,bp4d,occurrence,resnet18,830,x\n"
                    "demo,synthetic,bp4d,occurrence,renet-learnable,1875,x\n"
                    "demo,real,disfa,occurrence,renet,365,x\n"
                    "smoke,synthetic,disfa,occurrence,resnet18,2,x\n")
    runs = board.claim_runs(configs.table_configs("demo"))
    assert len(runs) == len(claims.CLAIMS) + 1 and len(runs[claims.SILHOUETTE_CLAIM]) == 6
    assert runs["An unseen AU23 is recognised above chance (Table 6)"][0].method_name() == "renet-unseenAU23"
    marks = board.convergence_marks(runs, "demo", path)
    assert marks["RE-Net beats ResNet-18 on BP4D (Table 1)"] == (True, "yes")
    assert marks[claims.SILHOUETTE_CLAIM] == (True, "yes")
    assert marks["The fixed PCC relation beats the learnable one (Table 7)"] == (False, "renet-learnable 1250 < 1875 steps")
    assert marks["RE-Net beats ResNet-18 on DISFA (Table 2)"] == (False, "no budget measured for renet, resnet18")
