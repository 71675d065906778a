"""Batches on their device: mixed precision (autocast), memory layout, the per-epoch seeds and
the data loaders of training and evaluation."""

from __future__ import annotations

import contextlib

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from renet_core.base import ddp
from renet_core.data.dataset import normalise


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``, None for full precision. CUDA: bf16 where
    supported ("auto"/"bf16"), fp16 ("fp16", or "auto" without bf16 support). CPU: bf16 only when
    asked for ("bf16"; "auto" stays float32, the CPU's fastest exact choice). Other devices: off."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.float16 if uses_fp16(device, amp) else torch.bfloat16
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16
    return None


def autocast(device: torch.device, amp: str):
    """Mixed precision as :func:`amp_dtype` decides (``torch.autocast``), or a no-op."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def uses_fp16(device: torch.device, amp: str) -> bool:
    """fp16 autocast (which needs loss scaling) rather than bf16 or full precision."""
    return device.type == "cuda" and (amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()))


def uses_channels_last(device: torch.device, cfg) -> bool:
    """Whether batches and the model use the channels-last memory layout (``cfg.channels_last``):
    on CUDA, and on the CPU under bf16 autocast, where convolutions are faster with it (measured on
    2 cores with avx512_bf16, 48 px, batch 32: RE-Net step 150 ms float32, 123 ms bf16 +
    channels_last; in float32 channels_last is slower there, 160 ms, so it stays off)."""
    if not cfg.channels_last:
        return False
    return device.type == "cuda" or (device.type == "cpu" and amp_dtype(device, cfg.amp) == torch.bfloat16)


def to_device(batch, device: torch.device, channels_last: bool):
    """A batch on ``device``; uint8 images (``AUDataset(normalise=False)``) are normalised there."""
    images, target, mask = batch
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if images.dtype == torch.uint8:
        images = normalise(images)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, target.to(device, non_blocking=non_blocking), mask.to(device, non_blocking=non_blocking)


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch): shuffling and AU choice of that epoch (and the augmentation
    of datasets that draw from torch's global RNG; AUDataset seeds its own per item)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**31 - 1)


def train_loader(dataset: Dataset, cfg, epoch: int, info: ddp.DistInfo, pin: bool,
                 persistent: bool = False) -> DataLoader:
    """Shuffled batches for one epoch; ``cfg.steps_per_epoch`` caps the number of batches. A
    dataset with ``set_epoch`` (:class:`renet_core.data.dataset.AUDataset`) is told the epoch
    first, so its augmentation is a function of (seed, epoch, item), whatever ``cfg.num_workers``.
    ``persistent`` keeps the workers between iterations (the loader benchmark): they keep the
    epoch they started with, so training builds a new loader every epoch instead."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    drop_last = len(dataset) > cfg.batch_size
    if info.enabled:
        sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        n = len(dataset) if not cfg.steps_per_epoch else cfg.steps_per_epoch * cfg.batch_size
        sampler = RandomSampler(dataset, num_samples=n, generator=generator)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=cfg.num_workers, pin_memory=pin, generator=generator,
                      persistent_workers=persistent and cfg.num_workers > 0)


def eval_loader(dataset: Dataset, cfg, pin: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=cfg.eval_batch_size or cfg.batch_size, shuffle=False,
                      num_workers=cfg.num_workers, pin_memory=pin)
