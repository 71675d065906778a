"""Issue 32, "a reader's view of the records": ``results/notebooks/`` holds the executed
notebooks a reader opens, and every machine record of run_all (log, status, outputs manifest,
``total.json``) is in ``results/notebooks/records/``; a results folder of the older layout
(records beside the notebooks) still reads. The end-to-end check of the writers (a real
``run_all`` on two notebooks, nothing outside ``records/`` but the executed notebooks) is
``tests/entry/test_notebooks.py::test_runall_continues_past_a_failing_notebook_and_exits_nonzero``."""

from __future__ import annotations

import json
from pathlib import Path

from renet_core.runall import index, jobs, records

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_notebooks_folder_shows_notebooks_and_one_records_folder():
    shown = REPO / "results" / "notebooks"
    assert {p.name for p in shown.iterdir() if not p.name.startswith(".")} - {"records"} == {
        p.name for p in shown.glob("*.ipynb")}
    kept = {p.name for p in (shown / "records").iterdir()}
    for nb in shown.glob("*.ipynb"):
        assert {f"{nb.stem}.log", f"{nb.stem}.status.json"} <= kept, nb.name
    assert "total.json" in kept


def test_writers_put_records_under_records(tmp_path):
    results = tmp_path / "results"
    job = jobs.Job("01_detection_bp4d", REPO / "notebooks" / "01_detection.ipynb", {"dataset": "bp4d"})
    result = jobs.JobResult(job, "ok", 1.0, results / "notebooks" / "records" / "01_detection_bp4d.log")
    written = jobs.write_status(result, "smoke", results, "abc")
    assert written == results / "notebooks" / "records" / "01_detection_bp4d.status.json"
    params = jobs.job_parameters(job, "smoke", results, tmp_path / "figures", {})
    manifest = (job.notebook.parent / params["manifest"]).resolve()
    assert manifest == (results / "notebooks" / "records" / "01_detection_bp4d.outputs.json").resolve()
    assert records.record_path(results, records.TOTAL) == results / "notebooks" / "records" / "total.json"
    assert [p.name for p in (results / "notebooks").iterdir()] == ["records"]


def test_readers_prefer_records_and_fall_back_to_the_old_layout(tmp_path):
    results = tmp_path / "results"
    old, new = results / "notebooks" / "01.status.json", results / "notebooks" / "records" / "01.status.json"
    assert records.find_record(results, "01.status.json") == new        # missing: where a writer puts it
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"name": "01", "status": "ok", "seconds": 1.0, "profile": "smoke", "commit": "old"}))
    (results / "notebooks" / "01.outputs.json").write_text(json.dumps(
        [{"name": "t", "path": "../t.md", "data_source": "SynthAU", "kind": "table"}]))
    assert records.find_record(results, "01.status.json") == old
    [status] = index.load_statuses(results, ["01"])
    assert status["commit"] == "old" and "[t](t.md)" in index.readme_text([status], results, "cpu")
    new.parent.mkdir()
    new.write_text(json.dumps({"name": "01", "status": "ok", "seconds": 1.0, "profile": "smoke", "commit": "new"}))
    (new.parent / "01.outputs.json").write_text(json.dumps(
        [{"name": "t", "path": "../../t.md", "data_source": "SynthAU", "kind": "table"}]))
    [status] = index.load_statuses(results, ["01"])
    assert status["commit"] == "new" and "[t](t.md)" in index.readme_text([status], results, "cpu")
