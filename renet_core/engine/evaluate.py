"""Evaluation of a model (section 4.3: "use all of the AUs for validation and testing"): the
all-AU prediction pass, the paper's metrics per AU (section 4.2), the early-stopping score, and
the re-estimation of BN statistics used by the short CPU profiles."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from renet_core.base import ddp, metrics
from renet_core.base.progress import bar
from renet_core.engine.precision import autocast, epoch_seed, to_device, uses_channels_last
from renet_core.model import AUBatchNorm2d


@torch.no_grad()
def refresh_statistics(model, dataset: Dataset, cfg, epoch: int, device) -> None:
    """Re-estimate every BN layer's running statistics with the current weights, as the exact
    average over ``cfg.bn_refresh_batches`` training batches (0: keep the running averages).

    Not in the paper (see docs/reproduction-notes.md): in short CPU runs with one AU per batch,
    an AU's statistics are updated every ~C steps while the weights move fast, so they lag the
    weights and the eval-mode outputs drift. Both models get the same treatment; RE-Net's
    statistics are re-estimated for every AU in the batched all-AU pass.
    """
    batches = int(cfg.bn_refresh_batches or 0)
    if batches <= 0 or len(dataset) == 0:
        return
    net = ddp.unwrap(model)
    norms = [m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm2d, AUBatchNorm2d))]
    saved = [m.momentum for m in norms]
    for m in norms:                              # torch.optim.swa_utils.update_bn's recipe
        m.momentum = None                        # cumulative average (per AU for AUBatchNorm2d)
        m.reset_running_stats()
    if hasattr(dataset, "set_epoch"):   # the epoch's augmentation, whatever the workers (AUDataset)
        dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + 3)
    sampler = RandomSampler(dataset, num_samples=min(batches * cfg.batch_size, max(len(dataset), cfg.batch_size)),
                            generator=generator)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers)
    channels_last = uses_channels_last(device, cfg)
    was_training = net.training
    net.train()
    try:
        for batch in loader:
            images, _, _ = to_device(batch, device, channels_last)
            with autocast(device, cfg.amp):
                net(images)
    finally:
        net.train(was_training)
        for m, value in zip(norms, saved):
            m.momentum = value


@torch.no_grad()
def predict(model, loader, device, cfg, desc: str = "eval", features: int = 0) -> dict:
    """Run all AUs on every frame (section 4.3: "use all of the AUs for validation and testing").

    Returns ``y_true`` [N, C] (NaN = unknown) and ``scores``: probabilities [N, C] for
    occurrence, raw logits [N, C, 6] for intensity; with ``features=n`` (an unshuffled loader)
    also ``features``, the pooled features of the first n frames from the same pass (float16;
    ``[n, C, 512]`` for RE-Net, ``[n, 512]`` for the baseline: Fig. 3).
    """
    model = ddp.unwrap(model)
    model.eval()
    channels_last = uses_channels_last(device, cfg)
    truth, scores, kept, n_kept = [], [], [], 0
    for batch in bar(loader, desc=desc, leave=False, disable=not cfg.progress):
        images, target, mask = to_device(batch, device, channels_last)
        with autocast(device, cfg.amp):
            feats = model.features(images)
            out = model.classify(feats).float()
        if n_kept < features:
            kept.append(feats[: features - n_kept].float().cpu())
            n_kept += len(kept[-1])
        truth.append(torch.where(mask, target.float(), torch.nan).cpu())
        scores.append((torch.sigmoid(out) if cfg.task == "occurrence" else out).cpu())
    out = {"y_true": torch.cat(truth).numpy().astype(np.float64),
           "scores": torch.cat(scores).numpy().astype(np.float32)}
    if kept:
        out["features"] = torch.cat(kept).numpy().astype(np.float16)
        out["features_index"] = np.arange(len(out["features"]))
    return out


def score_predictions(pred: dict, cfg) -> dict[str, np.ndarray]:
    """Per-AU metrics (section 4.2): F1 for occurrence; ICC(3,1) and MAE for intensity."""
    if cfg.task == "occurrence":
        return {"f1": metrics.f1_per_au(pred["y_true"], pred["scores"], threshold=cfg.threshold)}
    y_pred = metrics.decode_intensity(pred["scores"], cfg.intensity_rule)
    return {"icc": metrics.icc3_1(pred["y_true"], y_pred), "mae": metrics.mae(pred["y_true"], y_pred)}


def validation_score(pred: dict, cfg, trainable: list[int]) -> float:
    """The early-stopping criterion: mean F1 (occurrence) or mean ICC(3,1) (intensity) over the
    trainable AUs; higher is better; NaN counts as -inf."""
    per_au = score_predictions(pred, cfg)["f1" if cfg.task == "occurrence" else "icc"][trainable]
    value = float(np.nanmean(per_au)) if not np.isnan(per_au).all() else -math.inf
    return value


class NonFiniteError(RuntimeError):
    """NaN or infinite values where a trained model must have finite ones (issue 31, case 4)."""


class NonFiniteOutputError(NonFiniteError):
    """A model's test outputs hold NaN or infinite values: nothing is filed (issue 31, case 4)."""


def check_finite_outputs(scores, what: str) -> None:
    """An error naming ``what`` when ``scores`` hold a NaN or an infinity: a model that outputs
    them is broken, and scoring it would file F1 0 for every AU as if it were a result."""
    scores = np.asarray(scores)
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise NonFiniteOutputError(
            f"{what}: {bad} of {scores.size} test outputs are NaN or infinite, so its weights are broken; "
            "nothing was filed and the run is not done. Retrain it (force=True), with a lower lr or amp='off'")


class NonFiniteWeightsError(NonFiniteError):
    """A model's weights or BN statistics hold NaN or infinite values after an epoch."""


def check_finite_weights(model, what: str) -> None:
    """An error naming ``what`` and the first broken tensors when any parameter or floating-point
    buffer (BN statistics) of ``model`` holds a NaN or an infinity. The loss can be finite on the
    step whose update breaks the weights, so the loop checks them again before each checkpoint."""
    net = ddp.unwrap(model)
    tensors = list(net.named_parameters()) + list(net.named_buffers())
    bad = [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteWeightsError(
            f"{what}: {len(bad)} weight tensor(s) became NaN or infinite ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); the run stopped before saving this epoch, its last checkpoint "
            "is kept and it is not done. Try a lower lr or amp='off'")
