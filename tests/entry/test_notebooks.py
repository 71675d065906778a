"""The reproduction notebooks: committed clean, and every one executes end to end (smoke profile).

The end-to-end test runs ``python -m renet_core.runall`` exactly as ``./run_all.sh`` does, on
fold 1 only to keep CI short, with every output (tables, figures, runs, SynthAU cache) in a
temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from renet_core.runall import __main__ as runall_main
from renet_core.runall import index, jobs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
#: What each job must have written: tables (CSV + markdown in results/) and figures (figures/).
EXPECTED_TABLES = ["table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "strategies",
                   "efficiency"]
EXPECTED_FIGURES = ["fig2_relation_matrices.png", "fig3_tsne.png"]


def test_the_study_has_a_notebook_per_table_and_figure():
    stems = {p.stem for p in NOTEBOOK_FILES}
    assert {"00_synthetic_data", "01_detection", "02_intensity", "03_new_au", "04_relation_ablation",
            "05_augmentation_ablation", "06_relation_matrices", "07_tsne", "08_efficiency",
            "09_training_dynamics", "10_training_strategies"} <= stems


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} has outputs committed"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts committed"


@pytest.mark.parametrize("path", [p for p in NOTEBOOK_FILES if p.stem[:2] in {f"{i:02d}" for i in range(1, 11)}
                                  and p.stem != "09_training_dynamics"], ids=lambda p: p.stem)
def test_table_and_figure_notebooks_are_thin_and_use_every_parameter(path):
    """Notebooks 01-08 and 10: a parameters cell holding only what the notebook uses, one call into
    renet_core, <= 15 lines of code in all."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = ["".join(c["source"]) for c in code]
    lines = [line for t in text for line in t.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 15, (path.name, len(lines))
    body = "\n".join(text[1:])
    for name in jobs.declared_parameters(path):
        assert name in body, f"{path.name} declares {name} but does not use it"
    assert body.count("study.reproduce(") == 1


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebooks_declare_papermill_parameters(path):
    params = jobs.declared_parameters(path)
    assert "profile" in params
    # every notebook takes the output folders run_all.sh passes (00 writes figures only)
    assert {"figures_dir", "manifest"} <= params or {"tables_dir", "manifest"} <= params


def test_jobs_are_one_per_notebook_and_dataset():
    names = [j.name for j in jobs.discover_jobs(NOTEBOOKS)]
    assert {"01_detection_bp4d", "01_detection_disfa", "01_detection_bp4dplus",
            "02_intensity_bp4d", "02_intensity_disfa", "07_tsne"} <= set(names)
    assert [j.name for j in jobs.select_jobs(jobs.discover_jobs(NOTEBOOKS), ["01_detection"])] == [
        "01_detection_bp4d", "01_detection_disfa", "01_detection_bp4dplus"]
    with pytest.raises(SystemExit, match="matches no notebook"):
        jobs.select_jobs(jobs.discover_jobs(NOTEBOOKS), ["99_nothing"])


def _notebook(path: Path, body: str) -> Path:
    cells = [{"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]}, "execution_count": None,
              "outputs": [], "source": 'profile = "smoke"\nmanifest = None\ntables_dir = "."\n'},
             {"cell_type": "code", "id": "body", "metadata": {}, "execution_count": None, "outputs": [], "source": body}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.slow
def test_runall_continues_past_a_failing_notebook_and_exits_nonzero(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_broken.ipynb", "raise RuntimeError('deliberate failure')")
    _notebook(nbs / "02_fine.ipynb",
              "from renet_core.study import record_outputs, output_entry\n"
              "open(f'{tables_dir}/fine.md', 'w').write('ok')\n"
              "record_outputs(manifest, [output_entry('fine', f'{tables_dir}/fine.md', 'nothing')])\n")
    results = tmp_path / "results"
    code = runall_main.main(["--notebooks", str(nbs), "--results", str(results), "--figures", str(tmp_path / "figs"),
                        "--store", str(tmp_path / "store"), "--profile", "smoke"])
    assert code == 1
    assert (results / "fine.md").read_text() == "ok"       # the second notebook still ran
    status = json.loads((results / "notebooks" / "records" / "01_broken.status.json").read_text())
    assert status["status"] == "failed" and "deliberate failure" in status["error"]
    readme = (results / "README.md").read_text()
    assert "01_broken" in readme and "failed" in readme and "[fine](fine.md)" in readme
    # a reader's view (issue 32): only the executed notebooks beside each other, every machine
    # record (log, status, outputs manifest, total) in records/, nothing else left behind
    assert sorted(p.name for p in (results / "notebooks").iterdir()) == ["01_broken.ipynb", "02_fine.ipynb", "records"]
    assert sorted(p.name for p in (results / "notebooks" / "records").iterdir()) == [
        "01_broken.log", "01_broken.status.json", "02_fine.log", "02_fine.outputs.json", "02_fine.status.json",
        "total.json"]
    assert "deliberate failure" in (results / "notebooks" / "records" / "01_broken.log").read_text()


#: The job whose runs the smoke study trains ahead, in two processes, before its notebooks run.
AHEAD_JOB = "02_intensity_bp4d"


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """Every notebook, smoke profile, fold 1, through runall's CLI; first, the runs of
    ``AHEAD_JOB`` trained ahead in two processes (``run_all --train-jobs 2``'s step) into the
    same store, so that the notebook must find them there instead of training its own.
    Returns ``(exit code, base folder, (the ahead plan, its progress lines))``."""
    import os

    from renet_core.runall import plan as planning
    from renet_core.runall.pool import train_ahead

    base = tmp_path_factory.mktemp("study")
    old = os.environ.get("RENET_CACHE")
    os.environ["RENET_CACHE"] = str(base / "cache")
    from renet_core.engine import ROOT_ENV

    for var in ROOT_ENV.values():
        os.environ.pop(var, None)
    try:
        ahead = planning.make_plan([AHEAD_JOB], "smoke", (base / "store").resolve(), folds=[1])
        lines: list[str] = []
        train_ahead(ahead, 2, say=lines.append)
        code = runall_main.main(["--profile", "smoke", "--folds", "1", "--results", str(base / "results"),
                            "--figures", str(base / "figures"), "--store", str(base / "store")])
    finally:
        if old is None:
            os.environ.pop("RENET_CACHE", None)
        else:
            os.environ["RENET_CACHE"] = old
    return code, base, (ahead, lines)


@pytest.mark.slow
def test_every_notebook_runs_in_the_smoke_profile(smoke_study):
    code, base, _ = smoke_study
    logs = {p.name: p.read_text()[-3000:] for p in (base / "results" / "notebooks" / "records").glob("*.log")}
    failed = [json.loads(p.read_text())["name"] for p in (base / "results" / "notebooks" / "records").glob("*.status.json")
              if json.loads(p.read_text())["status"] != "ok"]
    assert code == 0 and not failed, {name: logs.get(f"{name}.log") for name in failed}
    for job in jobs.discover_jobs(NOTEBOOKS):
        assert (base / "results" / "notebooks" / f"{job.name}.ipynb").exists()


def test_smoke_study_writes_every_table_beside_the_papers_values(smoke_study):
    _, base, _ = smoke_study
    results = base / "results"
    for name in EXPECTED_TABLES:
        assert (results / f"{name}.csv").exists() and (results / f"{name}.md").exists(), name
    for name in [t for t in EXPECTED_TABLES if t != "efficiency"]:
        table = pd.read_csv(results / f"{name}.csv")
        rows = set(table["row"])
        assert {"paper", "this run"} <= rows, (name, rows)
        ours = table[table["row"] == "this run"]
        assert ours["data source"].str.contains("SynthAU").all(), name
        assert "synthetic" in (results / f"{name}.md").read_text().lower(), name
    for fig in EXPECTED_FIGURES:
        assert (base / "figures" / fig).stat().st_size > 10_000, fig


def test_smoke_study_index_lists_every_output_with_status_and_source(smoke_study):
    _, base, _ = smoke_study
    readme = (base / "results" / "README.md").read_text()
    for name in EXPECTED_TABLES:
        assert f"({name}.md)" in readme, name
    assert "Fig. 2" in readme and "Fig. 3" in readme
    assert "not** a reproduction" in readme and "smoke" in readme
    assert (base / "results" / "smoke_runs.csv").exists()


@pytest.mark.slow
def test_smoke_study_writes_the_training_dynamics_table_and_curves(smoke_study):
    """Notebook 09: a summary row per variant, a curve point per evaluation, the figure, and the
    data source named; the index lists both outputs."""
    _, base, _ = smoke_study
    results = base / "results"
    table = pd.read_csv(results / "training_dynamics.csv")
    curves = pd.read_csv(results / "training_dynamics_curves.csv")
    assert list(table["variant"]) == ["resnet18", "renet", "renet-lrC"]
    assert set(curves["variant"]) == set(table["variant"]) and (curves.groupby("variant").size() == 2).all()
    assert curves["loss_au"].between(0, 5).all() and curves["train_seconds"].gt(0).all()
    assert "SynthAU" in (results / "training_dynamics.md").read_text()
    assert (base / "figures" / "training_dynamics.png").stat().st_size > 10_000
    readme = (results / "README.md").read_text()
    assert "(training_dynamics.md)" in readme and "training_dynamics.png" in readme


def test_copied_store_rows_merge_instead_of_replacing(tmp_path):
    """``run_all --only X`` from another store keeps the rows of the tables already committed."""
    results, store = tmp_path / "results", tmp_path / "store"
    results.mkdir()
    store.mkdir()
    row = dict(dataset="bp4d", task="occurrence", method="renet", fold=1, au=1, metric="f1", seed=0)
    pd.DataFrame([{**row, "value": 0.1, "config_hash": "old"}]).to_csv(results / "demo_runs.csv", index=False)
    pd.DataFrame([{**row, "value": 0.2, "config_hash": "new"},
                  {**row, "au": 2, "value": 0.3, "config_hash": "new"}]).to_csv(store / "results.csv", index=False)
    from renet_core.engine.store import ResultsStore

    ResultsStore(store).mark_done("new", {})          # only rows of finished runs are copied (issue 31)
    index.copy_store_rows("demo", results, store)
    merged = pd.read_csv(results / "demo_runs.csv")
    assert sorted(zip(merged["config_hash"], merged["au"])) == [("new", 1), ("new", 2), ("old", 1)]
    pd.DataFrame([{**row, "value": 0.25, "config_hash": "new"}]).to_csv(store / "results.csv", index=False)
    index.copy_store_rows("demo", results, store)
    merged = pd.read_csv(results / "demo_runs.csv")
    assert len(merged) == 3 and merged.loc[(merged["config_hash"] == "new") & (merged["au"] == 1), "value"].item() == 0.25


def test_readme_says_which_table_runs_the_last_full_run_trained_and_which_it_reused(tmp_path):
    """run_provenance: runs finished inside the last full run's window count as trained, older
    finished runs of the store as reused, with their recorded epoch times as the fresh-cache
    estimate; no total.json, no line."""
    from renet_core import study
    from renet_core.engine.store import ResultsStore

    results, store = tmp_path / "results", tmp_path / "store"
    (results / "notebooks" / "records").mkdir(parents=True)
    assert index.run_provenance(results, "smoke", store) == ""
    configs = study.spec_configs(study.TABLES["table4"], "smoke", folds=[1], store_dir=store)
    runs = ResultsStore(store)
    rows = []
    for n, (key, cfgs) in enumerate(configs.items()):
        h = cfgs[0].config_hash()
        rows.append(dict(dataset="bp4d", task="intensity", method=key, fold=1, au=6, metric="icc", seed=0,
                         value=0.5, config_hash=h, data_source="SynthAU smoke (synthetic)"))
        runs.run_dir(h).mkdir(parents=True)
        finished = "2026-01-01 09:30:00" if n == 0 else "2026-01-01 11:00:00"   # before / inside the run
        history = [{"epoch": e, "seconds": 600.0} for e in (1, 2)] + [{"epoch": 3, "seconds": 6000.0}]
        (runs.run_dir(h) / "done.json").write_text(json.dumps({"finished": finished, "history": history}))
    pd.DataFrame(rows).to_csv(store / "results.csv", index=False)
    (results / "notebooks" / "records" / "total.json").write_text(json.dumps(
        {"seconds": 3600.0, "notebooks": 14, "profile": "smoke", "commit": "abc", "finished": "2026-01-01 11:30:00"}))
    line = index.run_provenance(results, "smoke", store)
    assert line.startswith("- runs behind the tables: 2; the last full run trained 1 and reused 1")
    # the reused run's 3 epochs of typically 10 min (one slowed to 100 min by other work) on top
    # of the full run's 60 min: what a fresh cache costs
    assert "the reused runs train in about 30 min" in line and "a fresh cache needs about 90 min" in line
    (runs.run_dir(rows[0]["config_hash"]) / "done.json").write_text(json.dumps({"finished": "2026-01-01 10:45:00"}))
    assert index.run_provenance(results, "smoke", store).endswith("trained 2 (all of them: a fresh cache)")
    (runs.run_dir(rows[0]["config_hash"]) / "done.json").write_text(json.dumps({"finished": "2026-01-01 12:00:00"}))
    assert index.run_provenance(results, "smoke", store).endswith("trained 1; 1 finished after it (later partial runs)")


def test_executed_copies_show_no_path_of_the_machine(tmp_path, monkeypatch):
    """run_all rewrites the repository's root (relative) and the home folder (~) in what it keeps."""
    repo, home = tmp_path / "clone", tmp_path / "home"
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    kept = tmp_path / "nb.ipynb"
    kept.write_text(f'{{"input_path": "{repo}/notebooks/07_tsne.ipynb", "cache": "{home}/.cache/renet_core"}}')
    jobs.scrub_paths(kept, repo)
    assert kept.read_text() == '{"input_path": "notebooks/07_tsne.ipynb", "cache": "~/.cache/renet_core"}'
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "kept_cache"))
    kept.write_text(f'prepared in {tmp_path}/kept_cache/prepared/bp4d\n')
    jobs.scrub_paths(kept, repo)
    assert kept.read_text() == 'prepared in $RENET_CACHE/prepared/bp4d\n'
    params = jobs.job_parameters(jobs.discover_jobs(NOTEBOOKS)[0], "smoke", NOTEBOOKS.parent / "results",
                                 NOTEBOOKS.parent / "figures", {})
    assert not any(str(v).startswith("/") for v in params.values()), params


def test_job_tables_are_the_notebooks_reproduce_calls():
    """runall's plan knows which tables each notebook reproduces; this reads it off the notebooks."""
    import json
    import re

    from renet_core.runall.plan import JOB_TABLES
    from renet_core.study import TABLE_OF

    for job in jobs.discover_jobs(NOTEBOOKS):
        code = "".join("".join(c["source"]) for c in json.loads(job.notebook.read_text())["cells"]
                       if c["cell_type"] == "code")
        names = set(re.findall(r'study\.reproduce\("(\w+)"', code))
        for task in re.findall(r'study\.table_name\("(\w+)", dataset\)', code):
            names.add(TABLE_OF[(task, job.parameters["dataset"])])
        names = {"table1" if n == "fig3" else n for n in names} - {"fig2", "efficiency"}
        assert set(JOB_TABLES.get(job.name, ())) == names, job.name


def test_plan_counts_runs_and_estimates_the_time_to_go_from_recorded_step_costs(tmp_path):
    from renet_core.engine import ResultsStore
    from renet_core.runall import plan as planning

    the_plan = planning.make_plan(["01_detection_bp4d", "07_tsne"], "smoke", tmp_path / "runs")
    assert len(the_plan.configs) == 6 and set(the_plan.by_job["07_tsne"]) <= set(the_plan.by_job["01_detection_bp4d"])
    assert planning.minutes_to_go(the_plan) == (0, 6, None)              # nothing recorded yet
    cfgs = list(the_plan.configs.items())
    for key, cfg in cfgs[:1] + cfgs[3:4]:                                 # one resnet18, one renet run done
        ResultsStore(cfg.results_dir).mark_done(key, {"seconds": 16.0, "steps": 8, "finished": "x"})
    assert {c.model for _, c in cfgs[:1] + cfgs[3:4]} == {"resnet18", "renet"}
    done, total, minutes = planning.minutes_to_go(the_plan)
    assert (done, total) == (2, 6) and minutes == pytest.approx(4 * 8 * 2.0 / 60)   # 4 runs x 8 steps x 2 s
    assert planning.fresh_cache_seconds(the_plan, "01_detection_bp4d") == pytest.approx(6 * 16.0)
    assert "2 of 6 done; about 1 min to go" in planning.progress_line(the_plan)
    assert planning.progress_line(the_plan).endswith("(recorded step costs)")       # every kind timed


def test_plan_counts_the_premise_runs_and_shares_coupling_1_with_the_tables(tmp_path):
    """run_all --only 11_relation_premise shows its runs and time to go like the tables' notebooks."""
    from renet_core.runall import plan as planning
    from renet_core.study import premise

    alone = planning.make_plan(["11_relation_premise"], "smoke", tmp_path / "runs")
    settings = premise.settings()
    assert len(alone.configs) == len(settings) * len(premise.DEFAULT_MODELS) * 3
    both = planning.make_plan(["01_detection_bp4d", "04_relation_ablation", "11_relation_premise"], "smoke",
                              tmp_path / "runs")
    shared = set(both.by_job["11_relation_premise"]) & (set(both.by_job["01_detection_bp4d"])
                                                       | set(both.by_job["04_relation_ablation"]))
    assert len(shared) == len(premise.DEFAULT_MODELS) * 3                    # coupling 1: Table 1's and 7's runs
    assert "0 of %d done" % len(alone.configs) in planning.progress_line(alone)


def test_progress_gives_the_time_to_go_of_the_timed_runs_and_counts_the_untimed_ones_apart(tmp_path):
    """The demo's strategies runs (kind renet-all) come last: until one is done the others'
    estimate is still printed, with the untimed runs counted beside it."""
    from renet_core.engine import ResultsStore
    from renet_core.runall import plan as planning

    the_plan = planning.make_plan(["01_detection_bp4d", "10_training_strategies"], "smoke", tmp_path / "runs")
    kinds = {planning._kind(c) for c in the_plan.configs.values()}
    assert {"resnet18", "renet", "renet-all"} <= kinds
    assert "known after the first run of each kind" in planning.progress_line(the_plan)
    for key, cfg in the_plan.configs.items():
        if planning._kind(cfg) in ("resnet18", "renet"):
            ResultsStore(cfg.results_dir).mark_done(key, {"seconds": 16.0, "steps": 8, "finished": "x"})
            break
    first_kind = next(planning._kind(c) for k, c in the_plan.configs.items() if k in the_plan.done())
    done, total, minutes, untimed = planning.time_to_go(the_plan)
    timed = [c for k, c in the_plan.configs.items() if k not in the_plan.done() and planning._kind(c) == first_kind]
    assert done == 1 and minutes == pytest.approx(sum(planning._steps(c) * 2.0 for c in timed) / 60)
    assert "renet-all" in untimed and sum(untimed.values()) == total - done - len(timed)
    line = planning.progress_line(the_plan)
    assert "min to go (recorded step costs), plus" in line and "renet-all" in line
    assert planning.minutes_to_go(the_plan)[2] is None                    # the whole still unknown


@pytest.mark.slow
def test_runs_trained_ahead_in_two_processes_are_the_notebooks_runs(smoke_study):
    """run_all --train-jobs 2: every planned run of a notebook is trained before the notebooks,
    in two worker processes; the plan then counts them all done, and the notebook, run after,
    trains none of them: it reads the very runs (same identities) trained ahead."""
    _, base, (the_plan, lines) = smoke_study
    assert the_plan.done() == set(the_plan.configs) and len(the_plan.configs) == 2
    assert any("2 processes of 2 thread(s)" in line for line in lines)   # each run's own threads (issue 31)
    assert lines[-1].endswith("all 2 done")
    log = (base / "results" / "notebooks" / "records" / f"{AHEAD_JOB}.log").read_text()
    for key in the_plan.configs:
        assert f"[run {key}]" in log, (key, log[-3000:])                   # the notebook asked for it ...
    assert "epoch 1/" not in log, log[-3000:]                             # ... and trained none of them
