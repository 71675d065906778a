"""tools/convergence_curves.py on the smoke profile (issue 33): it trains a ladder of budgets as
the study's own runs (found again by identity, reused on a rerun), writes the curve, the page and
the figure, and its budget is the rule's on the curve it wrote; ``--plan`` trains nothing and
``--list`` names every variant behind a claim. One fold and two budgets, so it stays well under a
minute; the rule's answers on three folds are tested on known curves (tests/study/test_convergence.py)."""

from __future__ import annotations


import pandas as pd
import pytest

pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_the_tool_trains_its_ladder_as_study_runs_and_applies_the_rule(tmp_path, capsys, load_tool, monkeypatch):
    from renet_core.engine import ResultsStore
    from renet_core.study import budgets, convergence

    tool = load_tool("convergence_curves")
    out = ["--results", str(tmp_path / "results"), "--figures", str(tmp_path / "figures")]
    args = ["--profile", "smoke", "--folds", "1", "--anchor", "2", "--below", "0", "--above", "1"] + out
    tool.main(args + ["--archive", str(tmp_path / "archive")])   # each run's record kept as it finishes
    name = "convergence_bp4d_occurrence_renet"
    points = pd.read_csv(tmp_path / "results" / f"{name}.csv")
    base = tool.variant_configs("smoke", "bp4d", "occurrence", "renet", [1])[0]
    assert list(points["steps"]) == [2, 4] and points["done"].all()
    assert list(points["config_hash"]) == [budgets.at_budget(base, s, 2).config_hash() for s in (2, 4)]
    assert list(points["steps_trained"]) == [2, 4] and points["best_val"].between(0, 1).all()
    assert sorted(p.parent.name for p in (tmp_path / "archive").glob("*/done.json")) == sorted(points["config_hash"])
    page = (tmp_path / "results" / f"{name}.md").read_text()
    mine = convergence.converged_budget(tool.curves(points), 0.01)
    assert mine.status == "too few folds" and f"({mine.status}: {mine.reason})" in page
    alone = convergence.fold_budgets(tool.curves(points), 0.01)[1]
    assert f"fold 1: {alone.steps if alone.converged else 'not converged'}" in page
    assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000

    store = ResultsStore(base.results_dir)
    done = [store.run_dir(h) / "done.json" for h in points["config_hash"]]
    stamps = [p.stat().st_mtime_ns for p in done]
    tool.main(args)                                                    # a rerun trains nothing
    assert [p.stat().st_mtime_ns for p in done] == stamps

    # the page names what made its runs, and says so when the rungs came from two processors
    from renet_core.base.environment import read_environment, write_environment
    records = [read_environment(store.run_dir(h)) for h in points["config_hash"]]
    assert list(points["environment"]) == [r["key"] for r in records]
    assert "Environment of this ladder's runs" in page and f"2 runs: {records[0]['key']}: {records[0]['processor']}" in page
    write_environment(store.run_dir(points["config_hash"][1]),
                      dict(records[1], processor="Intel(R) Xeon(R) Other", isa_flags="avx512_bf16 amx_bf16",
                           recorded="2026-01-02 03:04:05"))
    made_in = tool.environments(points, base.results_dir)
    assert "**This ladder mixes 2 environments**" in made_in and "differences between its rungs" in made_in
    assert "1 run: " in made_in and "Intel(R) Xeon(R) Other (avx512_bf16 amx_bf16)" in made_in
    assert f"Recorded 2026-01-02 to {records[0]['recorded'][:10]}." in made_in
    assert made_in in tool.render(points, mine, "smoke", "bp4d", "occurrence", "renet", [2, 4], name, made_in=made_in)
    assert tool.environments(points.assign(done=False), base.results_dir) == ""

    seen = []                                # the page is written after each rung, with every finished run
    tool.measure("smoke", "bp4d", "occurrence", "renet", [1], below=0, above=1, anchor=2, every=True,
                 on_rung=lambda points, budget, rungs: seen.append(list(points["steps"])))
    assert seen == [[2, 4], [2, 4]]

    capsys.readouterr()
    tool.main(["--profile", "smoke", "--anchor", "2", "--below", "0", "--above", "1", "--plan"] + out)
    assert "4 of 6 runs to train, 12 one-AU steps" in capsys.readouterr().out   # folds 2 and 3 at 2 and 4 steps
    tool.main(["--profile", "smoke", "--anchor", "2", "--below", "0", "--above", "1", "--from-store"] + out)
    _, others, _ = tool.ladder_runs("smoke", "bp4d", "occurrence", "renet", (2, 3), below=0, above=1, anchor=2)
    assert [p.stat().st_mtime_ns for p in done] == stamps               # the page from what is done, no training
    assert not any(store.is_done(c.config_hash()) for rung in others for c in rung)
    page = (tmp_path / "results" / f"{name}.md").read_text()
    assert "**Rungs not finished on every fold: 2, 4.** The mean and the rule leave them out" in page
    assert "**Budget: unknown**" in page and f"| 2 | {points['best_val'][0]:.3f} |  |  |  |" in page
    capsys.readouterr()
    tool.main(["--profile", "smoke", "--anchor", "2", "--check", "--plan"] + out)   # a candidate and its horizon (fold 1 at 2 done)
    assert "ladder [2, 10]; 5 of 6 runs to train" in capsys.readouterr().out
    _, (low, high), _ = tool.ladder_runs("smoke", "bp4d", "occurrence", "renet", (1, 2), below=0, above=1, anchor=2)
    shown, _ = tool.page_so_far([tool.point(low[0])], [high], None, 0.01)   # mid-ladder: fold 1 of 4 is done
    assert list(shown["steps"]) == [2, 4, 4] and list(shown["done"]) == [True, True, False]
    assert "**Rungs not finished on every fold: 4.**" in tool.gaps_text(shown, 0.01)
    demo = tool.variant_configs("demo", "bp4d", "occurrence", "renet", [1])[0]
    assert tool.check_rungs(demo, 5, 4225) == [4225, 14265]
    assert tool.ladder(demo, 5, 1250, below=0, above=6)[3:] == [4225, 6340, 9510, 14265]   # the same runs
    page = tool.render(points, mine, "smoke", "bp4d", "occurrence", "renet", [2, 10], name, check=True)
    assert "A check of one candidate budget" in page and "only 2 and its horizon 10" in page
    monkeypatch.setattr(budgets, "BUDGETS_CSV", tmp_path / "budgets.csv")        # a sibling checks renet's budget
    (tmp_path / "budgets.csv").write_text(",".join(budgets.COLUMNS) + "\n")
    with pytest.raises(SystemExit, match="no budget recorded for renet on bp4d"):
        tool.main(["--profile", "smoke", "--variant", "renet-learnable", "--check-from", "bp4d:renet", "--plan"] + out)
    budgets.record_budget("smoke", base, 2, "results/x.md")
    tool.main(["--profile", "smoke", "--variant", "renet-learnable", "--check-from", "bp4d:renet", "--plan"] + out)
    assert "ladder [2, 10]; 6 of 6 runs to train" in capsys.readouterr().out
    tool.main(["--profile", "smoke", "--list"])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 17 and "--dataset bp4d --task occurrence --variant renet-all" in listed
    assert "--dataset disfa --task intensity --variant resnet18" in listed
    with pytest.raises(ValueError, match="no table row of disfa occurrence is the variant 'renet-none'"):
        tool.variant_configs("smoke", "disfa", "occurrence", "renet-none", [1])


def test_the_long_computation_measures_every_variant_behind_a_claim_once():
    """tools/convergence_all.sh lists each (dataset, task, variant) of the demo's claims once, RE-Net
    on BP4D detection (whose budget the others' checks read) before any --check-from."""
    import re
    from pathlib import Path

    from renet_core.study.variants import claim_variants

    text = (Path(__file__).resolve().parents[2] / "tools" / "convergence_all.sh").read_text()
    specs = [line.split() for line in re.findall(r'^\s+"([^"]+)"\s*$', text, flags=re.M)]
    listed = [tuple(s[:3]) for s in specs]
    assert sorted(listed) == sorted(set(listed)) == sorted(claim_variants("demo"))
    checks = [i for i, s in enumerate(specs) if "--check-from" in s]
    assert checks and all(specs[i][specs[i].index("--check-from") + 1] == "bp4d:renet" for i in checks)
    assert listed.index(("bp4d", "occurrence", "renet")) < min(checks)


def test_converged_so_far_switches_per_run_budgets_for_its_block_only_and_names_the_runs(load_tool):
    """tools/converged_so_far.py: the profile's switch is on inside the block and restored after it,
    an error included; the page shows a converged claim with the runs behind it, and a claim at its
    budgets that the store could not score under its own heading, never as a verdict."""
    from renet_core.study import budgets

    tool = load_tool("converged_so_far")
    assert not budgets.per_run_budgets("demo")
    with pytest.raises(RuntimeError), tool.per_run_budgets("demo"):
        assert budgets.per_run_budgets("demo")
        raise RuntimeError("boom")
    assert not budgets.per_run_budgets("demo")

    claim = "RE-Net beats ResNet-18 on BP4D (Table 1)"
    silhouette = "Fig. 3 silhouette claim"
    done = pd.DataFrame([{"claim": claim, "metric": "F1", "difference": 1.9, "ci_low": -3.7, "ci_high": 7.5,
                          "folds": 3, "se_test_sampling": 1.0, "val_gap": 0.019, "converged": True,
                          "convergence": "yes", "verdict": "inconclusive", "data": "synthetic"}])
    behind = {claim: [("renet", 1, 14265, "aaaa"), ("resnet18", 1, 550, "bbbb")],
              silhouette: [("renet", 1, 14265, "aaaa")]}
    text = tool.page(done, behind, "demo", [silhouette])
    assert "| RE-Net beats ResNet-18 on BP4D (Table 1) | F1 | +1.9 | [-3.7, +7.5] | 3 |" in text
    assert "renet fold 1, 14265 one-AU steps, run aaaa; resnet18 fold 1, 550 one-AU steps, run bbbb" in text
    scored, unscored = text.split("## At their budgets but not scored from the store")
    assert silhouette not in scored and f"- {silhouette}: renet fold 1, run aaaa" in unscored
    assert "No claim has all its runs" in tool.page(done.iloc[:0], {}, "demo")
