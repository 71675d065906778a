"""Issue 21 (reliability round 3), the study: a notebook's ``overrides`` never relabel a row
(case 4), an Avg over fewer AUs than the table has is never printed as an Avg (case 5), and a
done run whose rows were lost from results.csv is back on the scoreboard (case 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report import make_rows

from renet_core import study
from renet_core.engine.store import ResultsStore
from renet_core.study import report
from renet_core.study.configs import row_fields


@pytest.fixture(autouse=True)
def _no_real_roots(monkeypatch, tmp_path):
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("table, override, rows", [
    ("table7", {"relation_mode": "learnable"}, "renet-none: relation_mode='none'; renet-learnable"),
    ("table8", {"duplicate_aus": [1, 2]}, "resnet18+DA: duplicate_aus"),
    ("strategies", {"strategy": "all"}, "renet-all: strategy='all'"),
    ("table6", {"holdout_aus": [23]}, "renet-unseenAU23: holdout_aus=[23]"),
    ("table1", {"model": "renet"}, "resnet18: model='resnet18'"),
])
def test_an_override_of_a_row_defining_field_is_refused_by_name(tmp_path, table, override, rows):
    spec = study.TABLES[table]
    (field, value), = override.items()
    with pytest.raises(ValueError) as err:
        study.spec_configs(spec, "smoke", folds=[1], store_dir=tmp_path, **override)
    text = str(err.value)
    assert f"{field}={value!r}" in text and "define(s) its rows" in text and rows in text, text
    with pytest.raises(ValueError, match=field):      # the notebooks' path, before anything runs
        study.reproduce(table, "smoke", folds=[1], store_dir=tmp_path, tables_dir=tmp_path, **override)
    # an override of any other field still reaches every row; a None is no override
    configs = study.spec_configs(spec, "smoke", folds=[1], store_dir=tmp_path, lr=3e-4, **{field: None})
    assert all(c.lr == 3e-4 for cfgs in configs.values() for c in cfgs)
    assert row_fields(spec) == sorted({k for r in spec.rows for k in r.config})


def test_an_avg_over_fewer_aus_than_the_table_is_not_printed(tmp_path):
    renet = make_rows("renet", [[0.5] * 12] * 2)
    lost = renet[(renet["fold"] == 2) & (renet["au"] == 4)].index
    rows = pd.concat([renet.drop(lost), make_rows("resnet18", [[0.4] * 12] * 2)], ignore_index=True)
    table = report.build_table(rows, "table1", device="cpu")
    ours = table[table["method"] == "RE-Net (ours)"].set_index("row")
    assert np.isnan(ours.loc["this run", "Avg"]) and np.isnan(ours.loc["difference", "Avg"])
    assert np.isnan(ours.loc["this run", "Avg sd"])
    assert ours.loc["this run", "AU1"] == pytest.approx(50.0)               # the AU columns stay
    assert "Avg not shown: fold 2 lacks AU4" in ours.loc["this run", "data source"]
    base = table[table["method"] == "ResNet-18"].set_index("row")
    assert base.loc["this run", "Avg"] == pytest.approx(40.0)                # a whole row keeps its Avg
    markdown = report.render_markdown(table)
    line = next(l for l in markdown.splitlines() if "Avg not shown" in l)
    assert line.split("|")[-3].strip() == ""                                 # the Avg cell is empty


def test_the_scoreboard_gets_back_rows_lost_from_results_csv(tmp_path):
    from renet_core.study.board import finished_rows

    spec = study.TABLES["table4"]
    configs = study.spec_configs(spec, "smoke", folds=[1], store_dir=tmp_path)
    store = ResultsStore(tmp_path)
    rng = np.random.default_rng(0)
    for cfgs in configs.values():
        cfg = cfgs[0]
        y = rng.integers(0, 6, size=(40, 5)).astype(float)
        scores = rng.normal(size=(40, 5, 6)).astype(np.float32)
        store.save_predictions(cfg.config_hash(), y_true=y, scores=scores, aus=np.array(cfg.resolved_aus()))
        store.mark_done(cfg.config_hash(), {"finished": "2026-01-01 10:00:00", "history": [{"epoch": 1}],
                                            "data_source": "SynthAU smoke, BP4D layout (synthetic)", "synthetic": True})
    assert not store.csv.exists()                                            # results.csv lost
    rows_by_table, synthetic = finished_rows("smoke", store_dir=tmp_path)
    rows = rows_by_table["table4"]
    assert len(rows) == 2 * 5 * 2 and synthetic["table4"] is True              # 2 runs x 5 AUs x ICC, MAE
    assert set(rows["data_source"]) == {"SynthAU smoke, BP4D layout (synthetic)"}
    assert len(store.load()) == 20                                           # and written back
