"""Device selection: CUDA, then Apple MPS, then the CPU; the data loader workers a machine can
run (:func:`loader_workers`)."""

from __future__ import annotations

import contextlib
import os

import torch

#: At most this many loader workers by default. One worker decodes and augments ~1,000-1,700
#: 224 px items a second (``python -m renet_core.bench loader``; docs/reproduction-notes.md);
#: bf16 ResNet-18 training on a current data-centre GPU takes ~10,000, so 8 workers is about
#: what one GPU can use; more only cost memory and start-up.
MAX_LOADER_WORKERS = 8


def pick_device(preferred: str | None = None) -> torch.device:
    """Return ``preferred`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"auto"``),
    else the best available device: CUDA, then MPS, then CPU.

    An explicitly requested device that is not available raises a clear error instead of
    silently falling back.
    """
    if preferred not in (None, "", "auto"):
        dev = torch.device(preferred)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {preferred!r} was requested but CUDA is not available")
        if dev.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {preferred!r} was requested but Apple MPS is not available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def loader_workers(cap: int = MAX_LOADER_WORKERS) -> int:
    """Data loader workers for a GPU run on this machine: the cores this process may use (shared
    among the processes ``torchrun`` starts on this node, ``LOCAL_WORLD_SIZE``) less one for the
    training process, at least 1 and at most ``cap``. Depends on the machine, so it must never
    change a run's numbers (augmentation is drawn per item, not per worker)."""
    per_process = available_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(int(cap), per_process - 1))


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` inside the block, the previous count restored
    after. A run holds its count fixed this way, since on the CPU the count decides how sums are
    split, and so the last bits of every gradient and score (issue 31, case 5)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
