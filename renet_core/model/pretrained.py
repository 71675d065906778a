"""Starting RE-Net and the baseline from a torchvision ResNet-18: ImageNet weights or a local file."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights


class WeightsUnavailableError(RuntimeError):
    """torchvision's ImageNet weights could not be had (no network, a proxy, a full disk)."""


def offline_hint() -> str:
    """How to start from ImageNet weights on a machine without internet."""
    url = ResNet18_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return ("on a machine without internet pass a local torchvision resnet18 state_dict file: "
            "--set pretrained=PATH on the command line, pretrained: PATH in a YAML config, or "
            "ExperimentConfig(pretrained=PATH). Make it on a machine with internet with\n"
            "  python -c \"import torch, torchvision; torch.save(torchvision.models.resnet18("
            "weights='IMAGENET1K_V1').state_dict(), 'resnet18_imagenet.pt')\"\n"
            f"(or copy {url} to {cached}, torchvision's cache, and keep pretrained=imagenet); "
            "--set pretrained=null trains from scratch")


def pretrained_state_dict(pretrained) -> dict:
    """The torchvision ResNet-18 state_dict that ``pretrained`` names: "imagenet" (downloaded by
    torchvision once, then read from its cache; the user's opt-in) or a local file
    (``weights_only=True``). Without network, "imagenet" raises :class:`WeightsUnavailableError`
    saying how to pass a local file. A dict is taken as such a state_dict, already loaded."""
    if isinstance(pretrained, dict):
        return pretrained
    if str(pretrained).lower() == "imagenet":
        try:
            return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:   # offline, proxy, disk full ...
            raise WeightsUnavailableError(
                f"could not get torchvision's ImageNet ResNet-18 weights ({type(exc).__name__}: {exc}); "
                + offline_hint()) from exc
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"could not read pretrained weights from {path}: expected a torchvision "
                         f"resnet18 state_dict saved with torch.save ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise ValueError(f"{path} does not hold a torchvision resnet18 state_dict (no 'conv1.weight')")
    return state


@torch.no_grad()
def load_imagenet_backbone(model, state: dict) -> None:
    """Copy a torchvision ResNet-18 state_dict into ``model.backbone`` (the classifier ``fc`` is
    dropped). For RE-Net, each BN's weight, bias and running statistics are copied to every AU."""
    target = model.backbone.state_dict()
    missing = []
    for name, value in target.items():
        if name.endswith("au_batches_tracked"):
            value.fill_(10_000)   # pretrained statistics: blend by the usual momentum, no warm start
            continue
        if name not in state:
            missing.append(name)
            continue
        source = state[name]
        if value.shape == source.shape:
            value.copy_(source)
        elif value.dim() == 2 and source.dim() == 1 and value.shape[1] == source.shape[0]:
            value.copy_(source.unsqueeze(0).expand_as(value))   # one row per AU
        else:
            raise ValueError(f"pretrained tensor {name} has shape {tuple(source.shape)}, "
                             f"model expects {tuple(value.shape)}")
    if missing:
        raise ValueError(f"pretrained state_dict lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
