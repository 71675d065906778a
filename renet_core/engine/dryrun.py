"""A paper-shape dry run (``python -m renet_core train --profile paper --dry-run``): the profile's
real code path at its real shapes, on SynthAU, in minutes.

What runs (each through :func:`renet_core.engine.execute.execute`, as a real run does): the
SynthAU twin aligned and cached at ``round(image_size * 256 / 224)`` px (256 for the paper's
224) and cut into its fold; then, for ResNet-18 and for RE-Net with each training strategy
(section 3.4: one random AU per batch, every AU every batch), two epochs of ``steps // 2``
training steps at the config's batch size (100 in the paper profile) with the profile's loader
workers, one validation batch after each epoch, one test batch (RE-Net's all-AU pass included),
and between the two epochs a checkpoint, a simulated kill and a resume from ``last.pt``. It
prints seconds per step (the wait for an epoch's first batch, its loader workers' start, is
reported apart) and peak memory (CPU: the process's peak RSS; CUDA:
``torch.cuda.max_memory_allocated``) and returns every figure. On SynthAU's smoke twin (whose
few labels make Eq. 5's signed denominator fail) add ``--set denominator=abs``.

Runs go to a temporary results folder, removed afterwards: never into the user's run store.
The data use the cache (``$RENET_CACHE``), as a real run's twin does.

RE-Net's "all" strategy stacks the C conditioned copies of a batch, so it needs about C times the
activation memory of one AU per batch (12 x 100 images at 224 px: ~23 GiB in float32 on the CPU).
Where the one-AU run's measured need times C exceeds the memory available, the "all" variant
runs at the largest batch that fits, and the report says so.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import psutil
import torch

from renet_core.base.device import pick_device
from renet_core.base.progress import say
from renet_core.engine.config import ExperimentConfig
from renet_core.engine.execute import execute
from renet_core.engine.splits import Splits, crop_size, load_splits, make_dataset
from renet_core.engine.store import ResultsStore
from renet_core.model.pretrained import pretrained_state_dict

#: (model, strategy) of every variant, in this order (the "all" variant's memory is estimated
#: from the one-AU RE-Net run before it).
VARIANTS = (("resnet18", "one"), ("renet", "one"), ("renet", "all"))
#: Share of the available memory the "all" variant may plan to use.
MEMORY_SHARE = 0.5


class _Kill(Exception):
    """The simulated kill after the first epoch."""


class PeakMemory:
    """Peak memory of this process while the block runs: on CUDA ``max_memory_allocated`` (reset
    on entry), elsewhere the resident set size, sampled every 10 ms (and the kernel's peak RSS of
    the whole process, ``ru_maxrss``, as a bound). ``base`` is the value on entry."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self.base = device, 0, 0
        self._stop, self._thread = threading.Event(), None

    def _now(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.memory_allocated(self.device))
        return int(psutil.Process().memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._now())

    def __enter__(self):
        self.base = self.peak = self._now()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._now())
        return False


def process_peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (``resource.getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def available_memory(device: torch.device) -> int:
    """Bytes free for a new allocation: the GPU's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def _initial_weights(cfg: ExperimentConfig):
    """What the variants start from: the config's pretrained weights when they can be had; a
    dry run goes on from random weights (and says why) where a real run would stop."""
    if cfg.pretrained in (None, "standin"):
        if cfg.pretrained == "standin":
            say("dry run: the offline stand-in backbone is not trained here; starting from random weights")
        return None
    try:
        return pretrained_state_dict(cfg.pretrained)   # read once, used by every variant
    except (RuntimeError, OSError, ValueError) as exc:
        say(f"dry run: pretrained={cfg.pretrained!r} is not available ({exc}); a real run stops here. "
            "Going on from random weights.")
        return None


def variant_name(model: str, strategy: str) -> str:
    return "resnet18" if model == "resnet18" else f"renet ({strategy})"


def _shapes(cfg: ExperimentConfig, splits: Splits) -> dict:
    """The cached crop's side and a training item's shape, checked against the config."""
    crop = cv2.imread(str(splits.train["crop"].iloc[0]), cv2.IMREAD_COLOR)
    item = make_dataset(splits.train.head(1), cfg, True)[0][0]
    side = crop_size(cfg.image_size)
    if crop is None or crop.shape[:2] != (side, side):
        raise RuntimeError(f"cached crop {splits.train['crop'].iloc[0]} is {None if crop is None else crop.shape}, "
                           f"expected {side}x{side}")
    if tuple(item.shape) != (3, cfg.image_size, cfg.image_size):
        raise RuntimeError(f"training item of shape {tuple(item.shape)}, expected (3, {cfg.image_size}, {cfg.image_size})")
    return {"crop_side": side, "item_shape": list(item.shape)}


def _run_variant(cfg: ExperimentConfig, splits: Splits, pretrained, device) -> dict:
    """Two epochs with a kill and a resume between them, then the test batch; the figures."""
    stamps = {}

    def killed(epoch, state):
        stamps[epoch] = time.perf_counter()
        if epoch == 1:
            raise _Kill

    def resumed(epoch, state):
        stamps[epoch] = time.perf_counter()

    run_dir = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash())
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        try:
            execute(cfg, splits, on_epoch_end=killed, pretrained=pretrained)
            raise RuntimeError("the simulated kill after epoch 1 did not happen")
        except _Kill:
            pass
        saved = {name: (run_dir / name).stat().st_size for name in ("last.pt", "best.pt") if (run_dir / name).exists()}
        if "last.pt" not in saved:
            raise RuntimeError(f"no checkpoint in {run_dir} after epoch 1")
        result = execute(cfg, splits, on_epoch_end=resumed, pretrained=pretrained)
        end = time.perf_counter()
    if sorted(stamps) != [1, 2] or [h["epoch"] for h in result.history] != [1, 2]:
        raise RuntimeError(f"resume from last.pt did not continue at epoch 2 (history {result.history})")
    pred = ResultsStore(cfg.results_dir).load_predictions(result.config_hash)
    steps = cfg.steps_per_epoch
    first, second = result.history
    per_step = [(h["train_seconds"] - h["first_batch_seconds"]) / steps for h in (first, second)]
    return {"batch_size": cfg.batch_size, "steps": 2 * steps, "s_per_step": per_step,
            "first_batch_s": [first["first_batch_seconds"], second["first_batch_seconds"]],
            "images_per_s": cfg.batch_size / per_step[1],
            "validation_s": second["seconds"] - second["train_seconds"],
            "test_s": end - stamps[2], "test_scores_shape": list(pred["scores"].shape),
            "checkpoint_mb": {k: round(v / 2**20, 1) for k, v in saved.items()},
            "peak_bytes": memory.peak, "base_bytes": memory.base, "total_s": end - start,
            "loss": [first["loss"], second["loss"]], "val": [first["val"], second["val"]]}


def _batch_that_fits(cfg, one: dict, device) -> tuple[int, str]:
    """The "all" variant's batch: the config's, or the largest that fits in MEMORY_SHARE of the
    available memory when C x the one-AU run's activation memory does not; and why."""
    per_image = max(one["peak_bytes"] - one["base_bytes"], 1) / one["batch_size"]
    aus = len(cfg.resolved_aus())
    need, free = aus * per_image * cfg.batch_size, available_memory(device)
    if need <= MEMORY_SHARE * free:
        return cfg.batch_size, ""
    batch = max(1, int(MEMORY_SHARE * free // (aus * per_image)))
    return batch, (f"strategy 'all' at batch {cfg.batch_size} needs ~{need / 2**30:.1f} GiB ({aus} x {cfg.batch_size} "
                   f"stacked images, from the one-AU run's {per_image / 2**20:.0f} MiB per image); "
                   f"{free / 2**30:.1f} GiB available on {device.type}: ran at batch {batch}")


def dry_run(cfg: ExperimentConfig, steps: int = 2, keep: bool = False) -> dict:
    """Run the dry run of ``cfg`` (normally the paper profile) on its SynthAU twin; ``steps``
    training steps per variant (two epochs of ``steps // 2``). Returns every figure."""
    steps_per_epoch = max(1, int(steps) // 2)
    device = pick_device(cfg.device)
    work = Path(tempfile.mkdtemp(prefix="renet_dryrun_"))
    cfg = cfg.replace(root=None, data="synthetic", results_dir=str(work / "runs"), force=False, epochs=2,
                      steps_per_epoch=steps_per_epoch, patience=max(cfg.patience, 2), val_max_frames=None)
    report = {"device": str(device), "device_name": device_name(device), "batch_size": cfg.batch_size,
              "image_size": cfg.image_size, "num_workers": cfg.num_workers, "amp": cfg.amp,
              "torch": torch.__version__, "variants": {}}
    try:
        start = time.perf_counter()
        splits = load_splits(cfg)
        report["prepare_s"] = time.perf_counter() - start
        report.update(_shapes(cfg, splits))
        eval_batch = cfg.eval_batch_size or cfg.batch_size
        splits = Splits(splits.train, splits.val.head(eval_batch).reset_index(drop=True),
                        splits.test.head(eval_batch).reset_index(drop=True), splits.source, splits.synthetic)
        report.update(source=splits.source, frames={"train": len(splits.train), "val": len(splits.val),
                                                    "test": len(splits.test)})
        say(f"dry run on {report['device_name']}: {splits.source}; crops {report['crop_side']} px -> "
            f"{cfg.image_size} px items, batch {cfg.batch_size}, {2 * steps_per_epoch} steps per model "
            f"(kill and resume after {steps_per_epoch}), {cfg.num_workers} loader worker(s)")
        pretrained = _initial_weights(cfg)
        for model, strategy in VARIANTS:
            name = variant_name(model, strategy)
            vcfg = cfg.replace(model=model, strategy=strategy)
            note = ""
            if model == "renet" and strategy == "all" and "renet (one)" in report["variants"]:
                batch, note = _batch_that_fits(vcfg, report["variants"]["renet (one)"], device)
                vcfg = vcfg.replace(batch_size=batch)
                if note:
                    say(f"dry run: {note}")
            say(f"dry run: {name} ...")
            figures = _run_variant(vcfg, splits, pretrained, device)
            figures["note"] = note
            report["variants"][name] = figures
            say(f"dry run: {name}: " + _line(figures, device))
        report["process_peak_rss_bytes"] = process_peak_rss()
        report["total_s"] = time.perf_counter() - start
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return report


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({psutil.cpu_count(logical=True)} logical CPUs, {torch.get_num_threads()} torch threads)"


def _line(figures: dict, device) -> str:
    memory = "peak GPU memory" if device.type == "cuda" else "peak RSS"
    return (f"batch {figures['batch_size']}, {figures['s_per_step'][1]:.2f} s/step after the resume "
            f"({figures['s_per_step'][0]:.2f} in epoch 1; first batch after {figures['first_batch_s'][1]:.2f} s), "
            f"{figures['images_per_s']:.1f} images/s; "
            f"validation batch {figures['validation_s']:.1f} s, test batch {figures['test_s']:.1f} s "
            f"(scores {figures['test_scores_shape']}); {memory} {figures['peak_bytes'] / 2**30:.2f} GiB; "
            f"checkpoints {figures['checkpoint_mb']} MB")


def summary(report: dict) -> str:
    """The dry run's figures as a short text table."""
    device = torch.device(report["device"])
    memory = "peak GPU GiB" if device.type == "cuda" else "peak RSS GiB"
    lines = [f"paper-shape dry run on {report['device_name']} (torch {report['torch']}): {report['source']}",
             f"crops {report['crop_side']} px -> {report['image_size']} px, loader workers {report['num_workers']}, "
             f"data ready in {report['prepare_s']:.1f} s",
             f"{'variant':<14}{'batch':>6}{'s/step':>9}{'images/s':>10}{'val s':>8}{'test s':>8}{memory:>14}"]
    for name, f in report["variants"].items():
        lines.append(f"{name:<14}{f['batch_size']:>6}{f['s_per_step'][1]:>9.2f}{f['images_per_s']:>10.1f}"
                     f"{f['validation_s']:>8.1f}{f['test_s']:>8.1f}{f['peak_bytes'] / 2**30:>14.2f}")
        if f["note"]:
            lines.append(f"  note: {f['note']}")
    lines.append(f"process peak RSS {report['process_peak_rss_bytes'] / 2**30:.2f} GiB; total {report['total_s']:.0f} s; "
                 "checkpoint, kill and resume verified for every variant")
    return "\n".join(lines)
