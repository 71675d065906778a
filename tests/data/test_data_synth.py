"""load_index + split + prepare + AUDataset on the SynthAU smoke copies of all three layouts.

SynthAU's ``sample_labels`` gives the labels it wrote (before its layout quirks: 9 codes and
dropped intensity rows), so the loaders' reading of every known label can be checked exactly.
"""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("renet_core.synth")

from renet_core.data import DETECTION_AUS, FOLDS, AUDataset, describe_source, load_index, prepare, split  # noqa: E402


def _load(layout, root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quirks SynthAU plants are reported as warnings
        return load_index(layout, root)


@pytest.mark.parametrize("layout", ["bp4d", "disfa", "bp4dplus"])
def test_index_matches_the_labels_synthau_wrote(synth_roots, layout):
    from renet_core.synth import sample_labels

    index = _load(layout, synth_roots[layout])
    assert index.attrs["synthetic"] is True and index.attrs["dataset"] == layout
    assert "synthetic" in describe_source(index)
    truth = sample_labels(layout, "smoke", 0)
    keys = ["subject", "frame"] if layout == "disfa" else ["subject", "task", "frame"]
    merged = index.merge(truth, on=keys, how="outer", suffixes=("", "_true"), indicator=True)
    assert (merged["_merge"] == "both").all(), "frame sets differ"
    columns = ([f"AU{a}_int" for a in index.attrs["intensity_aus"]] if layout == "disfa"
               else [f"AU{a}" for a in index.attrs["aus"]]
               + [f"AU{a}_int" for a in index.attrs["intensity_aus"]])
    known = 0
    for col in columns:
        ours, true = merged[col].to_numpy(float), merged[col + "_true"].to_numpy(float)
        ok = ~np.isnan(ours)
        np.testing.assert_array_equal(ours[ok], true[ok], err_msg=col)
        known += ok.sum()
    assert known > 0.8 * len(columns) * len(index)   # NaN only where a quirk put it
    if layout == "disfa":  # occurrence = intensity >= 1 (paper: "intensity greater than 0")
        for au in index.attrs["aus"]:
            np.testing.assert_array_equal(index[f"AU{au}"], (index[f"AU{au}_int"] >= 1) * 1.0)


@pytest.mark.parametrize("layout", ["bp4d", "disfa", "bp4dplus"])
def test_prepare_split_and_dataset_run_end_to_end(synth_roots, layout, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = prepare(layout, synth_roots[layout], tmp_path / "cache", size=64, workers=1,
                         progress=False)
    summary = frames.attrs["prepare_summary"]
    assert summary["aligned"] == len(frames) >= 0.9 * summary["read"]
    assert frames.attrs["synthetic"] is True
    for fold in (1, 2, 3):
        train, test = split(frames, fold)
        assert len(train) and len(test)
        assert set(test["subject"]) <= set(FOLDS[layout][{1: 2, 2: 1, 3: 0}[fold]])
        assert not set(train["subject"]) & set(test["subject"])
    aus = DETECTION_AUS[layout]
    dataset = AUDataset(frames, aus, train=True, image_size=56)
    image, target, mask = dataset[len(dataset) - 1]
    assert image.shape == (3, 56, 56) and target.shape == mask.shape == (len(aus),)
    assert torch.isfinite(image).all() and image.std() > 0.1   # a face, not a blank crop
