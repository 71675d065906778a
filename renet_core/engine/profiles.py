"""Run profiles, as data: everything a profile decides, in one place per profile.

Each profile is one dict with these keys (read by :func:`profile_setting`):

* ``config``: :class:`renet_core.engine.config.ExperimentConfig` fields of every run
  (``get_profile(name)`` returns a copy of them, with ``synth_size``);
* ``table_budgets``: ``{(dataset, task): fields}`` for the runs behind the paper's tables where
  the profile's own budget leaves RE-Net untrained (a user's ``epochs`` / ``steps_per_epoch`` win);
* ``parity_steps``: ``{(dataset, task): steps}``, the one-AU steps RE-Net needs to come within 2
  validation points of ResNet-18 (measured by notebook 09, validation only); information only
  since issue 33 (the scoreboard's mark is the converged budget's). ``"*"``: any other table;
* ``per_run_budgets``: whether the study trains each run at its own converged budget, measured
  by issue 33's rule and recorded in ``renet_core/resources/converged_budgets.csv``
  (:mod:`renet_core.study.budgets`); off (every profile until its budgets are measured), the
  ``table_budgets`` stay and so do the run identities;
* ``folds``: ``{table: folds}`` run when a notebook gives none, ``"*"`` for any other table;
* ``efficiency``: the section 4.7 measurement (input side, batches, repeats, seconds each);
* ``dynamics``: notebook 09's default curves (steps, evaluation interval, variants);
* ``budgets_from``: the profile whose measured budgets judge this one's runs (None: its own);
  the preview's are the demo's (same data, same variants, only shorter runs);
* ``preview``: a quick look, never the study: every table and the scoreboard say its verdicts are
  not converged and point to ``./run_all.sh`` (:mod:`renet_core.study.preview`), and every claim
  is marked not converged;
* ``output_subdir``: where ``run_all`` writes by default, under ``results/`` and ``figures/``
  (None: those folders themselves, the committed study).

The profiles:

* ``smoke``: every run in seconds (tiny images, a handful of steps): CI and tests. Its numbers
  mean nothing beyond "the pipeline runs". Eq. 5's ``"abs"`` denominator, because its few dozen
  training frames give PCC rows whose signed sum can be <= 0 (docs/reproduction-notes.md).
* ``demo``: the CPU demo study on SynthAU: 48 px images, batch 32, both models started from the
  offline stand-in backbone (``pretrained="standin"``, :mod:`renet_core.engine.standin`). The
  runs behind every table train 1250 one-AU steps (``table_budgets``: 5 epochs x 250; the
  parity point of notebook 09's curves) on three folds, or each its measured converged budget
  once ``per_run_budgets`` is on (issue 33). Synthetic data: never a reproduction of the paper's
  numbers.
* ``preview``: the demo's settings and data (the same SynthAU draw, prepared crops and stand-in
  backbones in a cache) at 100 one-AU steps a run (2 epochs x 50) on the demo's 3 folds, with a
  shorter section 4.7 timing and shorter notebook 09 curves, so that the whole study
  (``./run_all.sh --profile preview``: 51 runs, 3 stand-in backbones, every default notebook)
  fits 45 minutes on 2 cores from a fresh cache (an estimate from the demo's recorded per-step
  and per-run costs, about 35-40 min; the measured time is the README's). Its runs are far below
  the demo's converged budgets (``budgets_from``), so its scoreboard marks every claim not
  converged and every table says so. It writes to ``results/preview/`` and ``figures/preview/``,
  never over the committed study.
* ``paper``: section 4.3: 224 px crops from 256 px aligned faces, Adam lr 1e-4, batch 100, early
  stopping, torchvision's ImageNet ResNet-18 (the paper is silent; the field's public code does
  this; ``pretrained=None`` trains from scratch); real data from ``$RENET_BP4D`` etc. Its loader
  workers come from the machine (:func:`renet_core.base.device.loader_workers`: the cores less
  one, at most 8), so that decoding keeps up with a GPU; they do not change the numbers and are
  not part of the run identity (augmentation is drawn per item).

Smoke and demo, not the paper: BN statistics re-estimated on a few training batches after each
epoch (``bn_refresh_batches``), lr 1e-3 with a cosine decay, and RE-Net's AU-specific parameters
at C times that rate (``au_lr_scale="C"``): in a few hundred steps with one AU per batch, each
AU's gamma_c, beta_c and statistics are trained in ~1/C of the steps (docs/training-dynamics.md).
"""

from __future__ import annotations

import copy
from typing import Any

from renet_core.base.device import loader_workers

_DYNAMICS_VARIANTS = ("resnet18", "renet", "renet-lrC")
_DEMO_CONFIG: dict[str, Any] = {
    "profile": "demo", "data": "synthetic", "synth_size": "demo", "image_size": 48,
    "batch_size": 32, "lr": 1e-3, "epochs": 4, "steps_per_epoch": 25, "patience": 2,
    "val_fraction": 0.15, "val_max_frames": 120, "save_features": 300, "bn_refresh_batches": 4,
    "au_lr_scale": "C", "lr_schedule": "cosine", "pretrained": "standin",
}
#: The preview's training: one-AU steps per run, in this many epochs (validation passes).
PREVIEW_EPOCHS, PREVIEW_STEPS_PER_EPOCH = 2, 50

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "config": {
            "profile": "smoke", "data": "synthetic", "synth_size": "smoke", "image_size": 32,
            "batch_size": 16, "lr": 1e-3, "epochs": 2, "steps_per_epoch": 4, "patience": 2,
            "val_fraction": 0.15, "save_features": 32, "denominator": "abs", "bn_refresh_batches": 2,
            "au_lr_scale": "C", "lr_schedule": "cosine",
        },
        "table_budgets": {},
        "parity_steps": {},
        "per_run_budgets": False,
        "folds": {"*": (1, 2, 3)},
        "efficiency": {"size": 32, "batches": [2], "repeats": 2, "budget": 2.0},
        "dynamics": {"steps": 8, "eval_every": 4, "variants": _DYNAMICS_VARIANTS},
        "budgets_from": None,
        "preview": False,
        "output_subdir": None,
    },
    "demo": {
        "config": _DEMO_CONFIG,
        "table_budgets": {"*": {"epochs": 5, "steps_per_epoch": 250}},
        "parity_steps": {("bp4d", "occurrence"): 1250},
        "per_run_budgets": False,
        "folds": {"*": (1, 2, 3)},
        "efficiency": {"size": 224, "batches": [1, 16], "repeats": 3, "budget": 15.0},
        "dynamics": {"steps": 150, "eval_every": 50, "variants": _DYNAMICS_VARIANTS},
        "budgets_from": None,
        "preview": False,
        "output_subdir": None,
    },
    "preview": {
        "config": dict(_DEMO_CONFIG, profile="preview", epochs=PREVIEW_EPOCHS,
                       steps_per_epoch=PREVIEW_STEPS_PER_EPOCH),
        "table_budgets": {},
        "parity_steps": {("bp4d", "occurrence"): 1250},   # the demo's (same data): information only
        "per_run_budgets": False,
        "folds": {"*": (1, 2, 3)},
        "efficiency": {"size": 224, "batches": [1, 8], "repeats": 2, "budget": 5.0},
        "dynamics": {"steps": 60, "eval_every": 20, "variants": _DYNAMICS_VARIANTS},
        "budgets_from": "demo",
        "preview": True,
        "output_subdir": "preview",
    },
    "paper": {
        "config": {
            "profile": "paper", "data": "real", "image_size": 224, "batch_size": 100, "lr": 1e-4,
            "epochs": 20, "steps_per_epoch": None, "patience": 3, "val_fraction": 0.15,
            "save_features": 2000, "pretrained": "imagenet", "num_workers": loader_workers(),
        },
        "table_budgets": {},
        "parity_steps": {},
        "per_run_budgets": False,
        "folds": {"*": (1, 2, 3)},
        "efficiency": {"size": 224, "batches": [1, 100], "repeats": 10, "budget": 30.0},
        "dynamics": {"steps": 6000, "eval_every": 500, "variants": "all"},
        "budgets_from": None,
        "preview": False,
        "output_subdir": None,
    },
}
PROFILE_NAMES = tuple(PROFILES)


def _profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {list(PROFILE_NAMES)}")
    return PROFILES[name]


def get_profile(name: str) -> dict:
    """The config fields of profile ``name`` ("smoke", "demo", "preview" or "paper"); a fresh copy."""
    return copy.deepcopy(_profile(name)["config"])


def profile_setting(name: str, key: str, item: Any = None, default: Any = None) -> Any:
    """One decision of profile ``name``: ``PROFILES[name][key]`` (a copy), or with ``item`` the
    entry ``item`` of that mapping, falling back to its ``"*"`` entry, then to ``default``."""
    value = _profile(name)[key]
    if item is not None:
        value = value.get(item, value.get("*", default))
    return copy.deepcopy(value)
