"""The run's configuration: :class:`ExperimentConfig`, everything one run depends on, typed and
checked when it is made; :meth:`ExperimentConfig.build` is the one builder (CLI, notebooks,
tests): defaults < profile (:mod:`renet_core.engine.profiles`) < YAML < overrides."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from renet_core.base.device import available_cores
from renet_core.base.io import check_folder
from renet_core.base.metrics import INTENSITY_RULES
from renet_core.data.index import DATASETS
from renet_core.data.labels import BP4D_AUS, BP4DPLUS_AUS, DISFA_AUS, INTENSITY_AUS, PAPER_AUS
from renet_core.engine import identity
from renet_core.engine.fields import coerce
from renet_core.engine.identity import ROOT_ENV
from renet_core.engine.profiles import get_profile
from renet_core.model import HEADS
from renet_core.synth.defaults import SETTINGS
from renet_core.synth.plans import SIZES

#: The AUs each dataset's occurrence files carry (what ``aus`` and ``duplicate_aus`` may name).
OCCURRENCE_AUS = {"bp4d": BP4D_AUS, "disfa": DISFA_AUS, "bp4dplus": BP4DPLUS_AUS}
#: Fields with a fixed set of values.
CHOICES = {"task": ("occurrence", "intensity"), "model": ("renet", "resnet18"),
           "relation_mode": ("fixed", "learnable", "none"), "strategy": ("one", "all"),
           "lr_schedule": ("constant", "cosine"), "data": ("synthetic", "real"),
           "intensity_rule": tuple(INTENSITY_RULES), "amp": ("auto", "bf16", "fp16", "off"),
           "dataset": tuple(ROOT_ENV), "head": tuple(HEADS), "duplicate_rule": ("frame", "per_au"),
           "landmark_origin": (0, 1), "fold": (1, 2, 3), "synth_size": tuple(SIZES),
           "synth_setting": tuple(SETTINGS), "adam_impl": ("default", "foreach", "fused")}
#: Numeric ranges: field -> (test, what is expected). None (where allowed) is not tested.
LIMITS = {
    "epochs": (lambda v: v >= 1, "an integer >= 1 (fewer would 'finish' an untrained model)"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "patience": (lambda v: v >= 1, "an integer >= 1 (epochs without a better validation score)"),
    "steps_per_epoch": (lambda v: v >= 1, "null (whole epochs) or an integer >= 1"),
    "val_max_frames": (lambda v: v >= 1, "null (every validation frame) or an integer >= 1"),
    "eval_batch_size": (lambda v: v >= 1, "null (batch_size) or an integer >= 1"),
    "image_size": (lambda v: v >= 8, "an integer >= 8 (pixels; the paper: 224)"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "synth_seed": (lambda v: v >= 0, "an integer >= 0"),
    "synth_coupling": (lambda v: np.isfinite(v) and v >= 0, "a number >= 0 (0: AUs independent, 1: default)"),
    "save_features": (lambda v: v >= 0, "an integer >= 0 (0: no features kept)"),
    "bn_refresh_batches": (lambda v: v >= 0, "an integer >= 0 (0: plain BN)"),
    "num_workers": (lambda v: v >= 0, "an integer >= 0"),
    "threads": (lambda v: v >= 0, "an integer >= 0 (torch threads on the CPU; 0: every core)"),
    "checkpoint_seconds": (lambda v: np.isfinite(v) and v >= 0,
                           "a number >= 0 (seconds between mid-epoch checkpoints; 0: epoch ends only)"),
    "lr": (lambda v: np.isfinite(v) and v > 0, "a number > 0, e.g. 1e-4"),
    "weight_decay": (lambda v: np.isfinite(v) and v >= 0, "a number >= 0"),
    "threshold": (lambda v: 0 < v < 1, "a number with 0 < threshold < 1, e.g. 0.5"),
    "val_fraction": (lambda v: 0 <= v < 1, "a number with 0 <= val_fraction < 1"),
    "bn_momentum": (lambda v: 0 < v <= 1, "a number with 0 < bn_momentum <= 1"),
    "au_lr_scale": (lambda v: v == "C" or (isinstance(v, float) and v > 0),
                    "a positive number or 'C' (the number of trained AUs)"),
}


# ---------------------------------------------------------------------------------- config

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
    synth_coupling: float = 1.0           # SynthAU co-occurrence: 0 AUs independent, 1 default, > 1 stronger
    synth_setting: str = "default"        # SynthAU named setting: "default" | "control" (synth.SETTINGS)
    cache_dir: str | None = None          # default $RENET_CACHE or ~/.cache/renet_core
    image_size: int = 224                 # crop fed to the network (paper: 224 from 256)
    duplicate_aus: list[int] | None = None  # Table 8 augmentation: data.labels.RARE_AUS
    duplicate_rule: str = "frame"         # "frame": a frame positive for a listed AU once more; "per_au": per AU
    val_fraction: float = 0.15            # share of training subjects held out for early stopping
    val_max_frames: int | None = None     # evenly spaced subset of the validation frames (CPU demos)
    landmark_origin: int = 1              # landmark files' first pixel: 1 = MATLAB's (subtract 1, as JAA-Net)
    # model
    model: str = "renet"                  # "renet" | "resnet18"
    relation_mode: str = "fixed"          # "fixed" | "learnable" | "none"
    denominator: str | None = None        # Eq. 5 denominator, see renet_core.model.relation
    pretrained: str | None = None         # resnet18 state_dict path, "imagenet", or "standin" (engine.standin)
    holdout_aus: list[int] = field(default_factory=list)  # Table 6: labels never trained on
    head: str = "shared"                  # RE-Net output layer: "shared" (section 3.1) | "per_au"
    bn_momentum: float = 0.1              # RE-Net per-AU running statistics (PyTorch's default)
    bn_warm_start: bool = True            # exact average of an AU's first statistics updates
    # training
    strategy: str = "one"                 # "one" random AU per batch (paper) | "all"
    lr: float = 1e-4
    au_lr_scale: float | str = 1.0        # lr multiplier of RE-Net's AU-specific gamma_k, beta_k (and
                                          # per-AU head); 1 = the paper; "C" = trained AUs (lr_scale())
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
    threads: int = 2                      # CPU torch threads, in the identity (they order the sums); 0: every core
    eval_batch_size: int | None = None
    adam_impl: str = "default"            # Adam's kernels: "default" (per tensor) | "foreach" | "fused" (speed)
    checkpoint_seconds: float = 300.0     # a mid-epoch checkpoint (part.pt) this often; 0: epoch ends only
    progress: bool = True
    force: bool = False                   # retrain even if this config already finished

    def __post_init__(self) -> None:
        self.validated()   # a config that exists is typed and checked, before any data is prepared

    def validated(self) -> "ExperimentConfig":
        """Type and check every field (on construction, again by :meth:`replace`): the types of
        :data:`renet_core.engine.fields.TYPES`, :data:`CHOICES`, :data:`LIMITS`, and AUs against
        the dataset's labelled AUs. A ValueError names the field, the value and what is expected."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce(f.name, f.type, getattr(self, f.name)))
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config {name}={getattr(self, name)!r}; expected one of {allowed}")
        for name, (ok, expected) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not ok(value):
                raise ValueError(f"config {name}={value!r}; expected {expected}")
        self._check_aus()
        if self.results_dir is None:
            self.results_dir = str(self.cache_root() / "runs" / (self.profile or "default"))
        return self

    def _check_aus(self) -> None:
        label = DATASETS[self.dataset]
        for name, values, allowed in (("aus", self.aus, self.labelled_aus(self.dataset, self.task)),
                                      ("duplicate_aus", self.duplicate_aus,
                                       self.labelled_aus(self.dataset, "occurrence"))):
            stray = [a for a in (values or []) if a not in allowed]
            if stray:
                raise ValueError(f"config {name}={values}: {', '.join(f'AU{a}' for a in stray)} not labelled "
                                 f"in {label}; expected AUs among {label}'s {allowed}")
        aus = self.resolved_aus()
        stray = [a for a in self.holdout_aus if a not in aus]
        if stray:
            raise ValueError(f"config holdout_aus={self.holdout_aus}: {stray} are not among the run's AUs {aus}")
        if self.holdout_aus and self.model != "renet":
            raise ValueError("holdout_aus (unseen-AU transfer, Table 6) needs model='renet'")

    # -- building ------------------------------------------------------------------------
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

    configured_root = staticmethod(identity.configured_root)

    @classmethod
    def build(cls, profile: str | None = None, yaml: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None, **overrides) -> "ExperimentConfig":
        """The one config builder (CLI, notebooks, tests). Later layers win:

        1. the defaults of this class;
        2. the profile's values (:func:`renet_core.engine.profiles.get_profile`): ``profile``, or
           when it is None the ``profile`` named in ``overrides``, else in the YAML file;
        3. the YAML file ``yaml`` (its keys are fields; unknown keys are an error);
        4. ``overrides`` (field=value); a None value is ignored, like an unset papermill parameter.

        Then the data, decided one way for everyone (:meth:`_data_choice`), and every value typed
        and checked (:meth:`validated`) before anything is prepared.
        """
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
        values.update(cls._data_choice(values, explicit_root, explicit_data, name))
        return cls.from_dict(values)

    @classmethod
    def _data_choice(cls, values: dict, explicit_root, explicit_data, profile) -> dict:
        """``root`` and ``data``: an explicit root -> that copy, ``data="real"``; else an explicit
        ``data="synthetic"`` -> the SynthAU twin; else ``$RENET_<DATASET>`` when set; else the
        SynthAU twin, with one printed line when the profile asked for real data. An explicit
        ``data="real"`` with no root anywhere is an error."""
        dataset = values.get("dataset", cls.dataset)
        if explicit_data not in (None, "synthetic", "real"):
            raise ValueError(f"config data={explicit_data!r}; expected one of {CHOICES['data']}")
        if explicit_root is not None:
            if explicit_data == "synthetic":
                raise ValueError(f"config root={str(explicit_root)!r} with data='synthetic': a root names a "
                                 "dataset copy on disk; drop root for the SynthAU twin, or drop data='synthetic'")
            return {"root": identity.configured_root(dataset, explicit_root), "data": "real"}
        if explicit_data == "synthetic":
            return {"root": None, "data": "synthetic"}
        configured = identity.configured_root(dataset)
        var, label = ROOT_ENV[dataset], DATASETS[dataset]
        if configured:
            return {"root": configured, "data": "real"}
        if explicit_data == "real":
            raise ValueError(f"config data='real' for {label} needs its root: set the config field root "
                             f"or ${var}; or data='synthetic' for its SynthAU twin")
        if values.get("data") == "real":
            print(f"{label}: no dataset root (set ${var} or pass root=...); profile {profile!r} asked for "
                  "real data, using its SynthAU twin. These results are NOT a reproduction of the paper.",
                  flush=True)
        return {"root": None, "data": "synthetic"}

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes).validated()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- derived values ------------------------------------------------------------------
    @staticmethod
    def labelled_aus(dataset: str, task: str) -> list[int]:
        """The AUs the dataset's label files carry for ``task`` (``renet_core.data.labels``): what
        ``aus`` may name. ``duplicate_aus`` may name any of the dataset's occurrence AUs."""
        if task == "intensity":
            return list(INTENSITY_AUS[dataset])
        return list(OCCURRENCE_AUS[dataset])

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
        """The run identity (:func:`renet_core.engine.identity.run_identity`), computed once per
        config object (fields are not meant to change after construction)."""
        cached = self.__dict__.get("_identity")
        if cached is None:
            cached = self.__dict__["_identity"] = identity.run_identity(self)
        return cached

    def resolved_threads(self) -> int:
        """The run's torch threads: ``threads``, for 0 every core this process may use."""
        return int(self.threads) or available_cores()

    def data_identity(self) -> str:
        """What the run's data is (:func:`renet_core.engine.identity.data_identity`)."""
        return identity.data_identity(self)

    def cache_root(self) -> Path:
        """``cache_dir``, else ``$RENET_CACHE``, else ``~/.cache/renet_core``: an error naming the
        setting when it is (or lies below) a file."""
        if self.cache_dir:
            return check_folder(self.cache_dir, "config cache_dir")
        if os.environ.get("RENET_CACHE"):
            return check_folder(os.environ["RENET_CACHE"], "the cache folder $RENET_CACHE")
        return check_folder(Path.home() / ".cache" / "renet_core", "the default cache folder")
