"""An offline stand-in for ImageNet initialisation (``ExperimentConfig(pretrained="standin")``).

The field's public AU code starts ResNet-18 from torchvision's ImageNet weights; the paper does
not say (docs/reproduction-notes.md, "Initialisation"). Tests and the offline demo cannot
download them, so the demo can start both models from a backbone this project trains itself:
a plain ResNet-18 trained for AU occurrence on a *pretraining twin* -- SynthAU in the BP4D layout
drawn with another seed (``synth_seed + PRETRAIN_SEED_OFFSET``: other synthetic subjects and
label draws; no frame of any target dataset is seen) -- saved as a torchvision ``resnet18``
state_dict without ``fc``. One backbone serves every dataset, so the demo trains it once. It is a stand-in, not ImageNet: it has seen
faces of the same generator, so it is a stronger start for SynthAU than ImageNet would be for
real faces, and it is used for ResNet-18 and RE-Net alike.

ImageNet knows no AU. So the stand-in of a run that holds AUs out (Table 6, ``holdout_aus``) is
trained without those AUs' labels: otherwise the backbone would have been taught the very AU the
table says was never seen, and the unseen-AU F1 would be an upper bound, not a transfer result.
For the same reason the pretraining twin has the target's SynthAU coupling and setting (premise
experiment): the positive control's faint AUs are faint in it too, never taught at full strength.

The backbone is trained once per (source twin, image size, steps, batch, lr, seed) and cached
under ``<cache>/pretrained/``; it is itself an ordinary run (:func:`renet_core.engine.execute.execute`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from renet_core.base.io import torch_save_atomic
from renet_core.engine.config import ExperimentConfig
from renet_core.engine.execute import execute

STANDIN = "standin"
#: The pretraining twin: SynthAU in this layout, drawn with the target's seed + this offset, so
#: it never holds a frame of a target twin (those use the configured ``synth_seed``).
SOURCE_LAYOUT = "bp4d"
PRETRAIN_SEED_OFFSET = 1000
#: Training budget of the stand-in (steps of ``batch_size``), shared by every run that uses it.
STANDIN_STEPS = 300


def standin_config(cfg, steps: int = STANDIN_STEPS):
    """The config that trains the stand-in backbone for runs like ``cfg``: the pretraining twin's
    AUs, less ``cfg.holdout_aus`` (a held-out AU's labels are never trained on, Table 6)."""
    every = min(200, steps)
    held_out = set(cfg.holdout_aus or [])
    aus = [a for a in ExperimentConfig(dataset=SOURCE_LAYOUT).resolved_aus() if a not in held_out]
    return ExperimentConfig(
        dataset=SOURCE_LAYOUT, task="occurrence", fold=1, data="synthetic",
        aus=aus if held_out else None,
        synth_size=cfg.synth_size, synth_seed=cfg.synth_seed + PRETRAIN_SEED_OFFSET, cache_dir=cfg.cache_dir,
        synth_coupling=cfg.synth_coupling, synth_setting=cfg.synth_setting,
        image_size=cfg.image_size, val_fraction=0.0, model="resnet18", lr=cfg.lr,
        batch_size=cfg.batch_size, epochs=max(1, steps // every), steps_per_epoch=every, patience=10**6,
        seed=cfg.seed, save_features=0, bn_refresh_batches=cfg.bn_refresh_batches,
        method="standin-backbone", profile=cfg.profile, device=cfg.device, amp=cfg.amp,
        progress=cfg.progress, results_dir=str(cfg.cache_root() / "pretrained" / "runs"))


def standin_backbone(cfg, steps: int = STANDIN_STEPS) -> Path:
    """Path of the stand-in backbone for runs like ``cfg`` (trained and cached on first use)."""
    if cfg.root or cfg.data == "real":
        raise ValueError("pretrained='standin' is the offline demo's stand-in for ImageNet weights "
                         "and is trained on SynthAU; for real data give a torchvision resnet18 "
                         "state_dict file (or 'imagenet' to download torchvision's weights)")
    pre = standin_config(cfg, steps)
    path = cfg.cache_root() / "pretrained" / f"standin-{pre.config_hash()}.pt"
    if path.exists():
        return path
    result = execute(pre)
    payload = torch.load(result.run_dir / "best.pt", map_location="cpu", weights_only=True)
    backbone = {k[len("backbone."):]: v for k, v in payload["state_dict"].items()
                if k.startswith("backbone.") and not k.startswith("backbone.fc")}
    torch_save_atomic(backbone, path)
    return path
