"""The transcribed paper values (renet_core/resources/paper_tables.csv) against spot checks typed
in by hand from the paper's text, a sample of cells in every table (Tables 1-8, section 4.7)."""

from __future__ import annotations

import pytest

from renet_core.study.paper import TABLES, all_paper_values, paper_row, paper_values

# (table, method, metric, au, value as printed in the paper)
SPOT_CHECKS = [
    # Table 1 (BP4D F1)
    ("1", "LSVM", "F1", "AU1", 23.2),
    ("1", "JPML", "F1", "AU6", 42.3),        # printed "42.3." (typo)
    ("1", "JAA", "F1", "AU7", 74.6),         # printed "74.6." (typo)
    ("1", "DSIN", "F1", "AU1", 51.7),        # printed "[51.7]"
    ("1", "ResNet18", "F1", "AU24", 30.8),
    ("1", "ResNet18", "F1", "Avg", 59.6),
    ("1", "Ours", "F1", "AU1", 57.7),
    ("1", "Ours", "F1", "AU15", 42.0),
    ("1", "Ours", "F1", "Avg", 65.5),
    # Table 2 (DISFA F1)
    ("2", "EAC-net", "F1", "AU9", 80.5),
    ("2", "JAA", "F1", "Avg", 56.0),         # printed "[56.0]*"
    ("2", "ResNet18", "F1", "AU25", 94.3),
    ("2", "Ours", "F1", "AU6", 50.1),
    ("2", "Ours", "F1", "Avg", 55.0),
    # Table 3 (BP4D+ F1)
    ("3", "ResNet18", "F1", "AU24", 13.4),
    ("3", "Ours", "F1", "AU15", 63.0),
    ("3", "Ours", "F1", "Avg", 61.8),
    # Table 4 (BP4D intensity)
    ("4", "VGP-AE", "ICC", "AU6", 0.75),
    ("4", "Ours", "ICC", "AU10", 0.88),      # printed "<b>0.88</b>"
    ("4", "Ours", "ICC", "Avg", 0.64),
    ("4", "CCNN-IT", "MAE", "AU14", 2.72),
    ("4", "Ours", "MAE", "AU17", 0.99),
    ("4", "Ours", "MAE", "Avg", 0.65),
    # Table 5 (DISFA intensity)
    ("5", "KJRE", "ICC", "AU5", 0.33),
    ("5", "Ours", "ICC", "AU5", 0.82),
    ("5", "Ours", "ICC", "Avg", 0.54),
    ("5", "KJRE", "MAE", "AU4", 1.86),
    ("5", "Ours", "MAE", "AU2", 0.08),
    ("5", "Ours", "MAE", "Avg", 0.22),
    # Table 6 (unseen AU; rows unlabelled in the text)
    ("6", "Ours (row 1)", "F1", "AU1", 44.1),
    ("6", "Ours (row 1)", "F1", "AU23", 27.6),
    ("6", "Ours (row 1)", "F1", "Avg", 62.9),
    ("6", "Ours (row 2)", "F1", "AU24", 37.3),
    ("6", "Ours (row 2)", "F1", "Avg", 63.6),
    # Table 7 (Avg only)
    ("7", "JPML", "F1", "Avg", 45.9),
    ("7", "ResNet18", "F1", "Avg", 59.6),
    ("7", "Ours", "F1", "Avg", 65.5),
    ("7", "Ours+learnable", "F1", "Avg", 63.7),
    # Table 8 (only "Ours w/o DA" survives)
    ("8", "Ours w/o DA", "F1", "AU2", 59.0),
    ("8", "Ours w/o DA", "F1", "Avg", 65.5),  # column "Total"
    # section 4.7
    ("4.7", "Ours", "ms_per_image", "Avg", 5.4),
]


@pytest.mark.parametrize("table,method,metric,au,expected", SPOT_CHECKS)
def test_spot_check(table, method, metric, au, expected):
    row = paper_row(table, method, metric)
    assert row[au] == pytest.approx(expected, abs=1e-9)


def test_every_table_is_spot_checked_and_present():
    assert {c[0] for c in SPOT_CHECKS} == set(TABLES)
    assert set(all_paper_values()["table"]) == set(TABLES)


@pytest.mark.parametrize("table,method,metric,n_cells", [
    ("1", "Ours", "F1", 13), ("2", "Ours", "F1", 9), ("3", "ResNet18", "F1", 13),
    ("4", "Ours", "ICC", 6), ("5", "Ours", "MAE", 13), ("6", "Ours (row 2)", "F1", 13),
    ("7", "Ours", "F1", 1), ("8", "Ours w/o DA", "F1", 13),
])
def test_row_lengths(table, method, metric, n_cells):
    assert len(paper_row(table, method, metric)) == n_cells


def test_table1_method_rows_and_au_order():
    t1 = paper_values(1, metric="F1")
    assert t1["method"].nunique() == 11
    assert list(paper_row(1, "Ours", "F1").index) == [
        "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24", "Avg"]


def test_incomplete_and_ambiguous_cells_are_marked():
    t8 = paper_values(8)
    assert set(t8["method"]) == {"Ours w/o DA", "(unlabelled row)"}
    stray = paper_values(8, method="(unlabelled row)")
    assert list(stray["au"]) == ["AU15"] and stray["value"].iloc[0] == 42.0
    assert t8["note"].str.contains("incomplete").all()
    assert paper_values(6)["note"].str.contains("colour").all()
    assert paper_values(7)["note"].str.contains("only Avg").all()
    typo = paper_values(1, method="JPML").set_index("au")
    assert "typo" in typo.loc["AU6", "note"]
    assert paper_values(1, method="DSIN").set_index("au").loc["AU1", "marker"] == "second best"


def test_unknown_selection_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown paper table"):
        paper_values(9)
    with pytest.raises(ValueError, match="no method"):
        paper_values(3, method="LSVM")
    with pytest.raises(ValueError, match="no metric"):
        paper_values(1, metric="ICC")
