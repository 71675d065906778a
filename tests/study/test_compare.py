"""``python -m renet_core compare A B`` (renet_core.study.compare, issue 32) on two small result
folders with known differences: a run missing on each side, a changed run, a table Avg moved and
a claim moved outside its committed interval."""

from __future__ import annotations

import pandas as pd
import pytest

from renet_core.base.environment import environment_key
from renet_core.cli.main import main
from renet_core.study import compare as cmp
from renet_core.study.provenance import environment_rows


def _runs(values: dict) -> pd.DataFrame:
    """``{config_hash: (method, fold, [value of AU1, AU2])}`` as run_all's <profile>_runs.csv."""
    return pd.DataFrame([{"dataset": "bp4d", "task": "occurrence", "method": m, "fold": f, "au": au, "metric": "f1",
                          "seed": 0, "value": v, "config_hash": h}
                         for h, (m, f, vals) in values.items() for au, v in zip((1, 2), vals)])


def _table(resnet: float, renet: float) -> pd.DataFrame:
    rows = []
    for entry, label, avg in (("resnet18", "ResNet-18", resnet), ("renet", "RE-Net (ours)", renet)):
        rows.append({"data": "synthetic", "entry": entry, "method": label, "metric": "F1", "row": "paper",
                     "AU1": 50.0, "Avg": 60.0, "data source": "the paper"})
        rows.append({"data": "synthetic", "entry": entry, "method": label, "metric": "F1", "row": "this run",
                     "AU1": avg, "Avg": avg, "data source": "SynthAU, cpu, 3 folds"})
    return pd.DataFrame(rows)


def _claims(rows) -> pd.DataFrame:
    return pd.DataFrame([{"claim": c, "table": "table1", "metric": "F1", "difference": d, "ci_low": lo, "ci_high": hi,
                          "verdict": v} for c, d, lo, hi, v in rows])


def _env(processor: str, keys: list[str]) -> pd.DataFrame:
    record = {"processor": processor, "isa_flags": "avx2", "torch": "2.14.1", "device": "cpu", "threads": 2,
              "precision": "float32", "commit": "a" * 40, "dirty": False}
    record["key"] = environment_key(record)
    return environment_rows({k: record for k in keys})


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "committed", tmp_path / "rerun"
    a.mkdir(), b.mkdir()
    _runs({"h1": ("resnet18", 1, [0.5, 0.6]), "h2": ("renet", 1, [0.4, 0.7]), "h3": ("renet", 2, [0.3, 0.3])}) \
        .to_csv(a / "demo_runs.csv", index=False)
    _runs({"h1": ("resnet18", 1, [0.5, 0.6]), "h2": ("renet", 1, [0.45, 0.7]), "h4": ("renet", 3, [0.2, 0.2])}) \
        .to_csv(b / "demo_runs.csv", index=False)
    _table(63.7, 62.0).to_csv(a / "table1.csv", index=False)
    _table(63.7, 60.5).to_csv(b / "table1.csv", index=False)
    _table(50.0, 50.0).to_csv(a / "table2.csv", index=False)   # committed only
    _claims([("RE-Net beats ResNet-18 on BP4D (Table 1)", -1.68, -2.91, -0.45, "does not hold"),
             ("The fixed PCC relation beats the learnable one (Table 7)", 6.63, -4.42, 17.68, "inconclusive")]) \
        .to_csv(a / "claims.csv", index=False)
    _claims([("RE-Net beats ResNet-18 on BP4D (Table 1)", -3.6, -5.0, -2.2, "does not hold"),
             ("The fixed PCC relation beats the learnable one (Table 7)", 1.0, -3.0, 5.0, "inconclusive"),
             ("A new claim", 1.0, 0.5, 1.5, "holds")]).to_csv(b / "claims.csv", index=False)
    _env("Committed CPU without AMX", ["h1", "h2", "h3"]).to_csv(a / "demo_environments.csv", index=False)
    _env("Intel Xeon with AMX", ["h1", "h2", "h4"]).to_csv(b / "demo_environments.csv", index=False)
    return a, b


def test_runs_are_matched_by_identity(folders):
    a, b = (cmp.load_results(f) for f in folders)
    runs = cmp.compare_runs(a.runs["demo"], b.runs["demo"])
    assert runs["both"] == 2 and runs["identical"] == 1   # h1 identical, h2 changed
    assert list(runs["only_a"]["config_hash"]) == ["h3"] and list(runs["only_b"]["config_hash"]) == ["h4"]
    (change,) = runs["changes"].itertuples()
    assert change.config_hash == "h2" and change.au == 1 and change.change == pytest.approx(0.05)


def test_table_avg_changes_and_claims_against_the_committed_interval(folders):
    a, b = (cmp.load_results(f) for f in folders)
    tables = cmp.compare_tables(a.tables, b.tables).set_index("method")
    assert set(tables["table"]) == {"table1"}   # table2 is on one side only
    assert tables.loc["RE-Net (ours)", "change"] == pytest.approx(-1.5)
    assert tables.loc["ResNet-18", "change"] == pytest.approx(0.0)
    claims = cmp.compare_claims(a.claims, b.claims).set_index("claim")
    table1 = claims.loc["RE-Net beats ResNet-18 on BP4D (Table 1)"]
    assert table1["inside"] is False and table1["status"] == "**outside**"   # -3.6 outside [-2.91, -0.45]
    assert claims.loc["The fixed PCC relation beats the learnable one (Table 7)", "inside"] is True
    assert claims.loc["A new claim", "inside"] is None and claims.loc["A new claim", "status"] == \
        "not in the committed results"


def test_report_names_everything(folders):
    text = cmp.compare(*folders)
    assert "2 runs in both, 1 of them with identical values" in text
    assert "Runs only in the committed results (1)" in text and "h3 bp4d occurrence renet 2" in text
    assert "Runs only in the rerun (1)" in text and "h4" in text
    assert "Committed CPU without AMX" in text and "Intel Xeon with AMX" in text
    assert "same environment (key): 0 of 2" in text
    assert "| RE-Net (ours) | F1 | 62.00 | 60.50 | -1.50 |" in text
    assert "Tables only in the committed results: table2." in text
    assert "1 inside, 1 outside, 1 not comparable, of 3 claims" in text
    assert "| RE-Net beats ResNet-18 on BP4D (Table 1) | -1.68 [-2.91, -0.45] | does not hold | -3.60 |" in text


def test_command_line_exit_code_and_output_file(folders, capsys, tmp_path):
    out = tmp_path / "cross.md"
    assert main(["compare", str(folders[0]), str(folders[1]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "**outside**" in printed and out.read_text().strip() == printed.strip()


def test_a_folder_that_is_not_a_results_folder_is_named(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match=f"{empty} is not a results folder"):
        main(["compare", str(folders[0]), str(empty)])
    with pytest.raises(SystemExit, match="no such folder"):
        main(["compare", str(tmp_path / "absent"), str(folders[1])])
    (folders[1] / "claims.csv").write_text("what,ever\n1,2\n")
    with pytest.raises(ValueError, match=r"claims\.csv: lacks columns"):
        cmp.load_results(folders[1])
