"""Notebook 11 (the premise experiment) is opt-in: not in the default ``./run_all.sh``, run by
``--only 11_relation_premise``, marked by ``--list``; a thin notebook like the others."""

from __future__ import annotations

import json
from pathlib import Path

from renet_core.runall import __main__ as runall_main
from renet_core.runall import jobs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PREMISE = NOTEBOOKS / "11_relation_premise.ipynb"


def test_the_premise_notebook_runs_only_when_named():
    default = [j.name for j in jobs.discover_jobs(NOTEBOOKS)]
    assert "11_relation_premise" in jobs.OPT_IN and "11_relation_premise" not in default
    assert "10_training_strategies" in default
    named = jobs.select_jobs(jobs.discover_jobs(NOTEBOOKS, ["11_relation_premise"]), ["11_relation_premise"])
    assert [j.name for j in named] == ["11_relation_premise"]
    assert "11_relation_premise" in [j.name for j in jobs.discover_jobs(NOTEBOOKS, True)]


def test_list_marks_the_opt_in_notebook(capsys):
    assert runall_main.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "01_detection_bp4d" in listed
    assert any(line.startswith("11_relation_premise") and "opt-in" in line for line in listed)
    assert runall_main.main(["--list", "--only", "11_relation_premise"]) == 0
    assert capsys.readouterr().out.startswith("11_relation_premise")


def test_the_premise_notebook_is_thin_and_uses_every_parameter():
    nb = json.loads(PREMISE.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["metadata"].get("tags") == ["parameters"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    body = "\n".join("".join(c["source"]) for c in code[1:])
    declared = jobs.declared_parameters(PREMISE)
    assert {"profile", "folds", "couplings", "include_control", "models", "device", "overrides", "tables_dir",
            "figures_dir", "store_dir", "manifest"} <= declared
    for name in declared:
        assert name in body, name
    assert body.count("premise.study(") == 1 and "record_outputs(manifest" in body
    assert nb["cells"][0]["cell_type"] == "markdown" and "premise" in "".join(nb["cells"][0]["source"]).lower()
