"""Many GPUs: one run across all of them (DDP through ``torchrun``).

One run on N GPUs (or N CPU processes with the gloo backend)::

    torchrun --nproc_per_node=N -m renet_core train --config run.yaml

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`setup` reads them and joins the process
group (NCCL on CUDA, gloo on the CPU). Each process trains on its own shard of every epoch
(``DistributedSampler``) with the batch size of the config per process, gradients are averaged by
``DistributedDataParallel``; rank 0 alone validates, checkpoints and writes results. Note that
BatchNorm statistics are per process (no SyncBatchNorm): with batch 100 per GPU that is the
paper's per-batch statistics.

A grid of independent runs, one per GPU at a time, is the command line's business
(``python -m renet_core grid``, :mod:`renet_core.cli.launch`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``world_size == 1`` means no distribution at all."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Read torchrun's environment variables (no process group is started)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def setup(device: torch.device) -> DistInfo:
    """Join the process group if launched by torchrun (NCCL for CUDA, gloo otherwise)."""
    info = env_info()
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return info
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return info


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """Under DDP on CUDA each process drives the GPU of its local rank."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """Wrap in DistributedDataParallel when distributed, else return ``model`` unchanged.

    ``find_unused_parameters`` is on for RE-Net: with one AU per batch (strategy 2) parameters
    that do not reach that AU (e.g. with ``relation_mode="none"``) get no gradient.
    """
    if not info.enabled:
        return model

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=getattr(model, "kind", "") == "renet")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(value: bool, info: DistInfo) -> bool:
    """Rank 0's decision (e.g. early stopping) sent to every process."""
    if not info.enabled:
        return value
    flag = torch.tensor([1 if value else 0], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def assert_replicas_in_sync(model: torch.nn.Module, info: DistInfo) -> None:
    """Check that every process holds the same weights (gradients were really averaged)."""
    if not info.enabled:
        return
    params = [p.detach().float().flatten() for p in unwrap(model).parameters()]
    checksum = torch.stack([torch.cat(params).double().sum(), torch.cat(params).double().abs().sum()])
    if dist.get_backend() == "nccl":
        checksum = checksum.cuda()
    gathered = [torch.zeros_like(checksum) for _ in range(info.world_size)]
    dist.all_gather(gathered, checksum)
    if not all(torch.allclose(g, gathered[0], rtol=1e-6, atol=1e-6) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {[g.tolist() for g in gathered]}")


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
