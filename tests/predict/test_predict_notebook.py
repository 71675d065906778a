"""Notebook 12 (opt-in): run_all lists it only when named, plans Table 2's RE-Net run of fold 1
for it (shared with notebook 01 on DISFA), and its one call writes the AU table, the comparison
with the study's evaluation and both figures."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd

from renet_core.runall import jobs
from renet_core.runall import plan as planning

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_notebook_12_is_opt_in_and_plans_table_2s_renet_run(tmp_path):
    assert "12_predict" not in [j.name for j in jobs.discover_jobs(NOTEBOOKS)]
    assert "12_predict" in [j.name for j in jobs.discover_jobs(NOTEBOOKS, ["12_predict"])]
    alone = planning.make_plan(["12_predict"], "smoke", tmp_path / "runs")
    assert len(alone.configs) == 1
    cfg = next(iter(alone.configs.values()))
    assert (cfg.dataset, cfg.model, cfg.fold, cfg.task) == ("disfa", "renet", 1, "occurrence")
    table2 = planning.make_plan(["01_detection_disfa"], "smoke", tmp_path / "runs")
    assert set(alone.configs) <= set(table2.by_job["01_detection_disfa"])
    code = "".join("".join(c["source"]) for c in json.loads((NOTEBOOKS / "12_predict.ipynb").read_text())["cells"]
                   if c["cell_type"] == "code")
    assert "showcase.synthau_video(" in code


def test_the_notebooks_call_writes_its_outputs(tmp_path, monkeypatch):
    from renet_core.predict import showcase

    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = showcase.synthau_video("smoke", "renet", 1, store_dir=tmp_path / "runs",
                                     tables_dir=tmp_path / "results", figures_dir=tmp_path / "figures")
    from renet_core.predict.api import SYNTHETIC_NOTE      # about real faces: not said of a SynthAU video
    assert not [w for w in seen if SYNTHETIC_NOTE in str(w.message)]
    table = pd.read_csv(out.csv)
    assert len(table) > 0 and table["success"].eq(1).all() and table["input"].str.endswith(".avi").all()
    rows = [line for line in out.markdown.splitlines() if re.match(r"\| AU\d", line)]
    assert len(rows) == 8 and all(line.endswith(("| +0.0 |", "| -0.0 |")) for line in rows)
    assert "not results on DISFA" in out.markdown
    assert out.series_figure.stat().st_size > 0 and out.face_figure.stat().st_size > 0
