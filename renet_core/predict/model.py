"""A trained run for prediction: its checkpoint (``weights_only=True``), the settings that decide
its input and its outputs (image size, dataset layout, task, AUs, threshold, intensity rule) and
the all-AU pass over a batch of crops, as the study's test evaluation runs it
(:func:`renet_core.engine.evaluate.predict`, section 4.3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from renet_core.base import metrics
from renet_core.base.device import pick_device
from renet_core.data.dataset import normalise
from renet_core.engine.precision import autocast
from renet_core.model import load_checkpoint


@dataclass
class LoadedRun:
    """A model ready for prediction and what its outputs mean."""

    model: torch.nn.Module
    checkpoint: Path
    aus: list[int]
    task: str
    image_size: int
    dataset: str
    threshold: float
    intensity_rule: str
    amp: str
    synthetic: bool
    device: torch.device

    def au_names(self) -> list[str]:
        return [f"AU{au:02d}" for au in self.aus]


def _run_config(run_dir: Path | None, payload: dict, checkpoint: Path) -> dict:
    """The training config: the run folder's ``config.json``, else the one the checkpoint carries."""
    if run_dir is not None and (run_dir / "config.json").is_file():
        try:
            return json.loads((run_dir / "config.json").read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{run_dir / 'config.json'}: not valid JSON ({exc}); expected the run's config") from None
    config = payload.get("config")
    if not isinstance(config, dict) or "image_size" not in config:
        raise ValueError(f"{checkpoint} carries no training config, so its input size and alignment are unknown; "
                         "give the run folder (--run RUN_DIR, with config.json) instead")
    return config


def _trained_on_synthetic(run_dir: Path | None, config: dict) -> bool:
    """Whether the run's training data were SynthAU (its ``done.json``, else its config)."""
    done = run_dir / "done.json" if run_dir is not None else None
    if done is not None and done.is_file():
        try:
            return bool(json.loads(done.read_text()).get("synthetic"))
        except json.JSONDecodeError:
            pass
    return config.get("data", "synthetic") != "real" and not config.get("root")


def load_run(run: str | Path | None = None, checkpoint: str | Path | None = None,
             device: str = "cpu") -> LoadedRun:
    """The model of a run folder (``best.pt`` and ``config.json``) or of a checkpoint file (with
    the config it carries); anything else is an error naming the file."""
    if (run is None) == (checkpoint is None):
        raise ValueError("give exactly one of run (a run folder) or checkpoint (a checkpoint file)")
    run_dir = Path(run) if run is not None else None
    if run_dir is not None:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder; expected a folder with config.json and best.pt")
        path = run_dir / "best.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the run has no best.pt (not trained, or not finished); expected "
                                    "the folder of a finished run, or give --checkpoint FILE")
    else:
        path = Path(checkpoint)
    torch_device = pick_device(device)
    model, payload = load_checkpoint(path, map_location="cpu")
    config = _run_config(run_dir, payload, path)
    model.to(torch_device).eval()
    return LoadedRun(model=model, checkpoint=path, aus=[int(a) for a in payload["aus"]], task=payload["task"],
                     image_size=int(config["image_size"]), dataset=str(config.get("dataset") or ""),
                     threshold=float(config.get("threshold", 0.5)),
                     intensity_rule=str(config.get("intensity_rule", "expected")),
                     amp=str(config.get("amp", "auto")), synthetic=_trained_on_synthetic(run_dir, config),
                     device=torch_device)


@torch.no_grad()
def score(run: LoadedRun, images: np.ndarray) -> np.ndarray:
    """All AUs of a uint8 batch ``[N, 3, S, S]``: probabilities ``[N, C]`` (occurrence) or
    decoded intensities ``[N, C]`` (0-5, the run's ``intensity_rule``)."""
    if len(images) == 0:
        return np.zeros((0, len(run.aus)))
    batch = normalise(torch.from_numpy(images).to(run.device))
    with autocast(run.device, run.amp):
        out = run.model.classify(run.model.features(batch)).float()
    if run.task == "occurrence":
        return torch.sigmoid(out).cpu().numpy().astype(np.float64)
    return metrics.decode_intensity(out.cpu().numpy(), run.intensity_rule)
