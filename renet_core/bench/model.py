"""``python -m renet_core.bench model``: inference and training speed of RE-Net vs ResNet-18.

Prints, for the machine it runs on (section 4.7 reports 5.4 ms/image for 12 AUs on a 2080Ti):
* 12-AU inference as the paper does it (a loop of C conditioned passes) and as this project does
  it (one batched pass), at each batch size, plus the ResNet-18 baseline's single pass;
* one training step of RE-Net (one random AU per batch, strategy 2) over the baseline's step.
Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from renet_core.data.labels import BP4D_AUS
from renet_core.device import pick_device
from renet_core.model import build_model

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


def bench_inference(args, device) -> list[tuple[str, int, float]]:
    aus = BP4D_AUS[: args.aus]
    relation = np.eye(len(aus))
    renet = _prepare(build_model("renet", aus, relation=relation), device, args.channels_last).eval()
    baseline = _prepare(build_model("resnet18", aus), device, args.channels_last).eval()
    rows = []
    for batch in args.batches:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        if args.channels_last:
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
            with torch.inference_mode(), _autocast(device, args.dtype):
                seconds = time_call(fn, device, args.repeats, args.budget)
            rows.append((name, batch, seconds))
    return rows


def bench_training(args, device) -> dict[str, float]:
    aus = BP4D_AUS[: args.aus]
    x = torch.randn(args.train_batch, 3, args.size, args.size, device=device)
    y = (torch.rand(args.train_batch, len(aus), device=device) > 0.5).float()
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = {}
    for kind in ("resnet18", "renet"):
        model = _prepare(build_model(kind, aus, relation=np.eye(len(aus))), device, args.channels_last).train()
        optim = torch.optim.Adam(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def step():
            optim.zero_grad(set_to_none=True)
            with _autocast(device, args.dtype):
                if kind == "renet":   # strategy 2: one random AU per batch
                    k = int(torch.randint(len(aus), (1,), generator=gen))
                    loss = F.binary_cross_entropy_with_logits(model(x, au=k).float(), y[:, k])
                else:
                    loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            loss.backward()
            optim.step()

        results[kind] = time_call(step, device, args.repeats, args.budget)
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.add_argument("--size", type=int, default=224, help="input resolution (paper: 224)")
    parser.add_argument("--aus", type=int, default=12, help="number of AUs (paper: 12)")
    parser.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per measurement at most")
    parser.add_argument("--dtype", choices=["float32", "bf16"], default=None,
                        help="default: bf16 on CUDA, float32 elsewhere")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="default: on for CUDA")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-training", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    asked = args.dtype
    if args.dtype is None:
        args.dtype = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    problem = dtype_problem(device, args.dtype)
    if problem and asked:
        print(f"--dtype {args.dtype} cannot run on {device} here (autocast check of RE-Net and ResNet-18 "
              f"failed in the {problem}); rerun with --dtype float32", file=sys.stderr)
        return 2
    if problem:
        print(f"note: {args.dtype} autocast fails on {device} ({problem}); measuring float32 instead")
        args.dtype = "float32"
    if args.channels_last is None:
        args.channels_last = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device: {device} ({name}); input {args.size}x{args.size}; {args.aus} AUs; dtype {args.dtype}; "
          f"channels_last {args.channels_last}; torch {torch.__version__}")
    print(f"paper (section 4.7): {PAPER_MS_PER_IMAGE} ms/image for 12 AUs on a 2080Ti "
          f"({1000 / PAPER_MS_PER_IMAGE:.0f} images/s)\n")

    rows = bench_inference(args, device)
    print(f"{'inference':<36}{'batch':>6}{'ms/batch':>11}{'ms/image':>10}{'images/s':>11}")
    for label, batch, seconds in rows:
        print(f"{label:<36}{batch:>6}{1000 * seconds:>11.1f}{1000 * seconds / batch:>10.2f}{batch / seconds:>11.1f}")
    by_key = {(label, batch): s for label, batch, s in rows}
    for batch in args.batches:
        loop = by_key[("RE-Net, loop of C passes (paper)", batch)]
        batched = by_key[("RE-Net, one batched pass", batch)]
        print(f"batch {batch}: batched pass is {loop / batched:.2f}x the loop's speed")

    if not args.skip_training:
        steps = bench_training(args, device)
        print(f"\ntraining step, batch {args.train_batch}: ResNet-18 {1000 * steps['resnet18']:.1f} ms, "
              f"RE-Net (one AU per batch) {1000 * steps['renet']:.1f} ms, "
              f"ratio {steps['renet'] / steps['resnet18']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
