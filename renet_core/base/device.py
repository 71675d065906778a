"""Device selection: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch


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
