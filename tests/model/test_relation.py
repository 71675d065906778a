"""Pearson relation matrix (section 3.3, Fig. 2) and device selection."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.base.device import pick_device
from renet_core.model.relation import pearson_relation


def labels_with_unknowns(seed=0, n=400):
    rng = np.random.default_rng(seed)
    base = rng.random(n)
    au1 = (base > 0.6).astype(float)
    au2 = np.where(rng.random(n) < 0.85, au1, 1 - au1)        # strongly tied to AU1
    au12 = (rng.random(n) > 0.5).astype(float)
    au15 = np.where(au12 == 1, 0.0, (rng.random(n) > 0.4).astype(float))   # excluded by AU12
    labels = np.stack([au1, au2, au12, au15], axis=1)
    mask = rng.random(labels.shape) < 0.1
    labels[mask] = np.nan
    return labels


def reference_pcc(labels):
    c = labels.shape[1]
    out = np.eye(c)
    for i in range(c):
        for j in range(c):
            if i != j:
                both = ~np.isnan(labels[:, i]) & ~np.isnan(labels[:, j])
                out[i, j] = np.corrcoef(labels[both, i], labels[both, j])[0, 1]
    return out


def test_pcc_matches_numpy_with_pairwise_unknowns():
    labels = labels_with_unknowns()
    got = pearson_relation(labels)
    np.testing.assert_allclose(got, reference_pcc(labels), atol=1e-12)
    np.testing.assert_allclose(got, got.T)
    assert got[0, 1] > 0.5 and got[2, 3] < -0.2
    frame = pd.DataFrame(labels, columns=["AU1", "AU2", "AU12", "AU15"])
    np.testing.assert_allclose(pearson_relation(frame), got)


def test_constant_column_gives_zero_with_warning():
    labels = labels_with_unknowns()
    labels[:, 3] = np.where(np.isnan(labels[:, 3]), np.nan, 0.0)
    with pytest.warns(RuntimeWarning, match="undefined"):
        got = pearson_relation(labels)
    assert not np.isnan(got).any()
    assert got[3, 3] == 1.0 and (got[3, :3] == 0).all() and (got[:3, 3] == 0).all()


def test_no_warning_when_all_defined_and_bad_shape():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pearson_relation(labels_with_unknowns())
    with pytest.raises(ValueError, match="2-D"):
        pearson_relation(np.zeros(5))


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device() in {torch.device("cpu"), torch.device("cuda"), torch.device("mps")}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device("cuda")
