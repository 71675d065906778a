"""``python -m renet_core.bench loader``: images/s of the paper profile's training loader.

The loader the paper profile trains with (:func:`renet_core.engine.precision.train_loader` over
:class:`renet_core.data.dataset.AUDataset`): 224 px random crops and flips of 256 px aligned
crops, batch 100, on SynthAU in the BP4D layout prepared at 256 px (the real data path:
SynthAU twin, alignment, cache) in a temporary folder. For each worker count it times whole
epochs (worker start-up included, as training starts a loader every epoch) and the steady rate
after the first batch, with pinned memory on or off and with persistent workers (the loader kept
between epochs). One item's decode and augmentation cost in this process is printed first: one
worker cannot exceed 1000 / that many images a second. Prints figures for this machine; asserts
nothing. A GPU consumes what the steady rate delivers at most.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

from renet_core.base import ddp
from renet_core.base.device import available_cores, loader_workers
from renet_core.engine import ExperimentConfig, load_splits
from renet_core.engine.precision import train_loader
from renet_core.engine.splits import make_dataset


def paper_dataset(cache_dir: str, synth_size: str = "smoke", batch_size: int = 100, image_size: int = 224):
    """The paper profile's config (SynthAU, ``cache_dir``, ``batch_size``, ``image_size``) and its
    fold-1 training dataset: the twin written and prepared at ``round(image_size*256/224)`` px."""
    cfg = ExperimentConfig.build(profile="paper", data="synthetic", synth_size=synth_size, cache_dir=cache_dir,
                                 batch_size=batch_size, image_size=image_size, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SynthAU's deliberate label-file quirks
        splits = load_splits(cfg)
    return cfg, make_dataset(splits.train, cfg, True)


def item_ms(dataset, items: int = 100) -> float:
    """Milliseconds per training item (decode, crop, flip) in this process."""
    n = min(items, len(dataset))
    dataset[0]
    start = time.perf_counter()
    for i in range(n):
        dataset[i]
    return 1000 * (time.perf_counter() - start) / n


def loader_rate(dataset, cfg, workers: int, batches: int, pin: bool, persistent: bool,
                epochs: int = 2) -> dict:
    """Images/s of ``epochs`` epochs of ``batches`` batches with ``workers`` workers: per epoch
    (start-up included) and steady (after each epoch's first batch), first-batch seconds."""
    cfg = cfg.replace(num_workers=workers, steps_per_epoch=batches)
    loader, per_epoch, steady, first = None, [], [], []
    for epoch in range(epochs):
        if loader is None or not persistent:   # as training does: a new loader every epoch
            loader = train_loader(dataset, cfg, epoch, ddp.DistInfo(), pin, persistent=persistent)
        start = time.perf_counter()
        images, t_first, n_first = 0, None, 0
        for batch in loader:
            images += len(batch[0])
            if t_first is None:
                t_first, n_first = time.perf_counter() - start, len(batch[0])
        total = time.perf_counter() - start
        per_epoch.append(images / total)
        steady.append((images - n_first) / max(total - t_first, 1e-9))
        first.append(t_first)
    del loader
    return {"workers": workers, "pin_memory": pin, "persistent_workers": persistent and workers > 0,
            "batches": batches, "batch_size": cfg.batch_size, "first_batch_s": first,
            "images_per_s": per_epoch, "steady_images_per_s": steady}


def default_worker_counts() -> list[int]:
    cores = available_cores()
    return sorted({0, 1, 2, loader_workers()} | {n for n in (4, 8, 12, 16) if n <= cores})


def benchmark(workers=None, batches: int = 20, batch_size: int = 100, image_size: int = 224,
              pin: bool | None = None, persistent: bool | None = None, epochs: int = 2,
              synth_size: str = "smoke", cache_dir: str | None = None, say=print) -> dict:
    """Every figure of the loader benchmark as a dict (also printed through ``say``).
    ``persistent=None`` measures each worker count > 0 without and with persistent workers."""
    pin = torch.cuda.is_available() if pin is None else bool(pin)
    counts = default_worker_counts() if workers is None else list(workers)
    with tempfile.TemporaryDirectory(prefix="renet_bench_loader_") as tmp:
        start = time.perf_counter()
        cfg, dataset = paper_dataset(cache_dir or tmp, synth_size, batch_size, image_size)
        setup = time.perf_counter() - start
        side = dataset.side
        ms = item_ms(dataset)
        say(f"loader: {len(dataset)} SynthAU training frames (BP4D layout, {synth_size}) aligned to "
            f"{side}x{side}, random {image_size} px crops, batch {batch_size}; set up in {setup:.1f} s")
        say(f"one item in this process: {ms:.2f} ms (decode, crop, flip; normalised later on the device) = "
            f"{1000 / ms:.0f} images/s per worker at most; {available_cores()} CPU(s) available, "
            f"paper profile's num_workers here: {loader_workers()}")
        say(f"{'workers':>7} {'pin':>5} {'persist':>7} {'first batch s':>13} {'images/s per epoch':>22} "
            f"{'steady images/s':>16}")
        rows = []
        for n in counts:
            for keep in ([False, True] if persistent is None and n > 0 else [bool(persistent) and n > 0]):
                row = loader_rate(dataset, cfg, n, batches, pin, keep, epochs)
                rows.append(row)
                say(f"{n:>7} {str(pin):>5} {str(row['persistent_workers']):>7} "
                    f"{' / '.join(f'{v:.2f}' for v in row['first_batch_s']):>13} "
                    f"{' / '.join(f'{v:.0f}' for v in row['images_per_s']):>22} "
                    f"{max(row['steady_images_per_s']):>16.0f}")
    best = max(rows, key=lambda r: max(r["steady_images_per_s"]))
    say(f"best: {max(best['steady_images_per_s']):.0f} images/s steady with {best['workers']} worker(s)")
    return {"frames": len(dataset), "crop_side": side, "image_size": image_size, "batch_size": batch_size,
            "item_ms": ms, "cores": available_cores(), "paper_num_workers": loader_workers(),
            "setup_s": setup, "rows": rows, "best_steady_images_per_s": max(best["steady_images_per_s"]),
            "best_workers": best["workers"]}


def _counts(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench loader",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=_counts, default=None,
                        help="worker counts, e.g. 0,1,2,4 [0, 1, 2, the paper default, powers up to the cores]")
    parser.add_argument("--batches", type=int, default=20, help="batches per epoch [20]")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per setting [2]")
    parser.add_argument("--batch", type=int, default=100, help="batch size [100, the paper's]")
    parser.add_argument("--size", type=int, default=224, help="crop fed to the network [224]")
    parser.add_argument("--pin-memory", action=argparse.BooleanOptionalAction, default=None,
                        help="pinned batches [on where CUDA is available]")
    parser.add_argument("--persistent-workers", action=argparse.BooleanOptionalAction, default=None,
                        help="keep workers between epochs [both, for each worker count > 0]")
    parser.add_argument("--synth-size", choices=["smoke", "demo"], default="smoke",
                        help="SynthAU size written to the temporary folder [smoke: 164 frames]")
    args = parser.parse_args(argv)
    benchmark(args.workers, args.batches, args.batch, args.size, args.pin_memory, args.persistent_workers,
              args.epochs, args.synth_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
