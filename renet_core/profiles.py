"""Run profiles: how big a run is, from a CI smoke test to the paper's protocol.

``get_profile(name)`` returns :class:`renet_core.experiment.ExperimentConfig` overrides, the
SynthAU size included (``synth_size``)::

    cfg = ExperimentConfig(**get_profile("demo"), dataset="bp4d", model="renet", fold=1)

* ``"smoke"``: every run in seconds (tiny images, a handful of steps) -- CI and tests. Numbers
  are meaningless beyond "the pipeline runs".
* ``"demo"``: the whole CPU demo study on SynthAU: 48 px images, 4 epochs of 25 batches of 32
  (100 steps), both models started from the offline stand-in backbone (``pretrained="standin"``,
  ``renet_core.pretrain``: a ResNet-18 trained once for 300 steps on a SynthAU pretraining twin
  that no table uses), Table 1 on all three folds and every other table on fold 1
  (``renet_core.study.DEFAULT_FOLDS``; each table's data source says how many folds). The
  runs that carry the paper's comparisons (BP4D detection: Tables 1, 6, 7, 8, section 3.4, Fig. 3)
  train for 1250 steps instead (``renet_core.study.COMPARISON_BUDGET``): 100 steps leave RE-Net
  (one AU per batch) untrained; notebook 09 and docs/reproduction-notes.md give the steps it
  needs. Its measured total is in ``results/README.md``. Synthetic data: these results are never
  a reproduction of the paper's numbers.
* ``"paper"``: section 4.3 -- 224 px crops from 256 px aligned faces, Adam lr 1e-4, batch 100,
  early stopping; real data from ``$RENET_BP4D``, ``$RENET_DISFA``, ``$RENET_BP4DPLUS``.

Smoke and demo re-estimate BN statistics on a few training batches after each epoch
(``bn_refresh_batches``): in a hundred steps with one AU per batch, each AU's running statistics
lag its weights (docs/reproduction-notes.md). The paper profile keeps plain BN.
Smoke uses Eq. 5's ``"abs"`` denominator: its few dozen training frames give PCC rows whose signed
sum can be <= 0, which the faithful ``"signed"`` form refuses (docs/reproduction-notes.md).
Smoke and demo raise the learning rate to 1e-3: they train for a few hundred steps at most,
where 1e-4 barely moves the weights. They also train RE-Net's AU-specific parameters at C times
that rate (``au_lr_scale="C"``) and decay it along a cosine (``lr_schedule="cosine"``, both
models): one AU per batch gives each AU's gamma_c, beta_c ~1/C of the steps, and at a constant
high rate the last few drawn AUs decide the weights (measured in notebook 09,
docs/reproduction-notes.md "Training dynamics"). The paper profile keeps section 4.3 (one lr
for all parameters, no schedule) and starts from torchvision's ImageNet ResNet-18
(``pretrained="imagenet"``, downloaded on first use; the paper is silent, the field's public
code does this; ``--set pretrained=null`` trains from scratch).
"""

from __future__ import annotations

import copy

PROFILES: dict[str, dict] = {
    "smoke": {
        "profile": "smoke", "data": "synthetic", "synth_size": "smoke", "image_size": 32,
        "batch_size": 16, "lr": 1e-3, "epochs": 2, "steps_per_epoch": 4, "patience": 2,
        "val_fraction": 0.15, "save_features": 32, "denominator": "abs", "bn_refresh_batches": 2,
        "au_lr_scale": "C", "lr_schedule": "cosine",
    },
    "demo": {
        "profile": "demo", "data": "synthetic", "synth_size": "demo", "image_size": 48,
        "batch_size": 32, "lr": 1e-3, "epochs": 4, "steps_per_epoch": 25, "patience": 2,
        "val_fraction": 0.15, "val_max_frames": 120, "save_features": 300, "bn_refresh_batches": 4,
        "au_lr_scale": "C", "lr_schedule": "cosine", "pretrained": "standin",
    },
    "paper": {
        "profile": "paper", "data": "real", "image_size": 224, "batch_size": 100, "lr": 1e-4,
        "epochs": 20, "steps_per_epoch": None, "patience": 3, "val_fraction": 0.15,
        "save_features": 2000, "pretrained": "imagenet",
    },
}


def get_profile(name: str) -> dict:
    """Config overrides of profile ``name`` ("smoke", "demo" or "paper"); a fresh copy."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return copy.deepcopy(PROFILES[name])
