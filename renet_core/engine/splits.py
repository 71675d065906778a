"""A run's data: the dataset root (or its SynthAU twin, written on first use), aligned crops
(:func:`renet_core.data.prepare`), the fold's subject-exclusive train / validation / test frames
(section 4.1), the training-label relation (section 3.3) and the torch datasets."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core import data
from renet_core.data.cache import PREPARE_VERSION
from renet_core.data.dataset import AUDataset, resize_size
from renet_core.data.index import DATASETS
from renet_core.data.layout import SYNTH_MARKER, synthetic_marker
from renet_core.engine.identity import ROOT_ENV, configured_root
from renet_core.model.relation import pearson_relation
from renet_core.synth import GENERATOR_VERSION, setting_knobs, variant_tag, write_dataset


@dataclass
class Splits:
    """The frames of one run: training, validation (subject-exclusive) and test."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    source: str
    synthetic: bool


def dataset_root(cfg) -> Path:
    """The dataset root: ``cfg.root``; else ``$RENET_<DATASET>`` for real data; else the SynthAU
    twin in the cache, written on first use."""
    if cfg.root:
        return Path(cfg.root)
    if cfg.data == "real":
        root = configured_root(cfg.dataset)
        if not root:
            raise ValueError(f"data='real' for {cfg.dataset} needs its root: pass root=... or set "
                             f"${ROOT_ENV[cfg.dataset]}")
        return Path(root)
    return synth_twin(cfg.dataset, cfg.synth_size, cfg.synth_seed, cfg.cache_root(), cfg.synth_coupling,
                      cfg.synth_setting)


def synth_twin(layout: str, size: str, seed: int, cache: Path, coupling: float = 1.0,
               setting: str = "default") -> Path:
    """The SynthAU copy of ``layout``, written once (atomically: a temp folder renamed); a
    non-default ``coupling`` or ``setting`` (premise experiment) is its own copy."""
    # the generator version is in the name: new defaults never reuse stale images or crops
    root = cache / "synthau" / f"{layout}-{size}-seed{seed}-v{GENERATOR_VERSION}{variant_tag(coupling, setting)}"
    if (root / SYNTH_MARKER).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        write_dataset(layout, tmp, size=size, seed=seed, **setting_knobs(setting, coupling))
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first
            if not (root / SYNTH_MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def crop_size(image_size: int) -> int:
    """Side of the cached aligned crops: 256 for the paper's 224 (section 4.3), scaled alike
    (the side the dataset resizes to before cropping, :func:`renet_core.data.dataset.resize_size`)."""
    return resize_size(image_size)


def subject_split(frames: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``fraction`` of the training *subjects* (at least one when fraction > 0) for
    early stopping; no subject is in both parts."""
    subjects = sorted(frames["subject"].astype(str).unique())
    n_val = 0 if fraction <= 0 else max(1, int(round(fraction * len(subjects))))
    if n_val >= len(subjects):
        raise ValueError(f"cannot hold out {n_val} of {len(subjects)} training subjects for validation")
    rng = np.random.default_rng(seed)
    val_subjects = set(rng.choice(subjects, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = frames["subject"].astype(str).isin(val_subjects)
    return frames[~is_val].reset_index(drop=True), frames[is_val].reset_index(drop=True)


def thin_frames(frames: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most ``limit`` frames, evenly spaced (so every subject and task stays represented)."""
    if not limit or len(frames) <= limit:
        return frames
    keep = np.unique(np.linspace(0, len(frames) - 1, int(limit)).round().astype(int))
    return frames.iloc[keep].reset_index(drop=True)


def load_splits(cfg) -> Splits:
    """Prepare (align and cache) the dataset and cut it into train / validation / test."""
    root = dataset_root(cfg)
    # "-lm<origin>": one cache per landmark reading; "-p<version>": caches of an older prepare
    # (which did not vouch for each crop) are left unused, not refused
    cache = cfg.cache_root() / "prepared" / (f"{cfg.dataset}-{_short_hash(str(root.resolve()))}-"
                                             f"{crop_size(cfg.image_size)}-lm{cfg.landmark_origin}-p{PREPARE_VERSION}")
    index = data.prepare(cfg.dataset, root, cache, size=crop_size(cfg.image_size), progress=cfg.progress,
                         landmark_origin=cfg.landmark_origin)
    if index.empty:
        summary = index.attrs.get("prepare_summary", {})
        reasons = "; ".join(f"{n} {why}" for why, n in summary.get("skipped", {}).items()) or "none labelled"
        raise ValueError(f"0 of the {summary.get('read', 0)} labelled frames of {cfg.dataset} at {root} could be "
                         f"aligned ({reasons}); is {root} a {DATASETS[cfg.dataset]} copy as distributed "
                         f"(dataset={cfg.dataset!r})? The prepare summary above names the files")
    train, test = data.split(index, cfg.fold)
    train, val = subject_split(train, cfg.val_fraction, cfg.seed)
    val = thin_frames(val, cfg.val_max_frames)
    synthetic = bool(index.attrs.get("synthetic", False))
    return Splits(train, val, test, data.describe_source(index), synthetic)


def describe_data(cfg) -> tuple[str, bool]:
    """``(data source in words, synthetic?)`` of a config's data as its result rows say it
    (:func:`renet_core.data.describe_source`), without preparing anything."""
    if not cfg.root and cfg.data == "synthetic":
        marker = {"size": cfg.synth_size}
    else:
        marker = synthetic_marker(Path(cfg.root or configured_root(cfg.dataset) or "."))
    frame = pd.DataFrame()
    frame.attrs.update(dataset=cfg.dataset, synthetic=marker is not None,
                       synthetic_size=(marker or {}).get("size"))
    return data.describe_source(frame), marker is not None


def label_columns(cfg) -> list[str]:
    suffix = "" if cfg.task == "occurrence" else "_int"
    return [f"AU{a}{suffix}" for a in cfg.resolved_aus()]


def make_dataset(frames: pd.DataFrame, cfg, train: bool):
    """The run's AUDataset: uint8 items, normalised on the device by ``precision.to_device``."""
    return AUDataset(frames, cfg.resolved_aus(), task=cfg.task, train=train, image_size=cfg.image_size,
                     duplicate_aus=cfg.duplicate_aus if train else None, duplicate_rule=cfg.duplicate_rule,
                     seed=cfg.seed, normalise=False)


def relation_from_training(train: pd.DataFrame, cfg) -> np.ndarray:
    """PCC relation (section 3.3) from the training fold's labels only -- all AUs, including
    held-out ones (a prior over the label structure); intensity labels for intensity (4.5)."""
    columns = label_columns(cfg)
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise ValueError(f"training frames lack label columns {missing}")
    return pearson_relation(train[columns].to_numpy(dtype=float))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]
