"""Speed of the two models on random inputs (section 4.7): 12-AU inference as the paper runs it
and as this project does, and one training step. Measures; asserts nothing."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F

from renet_core.data.labels import BP4D_AUS
from renet_core.model.networks import build_model

PAPER_MS_PER_IMAGE = 5.4   # section 4.7: 12 AUs, NVIDIA GeForce 2080Ti


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device, repeats: int, budget_s: float) -> float:
    """Median seconds per call after one warm-up, stopping early once ``budget_s`` is spent."""
    fn()
    _sync(device)
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return float(np.median(times))


def _autocast(device, dtype):
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dtype_problem(device, dtype: str) -> str | None:
    """Why ``dtype`` cannot be benchmarked on ``device`` (None: it can): both models run one
    tiny training step (RE-Net with one AU, as strategy 2) and both inference passes under
    :func:`_autocast`, so that an unsupported combination is refused before any timing, with the
    reason, rather than crashing half-way through the benchmark."""
    if dtype == "float32":
        return None
    aus = BP4D_AUS[:2]
    x = torch.randn(2, 3, 32, 32, device=device)
    stage = "building the models"
    try:
        for kind in ("renet", "resnet18"):
            model = build_model(kind, aus, relation=np.eye(len(aus))).to(device).train()
            stage = f"{kind} training step"
            with _autocast(device, dtype):
                out = model(x, au=0)
            out.float().sum().backward()
            model.eval()
            stage = f"{kind} inference"
            with torch.inference_mode(), _autocast(device, dtype):
                model(x, au=0)
                model(x)
    except (RuntimeError, TypeError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        return f"{stage}: {type(exc).__name__}: {text[0] if text else ''}"
    return None


def _prepare(model, device, channels_last):
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def inference_times(device, size: int, batches, n_aus: int = 12, dtype: str = "float32",
                    channels_last: bool = False, repeats: int = 5, budget: float = 20.0) -> list[tuple[str, int, float]]:
    """Section 4.7: seconds per batch of 12-AU inference, ``[(variant, batch, seconds)]``: RE-Net
    as the paper runs it (a loop of C conditioned passes), RE-Net's one batched pass, its default
    layout, and ResNet-18's single pass, on random ``size`` x ``size`` inputs."""
    aus = BP4D_AUS[:n_aus]
    relation = np.eye(len(aus))
    renet = _prepare(build_model("renet", aus, relation=relation), device, channels_last).eval()
    baseline = _prepare(build_model("resnet18", aus), device, channels_last).eval()
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, size, size, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def loop():
            return torch.stack([renet(x, au=k) for k in range(len(aus))], dim=1)

        def layout(name):
            def run():
                renet.layout = name
                try:
                    return renet(x)
                finally:
                    renet.layout = "auto"
            return run

        candidates = {"RE-Net, loop of C passes (paper)": loop,
                      "RE-Net, one batched pass": layout("batched"),
                      "RE-Net, all AUs (default layout)": layout("auto"),
                      "ResNet-18 baseline, one pass": lambda: baseline(x)}
        for name, fn in candidates.items():
            with torch.inference_mode(), _autocast(device, dtype):
                seconds = time_call(fn, device, repeats, budget)
            rows.append((name, batch, seconds))
    return rows


def training_step_times(device, size: int, batch: int, n_aus: int = 12, dtype: str = "float32",
                        channels_last: bool = False, repeats: int = 5, budget: float = 20.0) -> dict[str, float]:
    """Seconds per training step (forward, backward, Adam) of ResNet-18 and of RE-Net with one
    random AU per batch (strategy 2), on random inputs."""
    aus = BP4D_AUS[:n_aus]
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, len(aus), device=device) > 0.5).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = {}
    for kind in ("resnet18", "renet"):
        model = _prepare(build_model(kind, aus, relation=np.eye(len(aus))), device, channels_last).train()
        optim = torch.optim.Adam(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def step():
            optim.zero_grad(set_to_none=True)
            with _autocast(device, dtype):
                if kind == "renet":   # strategy 2: one random AU per batch
                    k = int(torch.randint(len(aus), (1,), generator=gen))
                    loss = F.binary_cross_entropy_with_logits(model(x, au=k).float(), y[:, k])
                else:
                    loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            loss.backward()
            optim.step()

        results[kind] = time_call(step, device, repeats, budget)
    return results
