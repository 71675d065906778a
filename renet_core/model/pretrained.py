"""Starting RE-Net and the baseline from a torchvision ResNet-18: ImageNet weights or a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights


def pretrained_state_dict(pretrained) -> dict:
    """The torchvision ResNet-18 state_dict that ``pretrained`` names: "imagenet" (downloaded by
    torchvision; the user's opt-in) or a local file (``weights_only=True``)."""
    if str(pretrained).lower() == "imagenet":
        try:
            return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:   # offline, proxy, disk full ...
            raise RuntimeError(
                f"could not get torchvision's ImageNet ResNet-18 weights ({exc}); on a machine "
                "without internet give a local torchvision resnet18 state_dict file (config field "
                "pretrained=PATH; torch.save(resnet18(weights=...).state_dict(), PATH) on a machine "
                "with internet) or train from scratch (pretrained=None)"
            ) from exc
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
