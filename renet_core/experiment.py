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

import contextlib
import contextvars
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
from .io import TIME_FORMAT
from .model import HEADS
from .paper import PAPER_AUS
from .results import ResultsStore

#: Environment variables naming the real datasets' roots (``data="real"``).
ROOT_ENV = {"bp4d": "RENET_BP4D", "disfa": "RENET_DISFA", "bp4dplus": "RENET_BP4DPLUS"}
#: Fields added after results were first published, hashed only when they differ from these
#: defaults, so that runs made before they existed keep their identity.
LATER_FIELDS = {"head": "shared", "bn_momentum": 0.1, "bn_warm_start": True, "au_lr_scale": 1.0,
                "lr_schedule": "constant", "num_workers": 0, "landmark_origin": 1,
                "duplicate_rule": "frame"}
#: Fields that do not change a run's results (left out of the config hash). ``root`` enters the
#: hash through :meth:`ExperimentConfig.data_identity`; ``method`` and ``profile`` are labels.
IDENTITY_EXCLUDED = ("root", "cache_dir", "results_dir", "device", "progress", "force", "eval_batch_size",
                     "method", "profile")
#: Files that describe a dataset's labels and landmarks (images and videos are not fingerprinted).
LABEL_SUFFIXES = (".csv", ".txt", ".mat", ".json", ".dat", ".xlsx")


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
    duplicate_rule: str = "frame"         # "frame": a frame positive for any listed AU once more;
                                          # "per_au": once more per listed AU it is positive for
    val_fraction: float = 0.15            # share of training subjects held out for early stopping
    val_max_frames: int | None = None     # evenly spaced subset of the validation frames (CPU demos)
    landmark_origin: int = 1              # landmark files' first pixel: 1 = the datasets' MATLAB
                                          # files (subtract 1, as JAA-Net); 0 = read as is
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
    results_dir: str | None = None        # None: <cache_root()>/runs/<profile or "default">, outside
                                          # the repository (checkpoints are large)
    device: str | None = None             # None: CUDA, then MPS, then CPU
    amp: str = "auto"                     # "auto" (bf16 where supported) | "bf16" | "fp16" | "off"
    channels_last: bool = True            # CUDA only
    num_workers: int = 0
    eval_batch_size: int | None = None
    progress: bool = True
    force: bool = False                   # retrain even if this config already finished

    # -- construction --------------------------------------------------------------------
    #: Fields with a fixed set of values.
    _CHOICES = {"task": ("occurrence", "intensity"), "model": ("renet", "resnet18"),
                "relation_mode": ("fixed", "learnable", "none"), "strategy": ("one", "all"),
                "lr_schedule": ("constant", "cosine"), "data": ("synthetic", "real"),
                "intensity_rule": tuple(metrics.INTENSITY_RULES), "amp": ("auto", "bf16", "fp16", "off"),
                "dataset": tuple(ROOT_ENV), "head": tuple(HEADS), "duplicate_rule": ("frame", "per_au"),
                "landmark_origin": (0, 1)}
    #: Numeric ranges: field -> (test, what is expected). None (where allowed) is not tested.
    _LIMITS = {
        "epochs": (lambda v: v >= 1, "an integer >= 1 (fewer would 'finish' an untrained model)"),
        "batch_size": (lambda v: v >= 1, "an integer >= 1"),
        "patience": (lambda v: v >= 1, "an integer >= 1 (epochs without a better validation score)"),
        "steps_per_epoch": (lambda v: v >= 1, "null (whole epochs) or an integer >= 1"),
        "val_max_frames": (lambda v: v >= 1, "null (every validation frame) or an integer >= 1"),
        "eval_batch_size": (lambda v: v >= 1, "null (batch_size) or an integer >= 1"),
        "image_size": (lambda v: v >= 8, "an integer >= 8 (pixels; the paper: 224)"),
        "seed": (lambda v: v >= 0, "an integer >= 0"),
        "synth_seed": (lambda v: v >= 0, "an integer >= 0"),
        "save_features": (lambda v: v >= 0, "an integer >= 0 (0: no features kept)"),
        "bn_refresh_batches": (lambda v: v >= 0, "an integer >= 0 (0: plain BN)"),
        "num_workers": (lambda v: v >= 0, "an integer >= 0"),
        "lr": (lambda v: np.isfinite(v) and v > 0, "a number > 0, e.g. 1e-4"),
        "weight_decay": (lambda v: np.isfinite(v) and v >= 0, "a number >= 0"),
        "threshold": (lambda v: 0 < v < 1, "a number with 0 < threshold < 1, e.g. 0.5"),
        "val_fraction": (lambda v: 0 <= v < 1, "a number with 0 <= val_fraction < 1"),
        "bn_momentum": (lambda v: 0 < v <= 1, "a number with 0 < bn_momentum <= 1"),
    }

    def __post_init__(self) -> None:
        self.validated()   # a config that exists is typed and checked, before any data is prepared

    @classmethod
    def check_keys(cls, values: dict[str, Any], where: str = "") -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}{where}; valid keys: {sorted(names)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ExperimentConfig":
        """Build from a dict (papermill parameters, YAML); unknown keys are an error."""
        cls.check_keys(values)
        return cls(**values)

    @staticmethod
    def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
        """The mapping in a YAML config file, as PyYAML reads it (values are coerced on construction)."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError(f"config {path} must be a YAML mapping of ExperimentConfig fields")
        return values

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ExperimentConfig":
        try:
            return cls.from_dict(cls.read_yaml(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @staticmethod
    def configured_root(dataset: str, given: str | os.PathLike | None = None) -> str | None:
        """The root of a real dataset: ``given``, else ``$RENET_<DATASET>`` (:data:`ROOT_ENV`), else
        None (its SynthAU twin). The one place where the dataset variables are read."""
        if dataset not in ROOT_ENV:
            raise ValueError(f"config dataset={dataset!r}; expected one of {tuple(ROOT_ENV)}")
        if given:
            return str(given)
        return os.environ.get(ROOT_ENV[dataset]) or None

    @classmethod
    def build(cls, profile: str | None = None, yaml: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None, **overrides) -> "ExperimentConfig":
        """The one config builder (CLI, notebooks, tests). Later layers win:

        1. the defaults of this class;
        2. the profile's values (:func:`renet_core.profiles.get_profile`): ``profile``, or when it
           is None the ``profile`` named in ``overrides``, else in the YAML file;
        3. the YAML file ``yaml`` (its keys are fields; unknown keys are an error);
        4. ``overrides`` (field=value); a None value is ignored, like an unset papermill parameter.

        Then the data, decided one way for everyone: an explicit root (``root``, else a ``root``
        override, else the YAML's) -> that copy, ``data="real"``; else an explicit
        ``data="synthetic"`` (override or YAML) -> the SynthAU twin; else ``$RENET_<DATASET>`` when
        set -> that copy; else the SynthAU twin, with one printed line when real data was asked for
        by the profile. An explicit ``data="real"`` with no root anywhere is an error. Every value
        is then typed and checked (:meth:`validated`) before anything is prepared.
        """
        from .data.index import DATASETS
        from .profiles import get_profile

        loaded = cls.read_yaml(yaml) if yaml is not None else {}
        cls.check_keys(loaded, f" in {yaml}")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        cls.check_keys(overrides)
        name = profile or overrides.get("profile") or loaded.get("profile")
        values: dict[str, Any] = get_profile(name) if name else {}
        values.update(loaded)
        values.update(overrides)

        explicit_root = root if root is not None else overrides.get("root", loaded.get("root"))
        explicit_data = overrides.get("data", loaded.get("data"))
        dataset = values.get("dataset", cls.dataset)
        if explicit_data not in (None, "synthetic", "real"):
            raise ValueError(f"config data={explicit_data!r}; expected one of {cls._CHOICES['data']}")
        if explicit_root is not None:
            if explicit_data == "synthetic":
                raise ValueError(f"config root={str(explicit_root)!r} with data='synthetic': a root names a "
                                 "dataset copy on disk; drop root for the SynthAU twin, or drop data='synthetic'")
            values.update(root=cls.configured_root(dataset, explicit_root), data="real")
        elif explicit_data == "synthetic":
            values.update(root=None, data="synthetic")
        else:
            configured = cls.configured_root(dataset)
            var, label = ROOT_ENV[dataset], DATASETS[dataset]
            if configured:
                values.update(root=configured, data="real")
            elif explicit_data == "real":
                raise ValueError(f"config data='real' for {label} needs its root: pass root=... (CLI: --root) "
                                 f"or set ${var}; or data='synthetic' for its SynthAU twin")
            else:
                if values.get("data") == "real":
                    print(f"{label}: no dataset root (set ${var} or pass root=...); profile {name!r} asked for "
                          "real data, using its SynthAU twin. These results are NOT a reproduction of the paper.",
                          flush=True)
                values.update(root=None, data="synthetic")
        return cls.from_dict(values)

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes).validated()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def labelled_aus(dataset: str, task: str) -> list[int]:
        """The AUs the dataset's label files carry for ``task`` (``renet_core.data.labels``): what
        ``aus`` may name. ``duplicate_aus`` may name any of the dataset's occurrence AUs."""
        from .data import labels

        if task == "intensity":
            return list(labels.INTENSITY_AUS[dataset])
        return list({"bp4d": labels.BP4D_AUS, "disfa": labels.DISFA_AUS,
                     "bp4dplus": labels.BP4DPLUS_AUS}[dataset])

    @staticmethod
    def _coerce(name: str, annotation: str, value: Any) -> Any:
        """``value`` as the field's annotated type: numbers from strings ("1e-4", "3"), as PyYAML
        and ``--set`` give them; an error names the field, the value and the type expected."""
        import numbers

        kinds = [k.strip() for k in str(annotation).split("|")]
        if value is None:
            if "None" in kinds:
                return None
            raise ValueError(f"config {name}=None; expected a value of type {annotation}")
        kind = next(k for k in kinds if k != "None")

        def number(v, integer: bool):
            if isinstance(v, bool):
                raise ValueError
            if isinstance(v, str):
                text = v.strip()
                try:
                    v = int(text)
                except ValueError:
                    v = float(text)
            if isinstance(v, numbers.Integral):
                return int(v) if integer else float(v)
            if isinstance(v, numbers.Real):
                if integer and not float(v).is_integer():
                    raise ValueError
                return int(v) if integer else float(v)
            raise ValueError

        try:
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("true", "yes", "on", "1"):
                    return True
                if text in ("false", "no", "off", "0"):
                    return False
                raise ValueError
            if kind in ("int", "float"):
                return number(value, kind == "int")
            if kind == "str":
                if isinstance(value, os.PathLike):
                    return os.fspath(value)
                if not isinstance(value, str):
                    raise ValueError
                return value
            if kind == "list[int]":
                if isinstance(value, str):
                    text = value.strip().strip("[]").strip()
                    value = [part for part in text.split(",") if part.strip()] if text else []
                if isinstance(value, np.ndarray):
                    value = value.tolist()
                if not isinstance(value, (list, tuple)):
                    raise ValueError
                items = [number(v, True) for v in value]
                if len(set(items)) != len(items):
                    raise ValueError
                return items
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            return value   # a type this method does not handle: left as given
        if kind == "float" and "str" in kinds and isinstance(value, str):
            return value   # e.g. au_lr_scale="C", checked by validated()
        expected = {"bool": "true or false", "int": "an integer", "float": "a number (such as 0.5 or 1e-4)",
                    "str": "text",
                    "list[int]": "a list of distinct AU numbers, e.g. [1, 2, 4] (a single AU: [12])"}[kind]
        if "None" in kinds:
            expected += " or null"
        raise ValueError(f"config {name}={value!r}; expected {expected}")

    def validated(self) -> "ExperimentConfig":
        """Type and check every field (run on construction, again by :meth:`replace`): numbers
        from strings, enumerations, ranges, AUs against the dataset's labelled AUs. A ValueError
        names the field, the value and what is expected."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, self._coerce(f.name, f.type, getattr(self, f.name)))
        for name, allowed in self._CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config {name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.fold not in (1, 2, 3):
            raise ValueError(f"config fold={self.fold!r}; expected 1, 2 or 3")
        for name, (ok, expected) in self._LIMITS.items():
            value = getattr(self, name)
            if value is not None and not ok(value):
                raise ValueError(f"config {name}={value!r}; expected {expected}")
        if self.au_lr_scale != "C" and not (isinstance(self.au_lr_scale, float) and self.au_lr_scale > 0):
            raise ValueError(f"config au_lr_scale={self.au_lr_scale!r}; expected a positive number or 'C' "
                             "(the number of trained AUs)")
        from .data.index import DATASETS
        from .synth.plans import SIZES

        if self.synth_size not in SIZES:
            raise ValueError(f"config synth_size={self.synth_size!r}; expected one of {SIZES}")
        label = DATASETS[self.dataset]
        labelled = self.labelled_aus(self.dataset, self.task)
        stray = [a for a in (self.aus or []) if a not in labelled]
        if stray:
            raise ValueError(f"config aus={self.aus}: {', '.join(f'AU{a}' for a in stray)} not labelled for "
                             f"{self.task} in {label}; expected AUs among {label}'s {labelled}")
        occurrence = self.labelled_aus(self.dataset, "occurrence")
        stray = [a for a in (self.duplicate_aus or []) if a not in occurrence]
        if stray:
            raise ValueError(f"config duplicate_aus={self.duplicate_aus}: {', '.join(f'AU{a}' for a in stray)} "
                             f"not labelled in {label}; expected AUs among {label}'s {occurrence}")
        aus = self.resolved_aus()
        stray = [a for a in self.holdout_aus if a not in aus]
        if stray:
            raise ValueError(f"config holdout_aus={self.holdout_aus}: {stray} are not among the run's AUs {aus}")
        if self.holdout_aus and self.model != "renet":
            raise ValueError("holdout_aus (unseen-AU transfer, Table 6) needs model='renet'")
        if self.results_dir is None:
            self.results_dir = str(self.cache_root() / "runs" / (self.profile or "default"))
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
        """The run identity: a hash of every setting that can change the results -- the data
        (:meth:`data_identity`) included, labels, paths and devices left out (``IDENTITY_EXCLUDED``).
        Computed once per config object (fields are not meant to change after construction)."""
        cached = self.__dict__.get("_identity")
        if cached is not None:
            return cached
        values = self.to_dict()
        values["au_lr_scale"] = self.lr_scale()   # "C" and its number are the same run
        values = {k: v for k, v in values.items() if k not in IDENTITY_EXCLUDED
                  and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
        values["aus"] = self.resolved_aus()
        values["data_identity"] = self.data_identity()
        if self.pretrained == "standin" and self.holdout_aus:   # its stand-in never saw them (pretrain.py)
            values["standin_without"] = sorted(int(a) for a in self.holdout_aus)
        text = json.dumps(values, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.__dict__["_identity"] = key
        return key

    def data_identity(self) -> str:
        """What the run's data is, for :meth:`config_hash`: the SynthAU twin by layout, size, seed
        and generator version; a dataset root by its resolved path and a fingerprint of its label
        and landmark files (:func:`data_fingerprint`: names, sizes, modification times)."""
        if not self.root and self.data == "synthetic":
            from .synth import GENERATOR_VERSION

            return f"synthau:{self.dataset}-{self.synth_size}-seed{self.synth_seed}-v{GENERATOR_VERSION}"
        root = dataset_root(self)   # the root given, or $RENET_<DATASET> (a clear error when unset)
        return f"{root.resolve()}:{data_fingerprint(root)}"

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
        root = ExperimentConfig.configured_root(cfg.dataset)
        if not root:
            raise ValueError(f"data='real' for {cfg.dataset} needs its root: pass root=... or set "
                             f"${ROOT_ENV[cfg.dataset]}")
        return Path(root)
    return synth_twin(cfg.dataset, cfg.synth_size, cfg.synth_seed, cfg.cache_root())


def synth_twin(layout: str, size: str, seed: int, cache: Path) -> Path:
    """The SynthAU copy of ``layout``, written once (atomically: a temp folder renamed)."""
    from .data.layout import SYNTH_MARKER
    from .synth import GENERATOR_VERSION

    # the generator version is in the name: new defaults never reuse stale images or crops
    root = cache / "synthau" / f"{layout}-{size}-seed{seed}-v{GENERATOR_VERSION}"
    if (root / SYNTH_MARKER).exists():
        return root
    from .synth import write_dataset

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        write_dataset(layout, tmp, size=size, seed=seed)
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
    from .data.dataset import resize_size

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


def load_splits(cfg: ExperimentConfig) -> Splits:
    """Prepare (align and cache) the dataset and cut it into train / validation / test."""
    from . import data

    root = dataset_root(cfg)
    # "-lm<origin>": one cache per landmark reading; caches named before it (0-based) unused
    cache = cfg.cache_root() / "prepared" / f"{cfg.dataset}-{_short_hash(str(root.resolve()))}-{crop_size(cfg.image_size)}-lm{cfg.landmark_origin}"
    index = data.prepare(cfg.dataset, root, cache, size=crop_size(cfg.image_size), progress=cfg.progress,
                         landmark_origin=cfg.landmark_origin)
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
                     duplicate_aus=cfg.duplicate_aus if train else None, duplicate_rule=cfg.duplicate_rule)


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


_FINGERPRINTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("renet_fingerprints", default=None)


@contextlib.contextmanager
def fingerprints_once():
    """Within this block (a decorator too) each dataset root is walked once by
    :func:`data_fingerprint`, however many configs name it: a table builds ~8 configs, the claims
    scoreboard ~70, and on a network copy of BP4D one walk can take seconds. Outside any such
    block, and at each new block, the files are looked at again, so a label file fixed between
    two ``reproduce`` calls changes the run identity. Nested blocks share the outer one."""
    if _FINGERPRINTS.get() is not None:
        yield
        return
    token = _FINGERPRINTS.set({})
    try:
        yield
    finally:
        _FINGERPRINTS.reset(token)


def data_fingerprint(root: str | os.PathLike) -> str:
    """A cheap fingerprint of a dataset copy: the relative path, size and modification time of
    every label and landmark file under ``root`` (``LABEL_SUFFIXES``; image and video files are
    listed but not read). Fixing a label file, or pointing at another copy, changes it. Inside
    :func:`fingerprints_once` a root is walked once."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset root {root} is not a folder; expected the dataset as distributed "
                         "(see README, 'Datasets')")
    memo, key = _FINGERPRINTS.get(), str(root.resolve())
    if memo is not None and key in memo:
        return memo[key]
    value = _walk_fingerprint(root)
    if memo is not None:
        memo[key] = value
    return value


def _walk_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(LABEL_SUFFIXES):
                path = Path(folder) / name
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


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
    if info.is_main:   # temp files of killed runs go; a bad best.pt/last.pt fails now, before any data work
        loop.check_checkpoints(run_dir)
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
    pred = loop.predict(model, loader, device, cfg, desc="test", features=cfg.save_features)
    per_metric = loop.score_predictions(pred, cfg)
    arrays = {"y_true": pred["y_true"], "scores": pred["scores"], "aus": np.array(cfg.resolved_aus()),
              "subject": np.asarray(splits.test["subject"].astype(str), dtype=str),
              "frame": np.asarray(splits.test["frame"].astype(str), dtype=str) if "frame" in splits.test else np.array([], dtype=str)}
    if cfg.task == "intensity":
        arrays["y_pred"] = metrics.decode_intensity(pred["scores"], cfg.intensity_rule)
    arrays.update({k: pred[k] for k in ("features", "features_index") if k in pred})
    store.save_predictions(key, **arrays)
    epochs = len(history) if history else None
    rows = result_rows(cfg, per_metric, source=splits.source, synthetic=splits.synthetic,
                       n_test=len(test_set), epochs_trained=epochs)
    store.add_rows(rows)
    store.mark_done(key, {"method": cfg.method_name(), "fold": cfg.fold, "finished": time.strftime(TIME_FORMAT),
                          "history": history or [], **{m: float(np.nanmean(v)) for m, v in per_metric.items()}})
    return rows


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
    """Re-evaluate a trained run on its test fold from ``checkpoint`` (default: its ``best.pt``).

    The rows are filed under this config's run and mark it done, so a checkpoint whose model
    (kind, task, AUs, RE-Net's relation mode and head) differs from the config is refused before
    any data is prepared, naming each difference."""
    from .device import pick_device
    from .model import load_checkpoint

    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    store = ResultsStore(cfg.results_dir)
    own = store.run_dir(cfg.config_hash()) / "best.pt"
    path = Path(checkpoint) if checkpoint else own
    if not path.is_file():
        hint = (f"train this config first (python -m renet_core train with the same settings) or pass "
                f"--checkpoint" if path == own else "check the path")
        raise FileNotFoundError(f"checkpoint not found: {path}; {hint}")
    device = pick_device(cfg.device)
    expect = {"model": cfg.model, "task": cfg.task, "aus": cfg.resolved_aus(),
              "relation_mode": cfg.relation_mode, "head": cfg.head}
    try:
        model, _ = load_checkpoint(path, aus=cfg.resolved_aus(), map_location="cpu", expect=expect)
    except ValueError as exc:
        if path != own and "config says" in str(exc):
            raise ValueError(f"{exc}: {own}") from None
        raise
    model.to(device)
    return evaluate_model(model, cfg, splits or load_splits(cfg), store, device, dataset_factory or make_dataset)


def cross_validate(config: ExperimentConfig | dict, folds: Sequence[int] = (1, 2, 3), **kwargs) -> pd.DataFrame:
    """Run the subject-exclusive folds and return all their rows (section 4.1)."""
    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    results = [run(cfg.replace(fold=int(f)), **kwargs) for f in folds]
    return pd.concat([r.rows for r in results], ignore_index=True)
