"""Results that do not depend on the data loader's workers (issue 22): every random choice of a
training item comes from (run seed, epoch, item index), so any ``num_workers`` gives the same
predictions, and ``num_workers`` is not part of the run identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.data.dataset import AUDataset
from renet_core.engine import ExperimentConfig, ResultsStore, run


def _frames(tmp_path, n=6, side=40) -> pd.DataFrame:
    import cv2

    rows = []
    for i in range(n):
        path = tmp_path / f"crop{i}.jpg"
        image = (np.arange(side * side * 3).reshape(side, side, 3) * (i + 1) % 251).astype(np.uint8)
        cv2.imwrite(str(path), image)
        rows.append({"crop": str(path), "AU1": float(i % 2), "AU2": float(i % 3 == 0)})
    return pd.DataFrame(rows)


def test_augmentation_is_a_function_of_seed_epoch_and_item(tmp_path):
    frames = _frames(tmp_path)
    data = AUDataset(frames, [1, 2], train=True, image_size=35, seed=7)   # crops of a 40 px side
    first = [data[i][0] for i in range(len(data))]
    torch.manual_seed(123)                       # the global RNG plays no part
    np.random.seed(123)
    again = [data[i][0] for i in reversed(range(len(data)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    draws = {data.augmentation(i) for i in range(len(data))}
    data.set_epoch(1)
    assert {data.augmentation(i) for i in range(len(data))} != draws      # a new epoch, new draws
    other = AUDataset(frames, [1, 2], train=True, image_size=35, seed=8)
    assert [other.augmentation(i) for i in range(6)] != [data.augmentation(i) for i in range(6)]
    data.set_epoch(0)
    assert {data.augmentation(i) for i in range(len(data))} == draws
    assert all(0 <= t <= 5 and 0 <= left <= 5 for t, left, _ in draws)
    test = AUDataset(frames, [1, 2], train=False, image_size=35)
    assert torch.equal(test[0][0], test[0][0])
    with pytest.raises(ValueError, match="epoch"):
        data.set_epoch(-1)


def test_loader_workers_follow_the_machine(monkeypatch):
    """The paper profile's default workers: the cores less one (shared among torchrun's processes
    on the node), at least 1, at most MAX_LOADER_WORKERS; not part of the run identity."""
    from renet_core.base import device

    for cores, local, expected in ((16, None, 8), (2, None, 1), (1, None, 1), (16, "4", 3), (64, "2", 8)):
        monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        if local:
            monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
        else:
            monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        assert device.loader_workers() == expected, (cores, local)
    paper = ExperimentConfig.build(profile="paper", data="synthetic")
    assert paper.num_workers >= 1
    assert paper.replace(num_workers=0).config_hash() == paper.config_hash()


@pytest.mark.slow
def test_predictions_are_identical_for_zero_and_two_workers(tmp_path):
    """The issue's measurement: the same smoke run with num_workers=0 and 2 gave Avg F1 0.179
    against 0.215. Now the saved test predictions are equal to the last bit, and both configs
    have one run identity (each run is filed in its own results folder here)."""
    predictions, keys = [], set()
    for workers in (0, 2):
        cfg = ExperimentConfig.build(profile="smoke", dataset="bp4d", model="renet", fold=1,
                                     num_workers=workers, cache_dir=str(tmp_path / "cache"),
                                     results_dir=str(tmp_path / f"runs{workers}"), progress=False)
        result = run(cfg)
        assert not result.skipped
        keys.add(result.config_hash)
        predictions.append(ResultsStore(cfg.results_dir).load_predictions(result.config_hash))
    assert len(keys) == 1
    zero, two = predictions
    assert np.array_equal(zero["scores"], two["scores"])
    assert np.array_equal(zero["y_true"], two["y_true"], equal_nan=True)


def test_engine_items_are_uint8_and_normalised_on_the_device(tmp_path):
    """The engine's datasets hand uint8 crops to the loader (a quarter of the bytes through the
    workers, pinned memory and the bus); to_device normalises them exactly as a float item is."""
    from renet_core.data.dataset import normalise
    from renet_core.engine.precision import to_device

    frames = _frames(tmp_path)
    raw = AUDataset(frames, [1, 2], train=True, image_size=35, seed=3, normalise=False)
    ready = AUDataset(frames, [1, 2], train=True, image_size=35, seed=3)
    image, target, mask = raw[4]
    assert image.dtype == torch.uint8 and image.shape == (3, 35, 35) and image.is_contiguous()
    assert torch.equal(normalise(image), ready[4][0]) and ready[4][0].dtype == torch.float32
    batch = torch.utils.data.default_collate([raw[i] for i in range(3)])
    images, _, _ = to_device(batch, torch.device("cpu"), channels_last=False)
    assert torch.equal(images, torch.stack([ready[i][0] for i in range(3)]))
