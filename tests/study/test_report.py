"""Paper tables rebuilt from hand-made result rows (renet_core.study.report)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from renet_core.study import report

BP4D_AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]


def make_rows(method, values_per_fold, dataset="bp4d", task="occurrence", metric="f1", aus=BP4D_AUS,
              source="SynthAU demo (synthetic)", synthetic=True, heldout=()):
    """Tidy engine rows: ``values_per_fold[fold-1][i]`` is AU ``aus[i]``'s value in that fold,
    selected for the table row ``method`` (column ``entry``, as renet_core.study.select_rows does)."""
    records = []
    for fold, values in enumerate(values_per_fold, start=1):
        for au, v in zip(aus, values):
            records.append(dict(dataset=dataset, task=task, method=method, entry=method, fold=fold, au=au,
                                metric=metric, seed=0, value=v, data_source=source, synthetic=synthetic,
                                heldout=au in heldout))
    return pd.DataFrame.from_records(records)


def test_table1_difference_avg_and_source():
    # RE-Net: fold f gives 0.5 + 0.01 * f on every AU except AU1, which is 0.70 in every fold
    folds = [[0.70] + [0.5 + 0.01 * f] * 11 for f in (1, 2, 3)]
    rows = pd.concat([make_rows("renet", folds), make_rows("resnet18", [[0.4] * 12] * 3)])
    table = report.build_table(rows, "table1", device="cpu")
    ours = table[table["method"] == "RE-Net (ours)"].set_index("row")
    assert list(ours.index) == ["paper", "this run", "difference"]
    assert ours.loc["paper", "AU1"] == pytest.approx(57.7)
    assert ours.loc["paper", "Avg"] == pytest.approx(65.5)
    assert ours.loc["this run", "AU1"] == pytest.approx(70.0)
    assert ours.loc["this run", "AU2"] == pytest.approx(52.0)   # mean over folds of 51, 52, 53
    expected_avg = np.mean([np.mean(f) for f in folds]) * 100
    assert ours.loc["this run", "Avg"] == pytest.approx(expected_avg)
    assert ours.loc["difference", "AU1"] == pytest.approx(70.0 - 57.7)
    assert ours.loc["difference", "Avg"] == pytest.approx(expected_avg - 65.5)
    assert ours.loc["this run", "data source"] == "SynthAU demo (synthetic), cpu, 3 folds"
    base = table[table["method"] == "ResNet-18"].set_index("row")
    assert base.loc["difference", "AU24"] == pytest.approx(40.0 - 30.8)
    assert table.attrs["synthetic"] is True
    assert [c for c in table.columns if c.startswith("AU")] == [f"AU{a}" for a in BP4D_AUS]


def test_intensity_table_has_both_metrics_and_unscaled_values():
    aus = [6, 10, 12, 14, 17]
    rows = pd.concat([
        make_rows("renet", [[0.5] * 5] * 3, task="intensity", metric="icc", aus=aus,
                  source="BP4D (real)", synthetic=False),
        make_rows("renet", [[0.7] * 5] * 3, task="intensity", metric="mae", aus=aus,
                  source="BP4D (real)", synthetic=False),
    ])
    table = report.build_table(rows, "table4")
    ours = table[table["method"] == "RE-Net (ours)"].set_index(["metric", "row"])
    assert ours.loc[("ICC", "this run"), "AU6"] == pytest.approx(0.5)
    assert ours.loc[("ICC", "difference"), "AU6"] == pytest.approx(0.5 - 0.54)
    assert ours.loc[("MAE", "difference"), "Avg"] == pytest.approx(0.7 - 0.65)
    assert ours.loc[("MAE", "this run"), "data source"] == "BP4D (real), 3 folds"
    assert table.attrs["synthetic"] is False
    md = report.render_markdown(table)
    assert "NOT a reproduction" not in md
    # the ResNet-18 intensity baseline was not run: said so, no numbers invented
    base = table[(table["method"] == "ResNet-18") & (table["row"] == "this run")]
    assert (base["data source"] == "not run").all() and base["AU6"].isna().all()


def test_missing_paper_values_give_empty_differences():
    rows = make_rows("resnet18+DA", [[0.6] * 12] * 3)
    table = report.build_table(rows, "table8")
    da = table[table["method"] == "ResNet-18 + DA"].set_index("row")
    assert np.isnan(da.loc["paper", "AU1"]) and np.isnan(da.loc["difference", "AU1"])
    assert da.loc["this run", "AU1"] == pytest.approx(60.0)
    assert any("incomplete" in n for n in table.attrs["notes"])


def test_heldout_au_is_named():
    rows = make_rows("renet-unseenAU23", [[0.5] * 12] * 3, heldout=(23,))
    table = report.build_table(rows, "table6")
    assert "renet-unseenAU23: AU23 never trained on" in table.attrs["heldout"]
    assert "AU23 never trained on" in report.render_markdown(table)


def test_written_files_warn_about_synthetic_data(tmp_path):
    rows = make_rows("renet", [[0.5] * 12] * 3)
    table = report.build_table(rows, "table1", device="cpu")
    csv_path, md_path = report.write_table(table, tmp_path)
    assert csv_path == tmp_path / "table1.csv" and md_path == tmp_path / "table1.md"
    md = md_path.read_text()
    first_lines = "\n".join(md.splitlines()[:4])
    assert "NOT a reproduction of the paper's numbers" in first_lines
    assert "SynthAU demo (synthetic), cpu, 3 folds" in md
    back = pd.read_csv(csv_path)
    assert set(back["data"]) == {"synthetic"}
    assert back.loc[(back["method"] == "RE-Net (ours)") & (back["row"] == "difference"), "AU1"].iloc[0] == \
        pytest.approx(50.0 - 57.7)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary files left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    rows = make_rows("renet", [[0.5] * 12] * 3)
    table = report.build_table(rows, "table1")
    report.write_table(table, tmp_path)
    before = (tmp_path / "table1.md").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "render_markdown", broken)
    with pytest.raises(RuntimeError):
        report.write_table(report.build_table(make_rows("renet", [[0.9] * 12] * 3), "table1"), tmp_path)
    assert (tmp_path / "table1.md").read_text() == before


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown table"):
        report.build_table(make_rows("renet", [[0.5] * 12]), "table9")
    with pytest.raises(ValueError, match="lack columns"):
        report.build_table(pd.DataFrame({"value": [1.0]}), "table1")


def test_efficiency_table_puts_the_paper_figure_beside_the_loop(tmp_path):
    measured = pd.DataFrame({"variant": ["RE-Net, loop of C passes (paper)", "ResNet-18 baseline, one pass"],
                             "batch": [8, 8], "ms_per_image": [20.0, 2.0]})
    table = report.efficiency_table(measured, device="cpu")
    assert table["FPS"].tolist() == pytest.approx([50.0, 500.0])
    assert table["paper ms/image (2080Ti)"].iloc[0] == pytest.approx(5.4)
    assert np.isnan(table["paper ms/image (2080Ti)"].iloc[1])
    _, md = report.write_efficiency(table, tmp_path)
    assert "5.4" in md.read_text()


# ------------------------------------------------------------------------------ figures

def test_relation_figure_written_atomically(tmp_path):
    from renet_core.study import figures

    rng = np.random.default_rng(0)
    m = np.corrcoef(rng.normal(size=(4, 30)))
    fig = figures.relation_figure({"BP4D": (m, [1, 2, 4, 6])})
    path = figures.save_figure(fig, tmp_path / "fig2.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["fig2.png"]
    with pytest.raises(ValueError, match="expected"):
        figures.relation_heatmap(m, [1, 2, 4])


def test_tsne_panels_validate_shapes_and_draw(tmp_path):
    from renet_core.study import figures

    rng = np.random.default_rng(0)
    aus = [4, 10, 12, 24]
    labels = (rng.random((12, 4)) > 0.5).astype(float)
    labels[0, 0] = np.nan
    fig = figures.tsne_panels(rng.normal(size=(12, 4, 8)), rng.normal(size=(12, 8)), labels, aus)
    assert len(fig.axes) == 8
    assert fig.axes[0].get_title() == "RE-Net: AU4" and fig.axes[4].get_title() == "ResNet-18: AU4"
    figures.save_figure(fig, tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not among"):
        figures.tsne_panels(rng.normal(size=(12, 4, 8)), rng.normal(size=(12, 8)), labels, aus, show_aus=(1,))
