"""The preview profile (issue 33, "Two ways to run"): the demo's data and settings at far fewer
steps on the demo's 3 folds, judged against the demo's measured budgets and so never converged,
saying so in every table, the scoreboard and results/README.md, and written beside the committed
study (results/preview/, figures/preview/), never over it. No training here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from renet_core.engine import get_profile, profile_setting
from renet_core.engine.standin import standin_config
from renet_core.study import board, budgets, configs, preview
from renet_core.study.tables import TABLES

HEADER = "profile,data,dataset,task,variant,steps,source\n"


pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_the_preview_is_the_demo_with_fewer_steps_on_three_folds():
    """Every table runs folds 1-3; every run trains fewer steps than the demo's; apart from the
    steps a preview run is the demo's run (same data, settings and stand-in backbone), so the two
    share the SynthAU draw, the prepared crops and the stand-ins in a cache."""
    assert get_profile("preview")["synth_size"] == get_profile("demo")["synth_size"] == "demo"
    demo_tables = configs.table_configs("demo")
    for name, by_row in configs.table_configs("preview").items():
        assert configs.default_folds(name, "preview") == [1, 2, 3]
        for key, cfgs in by_row.items():
            assert [c.fold for c in cfgs] == [1, 2, 3]
            for mine, theirs in zip(cfgs, demo_tables[name][key]):
                assert budgets.au_steps(mine) < budgets.au_steps(theirs), (name, key)
                stretched = mine.replace(epochs=theirs.epochs, steps_per_epoch=theirs.steps_per_epoch)
                assert stretched.config_hash() == theirs.config_hash(), (name, key)
                assert standin_config(mine).config_hash() == standin_config(theirs).config_hash()
    assert preview.run_steps("preview") == 100
    smaller = {"efficiency": ("repeats", "batches"), "dynamics": ("steps",)}
    for key, fields in smaller.items():
        for field in fields:
            mine, theirs = profile_setting("preview", key)[field], profile_setting("demo", key)[field]
            assert (max(mine) < max(theirs)) if isinstance(mine, list) else mine < theirs, (key, field)


def _marks(profile: str, path: Path) -> dict:
    return board.convergence_marks(board.claim_runs(configs.table_configs(profile)), profile, path)


def test_the_previews_marks_read_the_demos_budgets_and_are_never_converged(tmp_path):
    path = tmp_path / "budgets.csv"
    path.write_text(HEADER)
    table1 = "RE-Net beats ResNet-18 on BP4D (Table 1)"
    assert _marks("preview", path)[table1] == (False, "no budget measured for renet, resnet18")
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,resnet18,365,x\n"
                    "demo,synthetic,bp4d,occurrence,renet,2815,x\n"
                    "preview,synthetic,bp4d,occurrence,renet,50,x\n")     # a preview row counts for nothing
    assert budgets.budgets_profile("preview") == "demo" and budgets.budgets_profile("demo") == "demo"
    assert _marks("preview", path)[table1] == (False, "renet 100 < 2815 steps; resnet18 100 < 365 steps")
    # runs at or above the demo's budgets: the rule has no reason, the preview still is not converged
    path.write_text(HEADER + "demo,synthetic,bp4d,occurrence,resnet18,60,x\n"
                    "demo,synthetic,bp4d,occurrence,renet,80,x\n")
    converged, why = _marks("preview", path)[table1]
    assert not converged and why.startswith("preview: its runs reach the demo profile's measured budgets")
    assert _marks("demo", path)[table1] == (True, "yes")                   # the demo's own marks are untouched
    assert not any(c for c, _ in _marks("preview", path).values())


def test_the_previews_scoreboard_says_so_above_its_table(tmp_path, monkeypatch):
    from renet_core.study import claims

    empty = tmp_path / "budgets.csv"
    empty.write_text(HEADER)
    monkeypatch.setattr(budgets, "BUDGETS_CSV", empty)
    score = board.scoreboard("preview", store_dir=tmp_path / "runs")
    assert not score["converged"].any()
    text = claims.render(score)
    assert preview.notice("preview") in text
    assert text.index(preview.notice("preview")) < text.index("| claim |")
    assert "Preview" not in claims.render(board.scoreboard("demo", store_dir=tmp_path / "runs"))


def test_every_preview_table_header_says_it_is_not_converged_and_points_to_run_all():
    from renet_core.study import report
    from renet_core.study.dynamics import VARIANTS, render_markdown
    from renet_core.study.reproduce import table_header

    line = preview.notice("preview")
    assert "not converged" in line and "`./run_all.sh`" in line and "100 steps a run" in line
    assert preview.notice("demo") == preview.notice("smoke") == preview.notice(None) == ""
    for name in TABLES:   # Tables 1-8 and section 3.4: the notice, then the budget
        header = table_header("preview", configs.spec_configs(TABLES[name], "preview", folds=[1]))
        assert header.startswith(line) and "Training budget" in header
        assert "Preview" not in table_header("demo", configs.spec_configs(TABLES[name], "demo", folds=[1]))
    assert preview.source_mark("preview", "SynthAU demo") == f"SynthAU demo; {preview.SOURCE_MARK}"
    assert preview.source_mark("demo", "SynthAU demo") == "SynthAU demo"
    timing = report.efficiency_table(pd.DataFrame([{"variant": "RE-Net, loop", "batch": 1, "ms_per_image": 9.0}]),
                                     "cpu")
    timing.attrs["notice"] = line
    assert line in report.render_efficiency(timing)
    base = configs.config("preview", "bp4d", fold=1)
    summary = pd.DataFrame([{"variant": VARIANTS[0].name}])
    assert line in render_markdown(summary, base, 60, 20, "SynthAU demo", [0.5], [1])


def test_the_preview_writes_beside_the_committed_study_and_its_readme_says_what_it_is(tmp_path):
    from renet_core.runall import index
    from renet_core.runall.__main__ import REPO, parse_args

    mine = parse_args(["--profile", "preview"])
    assert (mine.results, mine.figures) == (str(REPO / "results" / "preview"), str(REPO / "figures" / "preview"))
    demo = parse_args(["--profile", "demo"])
    assert (demo.results, demo.figures) == (str(REPO / "results"), str(REPO / "figures"))
    given = parse_args(["--profile", "preview", "--results", str(tmp_path / "r")])
    assert given.results == str(tmp_path / "r") and given.figures == str(REPO / "figures" / "preview")
    text = index.readme_text([], tmp_path, "cpu (2 cores)", notice=preview.notice("preview"))
    assert text.splitlines()[2] == preview.notice("preview")
    assert "Preview" not in index.readme_text([], tmp_path, "cpu (2 cores)")


def test_a_reproduced_preview_table_says_so_under_its_title(tmp_path, monkeypatch):
    """study.reproduce's own path (the runs' rows made up, nothing trained): the preview's
    table1.md carries the notice above its budget, its data source the preview's mark."""
    import sys

    from renet_core import study

    module = sys.modules["renet_core.study.reproduce"]

    def made_up_rows(by_row, progress=print):
        return pd.DataFrame([{"entry": key, "dataset": c.dataset, "task": c.task, "method": key, "fold": c.fold,
                              "au": au, "metric": "f1", "seed": 0, "value": 0.5, "config_hash": c.config_hash(),
                              "data_source": "SynthAU demo, BP4D layout (synthetic)", "synthetic": True}
                             for key, cfgs in by_row.items() for c in cfgs for au in c.resolved_aus()])

    monkeypatch.setattr(module, "run_configs", made_up_rows)
    out = study.reproduce("table1", "preview", tables_dir=tmp_path)
    text = (tmp_path / "table1.md").read_text()
    assert text.index(preview.notice("preview")) < text.index("Training budget: 100 steps of batch 32 per run.")
    assert out.source.endswith(f"3 folds; {preview.SOURCE_MARK}")
