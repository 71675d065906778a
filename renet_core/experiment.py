"""Experiments: a config in, trained models and tidy result rows out.

:class:`ExperimentConfig` names everything a run depends on (dataset, fold, AUs, task, model,
relation, training strategy, optimiser, early stopping, augmentation, seed, image size, device).
:func:`run` trains and evaluates one fold, :func:`cross_validate` the three subject-exclusive
folds. Results go to a :class:`renet_core.results.ResultsStore`; a finished config is skipped
unless ``force=True``; an interrupted one resumes from its last checkpoint.

When no dataset ``root`` is given (and ``data="synthetic"``), the SynthAU twin of the dataset is
written into the cache folder once and used; its result rows say so in ``data_source``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from . import __version__, ddp, metrics
from .model import HEADS
from .paper import PAPER_AUS
from .results import ResultsStore

#: Environment variables naming the real datasets' roots (``data="real"``).
ROOT_ENV = {"bp4d": "RENET_BP4D", "disfa": "RENET_DISFA", "bp4dplus": "RENET_BP4DPLUS"}
#: Fields added after results were first published, hashed only when they differ from these
#: defaults, so that runs made before they existed keep their identity.
LATER_FIELDS = {"head": "shared", "bn_momentum": 0.1, "bn_warm_start": True, "au_lr_scale": 1.0,
                "lr_schedule": "constant"}
#: Fields that do not change a run's results (left out of the config hash).
OPERATIONAL_FIELDS = ("root", "cache_dir", "results_dir", "device", "num_workers", "progress",
                      "force", "eval_batch_size")


@dataclass
class ExperimentConfig:
    """Everything one run (one dataset, one fold) depends on. Defaults follow section 4.3."""

    # data
    dataset: str = "bp4d"                 # "bp4d" | "disfa" | "bp4dplus"
    task: str = "occurrence"              # "occurrence" | "intensity"
    aus: list[int] | None = None          # None: the paper's AUs for (dataset, task)
    fold: int = 1                         # 1..3; fold1 tests on part 3 (datasets.md)
    data: str = "synthetic"               # "synthetic" (SynthAU twin) | "real" (root or $RENET_<DATASET>)
    root: str | None = None               # dataset root; overrides ``data``
    synth_size: str = "demo"              # SynthAU size when synthetic: "smoke" | "demo"
    synth_seed: int = 0
    cache_dir: str | None = None          # default $RENET_CACHE or ~/.cache/renet_core
    image_size: int = 224                 # crop fed to the network (paper: 224 from 256)
    duplicate_aus: list[int] | None = None  # Table 8 augmentation, e.g. [1, 2, 15, 23, 24]
    val_fraction: float = 0.15            # share of training subjects held out for early stopping
    val_max_frames: int | None = None     # evenly spaced subset of the validation frames (CPU demos)
    # model
    model: str = "renet"                  # "renet" | "resnet18"
    relation_mode: str = "fixed"          # "fixed" | "learnable" | "none"
    denominator: str | None = None        # Eq. 5 denominator, see renet_core.model
    pretrained: str | None = None         # torchvision resnet18 state_dict path, "imagenet", or
                                          # "standin" (offline demo: renet_core.pretrain)
    holdout_aus: list[int] = field(default_factory=list)  # Table 6: labels never trained on
    head: str = "shared"                  # RE-Net output layer: "shared" (section 3.1) | "per_au"
    bn_momentum: float = 0.1              # RE-Net per-AU running statistics (PyTorch's default)
    bn_warm_start: bool = True            # exact average of an AU's first statistics updates
    # training
    strategy: str = "one"                 # "one" random AU per batch (paper) | "all"
    lr: float = 1e-4
    au_lr_scale: float | str = 1.0        # lr multiplier of RE-Net's AU-specific gamma_k, beta_k
                                          # (and per-AU head); 1 = the paper (one lr for all);
                                          # "C" = the number of trained AUs (see lr_scale())
    lr_schedule: str = "constant"         # "constant" (section 4.3) | "cosine" (decay to 0 over epochs)
    weight_decay: float = 0.0
    batch_size: int = 100
    epochs: int = 20
    patience: int = 3                     # epochs without a better validation score
    steps_per_epoch: int | None = None    # cap on batches per epoch (CPU demos)
    seed: int = 0
    # evaluation
    threshold: float = 0.5                # F1 threshold, fixed (never tuned on test data)
    intensity_rule: str = "expected"      # "expected" | "argmax" (metrics.decode_intensity)
    save_features: int = 500              # test frames whose features are kept for t-SNE (0: none)
    bn_refresh_batches: int = 0           # re-estimate BN statistics on this many training batches
                                          # after each epoch (short CPU runs; 0 = the paper's plain BN)
    # bookkeeping and hardware
    method: str | None = None             # label in the results; None: derived (method_name)
    profile: str | None = None
    results_dir: str = "results"
    device: str | None = None             # None: CUDA, then MPS, then CPU
    amp: str = "auto"                     # "auto" (bf16 where supported) | "bf16" | "fp16" | "off"
    channels_last: bool = True            # CUDA only
    num_workers: int = 0
    eval_batch_size: int | None = None
    progress: bool = True
    force: bool = False                   # retrain even if this config already finished

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ExperimentConfig":
        """Build from a dict (papermill parameters, YAML); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**values).validated()

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ExperimentConfig":
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError(f"config {path} must be a YAML mapping of ExperimentConfig fields")
        return cls.from_dict(values)

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes).validated()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validated(self) -> "ExperimentConfig":
        choices = {"task": ("occurrence", "intensity"), "model": ("renet", "resnet18"),
                   "relation_mode": ("fixed", "learnable", "none"), "strategy": ("one", "all"),
                   "lr_schedule": ("constant", "cosine"),
                   "data": ("synthetic", "real"), "intensity_rule": metrics.INTENSITY_RULES,
                   "amp": ("auto", "bf16", "fp16", "off"), "dataset": tuple(ROOT_ENV)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config {name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.fold not in (1, 2, 3):
            raise ValueError(f"config fold={self.fold!r}; expected 1, 2 or 3")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"config val_fraction={self.val_fraction}; expected 0 <= value < 1")
        aus = self.resolved_aus()
        stray = [a for a in self.holdout_aus if a not in aus]
        if stray:
            raise ValueError(f"holdout_aus {stray} are not among the run's AUs {aus}")
        if self.head not in HEADS:
            raise ValueError(f"config head={self.head!r}; expected one of {HEADS}")
        try:
            self.bn_momentum = float(self.bn_momentum)
            if self.au_lr_scale != "C":
                self.au_lr_scale = float(self.au_lr_scale)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config au_lr_scale={self.au_lr_scale!r}, bn_momentum={self.bn_momentum!r}: "
                             f"expected numbers (au_lr_scale may also be 'C'): {exc}") from exc
        if self.au_lr_scale != "C" and not self.au_lr_scale > 0:
            raise ValueError(f"config au_lr_scale={self.au_lr_scale}; expected a positive number or 'C'")
        if not 0 < self.bn_momentum <= 1:
            raise ValueError(f"config bn_momentum={self.bn_momentum}; expected 0 < value <= 1")
        if self.holdout_aus and self.model != "renet":
            raise ValueError("holdout_aus (unseen-AU transfer, Table 6) needs model='renet'")
        return self

    # -- derived values ------------------------------------------------------------------
    def resolved_aus(self) -> list[int]:
        if self.aus:
            return [int(a) for a in self.aus]
        key = (self.dataset, self.task)
        if key not in PAPER_AUS:
            raise ValueError(f"no default AU list for {key}; give aus explicitly")
        return list(PAPER_AUS[key])

    def lr_scale(self) -> float:
        """The AU-specific learning-rate multiplier as a number: ``au_lr_scale``, where "C" is the
        number of trained AUs (one AU per batch trains each AU in ~1/C of the steps)."""
        if self.au_lr_scale == "C":
            return float(len(self.resolved_aus()) - len(self.holdout_aus))
        return float(self.au_lr_scale)

    def method_name(self) -> str:
        """The label of this method in result tables, e.g. "renet", "resnet18+DA"."""
        if self.method:
            return self.method
        name = self.model
        if self.model == "renet":
            if self.relation_mode != "fixed":
                name += f"-{self.relation_mode}"
            if self.strategy != "one":
                name += f"-{self.strategy}"
            if self.holdout_aus:
                name += "-unseen" + "_".join(f"AU{a}" for a in self.holdout_aus)
        if self.duplicate_aus:
            name += "+DA"
        return name

    def config_hash(self) -> str:
        """Hash of every field that can change the results (not paths, devices, workers)."""
        values = self.to_dict()
        values["au_lr_scale"] = self.lr_scale()   # "C" and its number are the same run
        values = {k: v for k, v in values.items() if k not in OPERATIONAL_FIELDS
                  and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
        values["aus"] = self.resolved_aus()
        values["method"] = self.method_name()
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cache_root(self) -> Path:
        return Path(self.cache_dir or os.environ.get("RENET_CACHE") or Path.home() / ".cache" / "renet_core")


# ------------------------------------------------------------------------------------- data

@dataclass
class Splits:
    """The frames of one run: training, validation (subject-exclusive) and test."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    source: str
    synthetic: bool


def dataset_root(cfg: ExperimentConfig) -> Path:
    """The dataset root: ``cfg.root``; else ``$RENET_<DATASET>`` for real data; else the SynthAU
    twin in the cache, written on first use."""
    if cfg.root:
        return Path(cfg.root)
    if cfg.data == "real":
        var = ROOT_ENV[cfg.dataset]
        if not os.environ.get(var):
            raise ValueError(f"data='real' for {cfg.dataset} needs its root: pass root=... or set ${var}")
        return Path(os.environ[var])
    return synth_twin(cfg.dataset, cfg.synth_size, cfg.synth_seed, cfg.cache_root())


def synth_twin(layout: str, size: str, seed: int, cache: Path) -> Path:
    """The SynthAU copy of ``layout``, written once (atomically: a temp folder renamed)."""
    from .synth import GENERATOR_VERSION

    # the generator version is in the name: new defaults never reuse stale images or crops
    root = cache / "synthau" / f"{layout}-{size}-seed{seed}-v{GENERATOR_VERSION}"
    if (root / "SYNTHAU.json").exists():
        return root
    from .synth import write_dataset

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        write_dataset(layout, tmp, size=size, seed=seed)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first
            if not (root / "SYNTHAU.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def crop_size(image_size: int) -> int:
    """Side of the cached aligned crops: 256 for the paper's 224 (section 4.3), scaled alike."""
    return int(round(image_size * 256 / 224))


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


def load_splits(cfg: ExperimentConfig) -> Splits:
    """Prepare (align and cache) the dataset and cut it into train / validation / test."""
    from . import data

    root = dataset_root(cfg)
    cache = cfg.cache_root() / "prepared" / f"{cfg.dataset}-{_short_hash(str(root.resolve()))}-{crop_size(cfg.image_size)}"
    index = data.prepare(cfg.dataset, root, cache, size=crop_size(cfg.image_size), progress=cfg.progress)
    train, test = data.split(index, cfg.fold)
    train, val = subject_split(train, cfg.val_fraction, cfg.seed)
    val = thin_frames(val, cfg.val_max_frames)
    synthetic = bool(index.attrs.get("synthetic", False))
    return Splits(train, val, test, data.describe_source(index), synthetic)


def label_columns(cfg: ExperimentConfig) -> list[str]:
    suffix = "" if cfg.task == "occurrence" else "_int"
    return [f"AU{a}{suffix}" for a in cfg.resolved_aus()]


def make_dataset(frames: pd.DataFrame, cfg: ExperimentConfig, train: bool):
    from .data import AUDataset

    return AUDataset(frames, cfg.resolved_aus(), task=cfg.task, train=train, image_size=cfg.image_size,
                     duplicate_aus=cfg.duplicate_aus if train else None)


def relation_from_training(train: pd.DataFrame, cfg: ExperimentConfig) -> np.ndarray:
    """PCC relation (section 3.3) from the training fold's labels only -- all AUs, including
    held-out ones (a prior over the label structure); intensity labels for intensity (4.5)."""
    from .relation import pearson_relation

    columns = label_columns(cfg)
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise ValueError(f"training frames lack label columns {missing}")
    return pearson_relation(train[columns].to_numpy(dtype=float))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# ------------------------------------------------------------------------------------- runs

@dataclass
class RunResult:
    """What :func:`run` returns: the result rows and where everything was written."""

    config_hash: str
    rows: pd.DataFrame
    run_dir: Path
    skipped: bool = False
    history: list = field(default_factory=list)

    def per_au(self, metric: str) -> pd.Series:
        sel = self.rows[self.rows["metric"] == metric]
        return pd.Series(sel["value"].to_numpy(), index=sel["au"].to_numpy(), name=metric)


def run(config: ExperimentConfig | dict, splits: Splits | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None, dataset_factory=None) -> RunResult:
    """Train and evaluate one fold; write checkpoints, predictions and result rows.

    ``splits`` and ``dataset_factory(frames, cfg, train)`` may be supplied to bypass the data
    layer (tests, notebooks with their own frames). A finished config is returned from the
    results store unless ``config.force``; an interrupted one resumes from ``last.pt``.
    """
    from . import train as loop
    from .device import pick_device
    from .model import build_model

    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    cfg = cfg.validated()
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    run_dir = store.run_dir(key)
    info = ddp.env_info()
    if store.is_done(key) and not cfg.force:
        rows = store.load()
        return RunResult(key, rows[rows["config_hash"] == key].reset_index(drop=True), run_dir, skipped=True)
    if cfg.force and info.is_main:
        for name in ("done.json", "last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    device = pick_device(cfg.device)
    info = ddp.setup(device)
    device = ddp.device_for(info, device)
    splits = splits or load_splits(cfg)
    make = dataset_factory or make_dataset
    if info.is_main:
        store.save_config(key, cfg.to_dict())

    pretrained = cfg.pretrained
    if pretrained == "standin":   # the offline stand-in for ImageNet weights (trained once, cached)
        from .pretrain import standin_backbone

        pretrained = standin_backbone(cfg)
    torch.manual_seed(cfg.seed)
    relation = relation_from_training(pd.concat([splits.train, splits.val]), cfg) if cfg.model == "renet" else None
    try:
        model = build_model(cfg.model, cfg.resolved_aus(), cfg.task, relation=relation,
                            relation_mode=cfg.relation_mode, pretrained=pretrained,
                            denominator=cfg.denominator, head=cfg.head, seed=cfg.seed,
                            bn_momentum=cfg.bn_momentum, bn_warm_start=cfg.bn_warm_start).to(device)
    except ValueError as exc:
        if "denominator" not in str(exc):
            raise
        raise ValueError(f"{cfg.dataset} fold {cfg.fold}, relation from the training labels: {exc} "
                         "(config: denominator='abs', CLI: --set denominator=abs)") from exc
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    val_set = make(splits.val, cfg, False) if len(splits.val) else None
    history = loop.fit(model, make(splits.train, cfg, True), val_set, cfg, run_dir, device, info, on_epoch_end)
    rows = pd.DataFrame()
    if info.is_main:
        rows = evaluate_model(model, cfg, splits, store, device, make, history)
    ddp.barrier(info)
    ddp.cleanup(info)
    return RunResult(key, rows, run_dir, history=history)


def evaluate_model(model, cfg: ExperimentConfig, splits: Splits, store: ResultsStore, device,
                   make=make_dataset, history=None) -> pd.DataFrame:
    """Test-set evaluation of a trained model: predictions saved, rows written, run marked done."""
    from . import train as loop

    key = cfg.config_hash()
    if cfg.holdout_aus:  # Table 6: derive unseen AUs' parameters from trained ones (Eq. 4-5)
        ddp.unwrap(model).derive_unseen_aus([cfg.resolved_aus().index(a) for a in cfg.holdout_aus])
    test_set = make(splits.test, cfg, False)
    loader = loop.eval_loader(test_set, cfg, pin=device.type == "cuda")
    pred = loop.predict(model, loader, device, cfg, desc="test")
    per_metric = loop.score_predictions(pred, cfg)
    arrays = {"y_true": pred["y_true"], "scores": pred["scores"], "aus": np.array(cfg.resolved_aus()),
              "subject": np.asarray(splits.test["subject"].astype(str), dtype=str),
              "frame": np.asarray(splits.test["frame"].astype(str), dtype=str) if "frame" in splits.test else np.array([], dtype=str)}
    if cfg.task == "intensity":
        arrays["y_pred"] = metrics.decode_intensity(pred["scores"], cfg.intensity_rule)
    arrays.update(test_features(model, test_set, cfg, device))
    store.save_predictions(key, **arrays)
    epochs = len(history) if history else None
    rows = result_rows(cfg, per_metric, source=splits.source, synthetic=splits.synthetic,
                       n_test=len(test_set), epochs_trained=epochs)
    store.add_rows(rows)
    store.mark_done(key, {"method": cfg.method_name(), "fold": cfg.fold, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                          "history": history or [], **{m: float(np.nanmean(v)) for m, v in per_metric.items()}})
    return rows


@torch.no_grad()
def test_features(model, test_set, cfg: ExperimentConfig, device) -> dict:
    """Pooled features of the first ``cfg.save_features`` test frames, for the t-SNE of Fig. 3:
    ``[n, C, 512]`` for RE-Net (one feature per AU), ``[n, 512]`` for the baseline (float16)."""
    n = min(cfg.save_features, len(test_set))
    if n <= 0:
        return {}
    from torch.utils.data import DataLoader, Subset

    model = ddp.unwrap(model).eval()
    feats = []
    for images, _, _ in DataLoader(Subset(test_set, range(n)), batch_size=cfg.eval_batch_size or cfg.batch_size):
        feats.append(model.features(images.to(device)).float().cpu())
    return {"features": torch.cat(feats).numpy().astype(np.float16), "features_index": np.arange(n)}


def result_rows(cfg: ExperimentConfig, per_metric: dict[str, np.ndarray], source: str, synthetic: bool,
                n_test: int, epochs_trained: int | None) -> pd.DataFrame:
    """Tidy rows: one per (dataset, task, method, fold, AU, metric)."""
    aus = cfg.resolved_aus()
    records = []
    for metric, values in per_metric.items():
        for au, value in zip(aus, values):
            records.append({"dataset": cfg.dataset, "task": cfg.task, "method": cfg.method_name(),
                            "fold": cfg.fold, "au": au, "metric": metric, "seed": cfg.seed,
                            "value": float(value), "config_hash": cfg.config_hash(),
                            "package_version": __version__, "data_source": source,
                            "synthetic": bool(synthetic), "profile": cfg.profile or "",
                            "n_test": n_test, "epochs_trained": epochs_trained,
                            "heldout": au in set(cfg.holdout_aus)})
    return pd.DataFrame.from_records(records)


def evaluate(config: ExperimentConfig | dict, checkpoint: str | os.PathLike | None = None,
             splits: Splits | None = None, dataset_factory=None) -> pd.DataFrame:
    """Re-evaluate a trained run on its test fold from ``checkpoint`` (default: its ``best.pt``)."""
    from .device import pick_device
    from .model import load_checkpoint

    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    store = ResultsStore(cfg.results_dir)
    path = Path(checkpoint) if checkpoint else store.run_dir(cfg.config_hash()) / "best.pt"
    device = pick_device(cfg.device)
    model, _ = load_checkpoint(path, aus=cfg.resolved_aus(), map_location="cpu")
    model.to(device)
    return evaluate_model(model, cfg, splits or load_splits(cfg), store, device, dataset_factory or make_dataset)


def cross_validate(config: ExperimentConfig | dict, folds: Sequence[int] = (1, 2, 3), **kwargs) -> pd.DataFrame:
    """Run the subject-exclusive folds and return all their rows (section 4.1)."""
    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    results = [run(cfg.replace(fold=int(f)), **kwargs) for f in folds]
    return pd.concat([r.rows for r in results], ignore_index=True)
