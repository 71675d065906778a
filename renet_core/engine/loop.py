"""The training and evaluation loop (section 4.3), small enough to read in one sitting.

* Loss: Eq. 6, binary cross-entropy per AU (occurrence), or cross-entropy over the 6 intensity
  levels (section 4.5); frames whose label is unknown are masked out of an AU's loss.
* Strategies (section 3.4): ``"one"`` picks one random AU per batch and runs ``model(x, au=k)``
  (the paper's default); ``"all"`` runs ``model(x)`` and sums the per-AU losses. The ResNet-18
  baseline always uses one pass over all AUs.
* Adam, lr 1e-4, batch 100 (section 4.3); early stopping on a subject-exclusive validation split
  (mean validation F1 over AUs, or mean ICC(3,1) for intensity) with ``patience`` epochs.
* A checkpoint after every epoch (``last.pt``: weights, optimizer, epoch, early-stopping state,
  RNG state) and of the best epoch (``best.pt``). Every epoch's randomness (shuffling, random
  AU choice) is seeded from (seed, epoch), and each training item's augmentation from (seed,
  epoch, item) (:class:`renet_core.data.dataset.AUDataset`), so a run resumed from ``last.pt``
  ends exactly where an uninterrupted run ends (on the CPU), for any number of loader workers.
  When a run (re)starts, :func:`renet_core.engine.resume.check_checkpoints` removes temp files of killed writers and makes a missing or corrupt
  ``best.pt`` an error then (with the fix), never a silent test of the last epoch's weights.
* Inside an epoch, ``part.pt`` every ``cfg.checkpoint_seconds`` (:class:`renet_core.engine.resume.PartSaver`):
  a run cut mid-epoch resumes at the step it reached, with the same result.
* A NaN or infinite loss stops the run (:class:`NonFiniteLossError`), and so do NaN or infinite
  weights or BN statistics at the end of an epoch (:class:`NonFiniteWeightsError`, checked before
  the epoch is saved); ``last.pt`` still holds the last good epoch and the run is not done.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from renet_core.base import ddp
from renet_core.base.progress import bar, say
from renet_core.engine.evaluate import (
    NonFiniteError,
    check_finite_weights,
    predict,
    refresh_statistics,
    score_predictions,
    validation_score,
)
from renet_core.engine.precision import (
    autocast,
    epoch_seed,
    eval_loader,
    to_device,
    train_loader,
    uses_channels_last,
    uses_fp16,
)
from renet_core.engine.resume import PART, PartSaver, read_part, read_run_checkpoint, restart_hint, restore, rng_state
from renet_core.model import read_checkpoint, save_checkpoint


class NonFiniteLossError(NonFiniteError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------------- losses

def masked_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, task: str) -> torch.Tensor:
    """Mean loss of one AU over the frames whose label is known (Eq. 6 for occurrence); zero
    (still attached to the graph, as DDP needs) when no frame of the batch has a known label."""
    if not bool(mask.any()):
        return logits.float().sum() * 0.0
    logits, target = logits[mask], target[mask]
    if task == "occurrence":
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return F.cross_entropy(logits.float(), target.round().long().clamp(0, logits.shape[-1] - 1))


def batch_loss(model, images, target, mask, cfg, trainable: list[int], generator: torch.Generator,
               per_au: dict[int, torch.Tensor] | None = None):
    """The training loss of one batch (Eq. 6: summed over AUs, averaged over frames).

    ``trainable`` are the AU columns that may be learned (all but ``cfg.holdout_aus``). With
    strategy "one" the AU is drawn from ``generator``, which every DDP process seeds alike.
    ``per_au``, when given, receives each trained AU's detached loss (column index -> tensor; no
    device sync per step), so that
    the two strategies and the baseline can be compared per AU (training-dynamics study).
    """
    if ddp.unwrap(model).kind == "renet" and cfg.strategy == "one":
        k = trainable[int(torch.randint(len(trainable), (1,), generator=generator))]
        loss = masked_loss(model(images, au=k), target[:, k], mask[:, k], cfg.task)
        if per_au is not None and bool(mask[:, k].any()):
            per_au[k] = loss.detach()
        return loss
    out = model(images)  # [B, C] or [B, C, 6]: all AUs in one pass (strategy 1; the baseline)
    losses = {k: masked_loss(out[:, k], target[:, k], mask[:, k], cfg.task) for k in trainable}
    if per_au is not None:
        per_au.update({k: v.detach() for k, v in losses.items() if bool(mask[:, k].any())})
    return sum(losses.values())


def train_epoch(model, loader, optimizer, cfg, epoch: int, device, trainable, info,
                per_au_loss: list | None = None, timing: dict | None = None,
                part: dict | None = None, saver: PartSaver | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss. ``per_au_loss``, when given (a
    list of C lists), collects every step's loss of each AU trained in that step; ``timing``
    receives ``first_batch_seconds``, the wait for the loader's first batch (its workers' start).
    ``part``: the in-epoch state of a mid-epoch checkpoint (:func:`read_part`, weights and
    optimiser already loaded): the batches it trained are read but not trained again. ``saver``
    writes such a checkpoint when one is due."""
    model.train()
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + 1)
    channels_last = uses_channels_last(device, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=uses_fp16(device, cfg.amp))
    total, steps, done_steps = 0.0, 0, 0
    if part is not None:
        done_steps, total, steps = int(part["step"]), float(part["total"]), int(part["steps"])
        generator.set_state(part["generator"])
        scaler.load_state_dict(part["scaler"])
        if per_au_loss is not None:
            for k, values in enumerate(part["per_au_loss"]):
                per_au_loss[k].extend(values.unbind())
    steps_bar = bar(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not (cfg.progress and info.is_main))
    start = time.time()
    for step, batch in enumerate(steps_bar):
        if cfg.steps_per_epoch and step >= cfg.steps_per_epoch:
            break
        if step < done_steps:
            continue   # trained before the cut: read (its random draws replayed), not trained again
        if step == 0 and timing is not None:
            timing["first_batch_seconds"] = time.time() - start
        images, target, mask = to_device(batch, device, channels_last)
        with autocast(device, cfg.amp):
            step_losses: dict[int, torch.Tensor] = {}
            loss = batch_loss(model, images, target, mask, cfg, trainable, generator, step_losses)
        if per_au_loss is not None:
            for k, value in step_losses.items():
                per_au_loss[k].append(value)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; the run "
                f"stopped and its last checkpoint (end of epoch {epoch}) is kept. Try a lower lr or amp='off'."
            )
        set_learning_rate(optimizer, cfg, epoch, step, len(loader))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total, steps = total + loss.item(), steps + 1
        steps_bar.set_postfix(loss=f"{total / steps:.4f}")
        if saver is not None and saver.due():
            saver.save(model, optimizer, {
                "epoch": epoch, "step": step + 1, "total": total, "steps": steps,
                "generator": generator.get_state(), "scaler": scaler.state_dict(),
                "per_au_loss": [torch.stack(v) if v else torch.empty(0) for v in (per_au_loss or [])],
                "seconds": (part or {}).get("seconds", 0.0) + time.time() - start,
                "first_batch_seconds": (timing or {}).get("first_batch_seconds", 0.0)})
    return total / max(steps, 1)


def parameter_groups(model, cfg) -> list[dict]:
    """Adam's parameter groups: the shared parameters at ``cfg.lr``; RE-Net's AU-specific ones
    (``model.au_specific_parameters()``, theta_c of section 3.1) at ``cfg.lr * cfg.au_lr_scale``.
    With ``au_lr_scale == 1`` (the paper) this is one group, as ``Adam(model.parameters())``."""
    scale = cfg.lr_scale()
    specific = model.au_specific_parameters() if scale != 1.0 else []
    ids = {id(p) for p in specific}
    shared = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": shared, "lr": cfg.lr}]
    if specific:
        groups.append({"params": specific, "lr": cfg.lr * scale})
    return groups


def make_optimizer(model, cfg) -> torch.optim.Optimizer:
    """Adam (section 4.3) over :func:`parameter_groups`; each group keeps its ``base_lr``.
    ``cfg.adam_impl`` picks torch's kernels (a speed lever, issue 33): "default" leaves the
    choice to torch (per tensor on the CPU), "foreach" and "fused" ask for those implementations."""
    groups = parameter_groups(model, cfg)
    for group in groups:
        group["base_lr"] = group["lr"]
    impl = getattr(cfg, "adam_impl", "default")
    kernels = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(impl, {})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kernels)


def lr_factor(cfg, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at (epoch, step): 1 for ``lr_schedule="constant"`` (the paper);
    for ``"cosine"`` half a cosine from 1 to 0 over ``cfg.epochs`` epochs (the planned length;
    early stopping may end sooner). A function of the position only, so resuming is exact."""
    if getattr(cfg, "lr_schedule", "constant") != "cosine":
        return 1.0
    per_epoch = int(cfg.steps_per_epoch or steps_per_epoch or 1)
    total = max(1, int(cfg.epochs) * per_epoch)
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch * per_epoch + step, total) / total))


def set_learning_rate(optimizer, cfg, epoch: int, step: int, steps_per_epoch: int) -> None:
    factor = lr_factor(cfg, epoch, step, steps_per_epoch)
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * factor


def fit(model, train_set: Dataset, val_set: Dataset | None, cfg, run_dir: Path, device: torch.device,
        info: ddp.DistInfo = ddp.DistInfo(), on_epoch_end: Callable[[int, dict], None] | None = None):
    """Train ``model`` (Adam, early stopping); resume from ``run_dir/last.pt`` if it exists.

    The caller checks the run folder first (:func:`renet_core.engine.resume.check_checkpoints`,
    as :func:`renet_core.engine.execute.execute` does before any data is prepared). Leaves the
    best epoch's weights in ``model`` (the last epoch's if there is no validation set) and returns
    the list of per-epoch records (loss, validation score, seconds).
    """
    run_dir = Path(run_dir)
    last = run_dir / "last.pt"
    trainable = [k for k, au in enumerate(ddp.unwrap(model).aus) if au not in set(cfg.holdout_aus or [])]
    if not trainable:
        raise ValueError(f"every AU of {ddp.unwrap(model).aus} is held out: nothing to train")
    pin = device.type == "cuda"
    wrapped = ddp.wrap(model, info, device)
    optimizer = make_optimizer(ddp.unwrap(model), cfg)
    state = {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    ddp.barrier(info)
    if last.exists():
        state = restore(model, optimizer, last)
        if info.is_main:
            say(f"resuming {run_dir.name} after epoch {state['epoch']} (best {state['best_score']:.4f} "
                f"at epoch {state['best_epoch']})")
    stop = state["bad_epochs"] >= cfg.patience and val_set is not None
    # mid-epoch checkpoints: single-process runs only (a DDP run resumes at its last epoch)
    saver = PartSaver(run_dir, cfg) if not info.enabled else None
    part = read_part(run_dir, state["epoch"], model, optimizer) if saver is not None and not stop else None
    if saver is None and info.is_main:
        (run_dir / PART).unlink(missing_ok=True)
    val_loader = eval_loader(val_set, cfg, pin) if val_set is not None and len(val_set) else None
    while state["epoch"] < cfg.epochs and not stop:
        epoch = state["epoch"]
        record = _train_and_validate(wrapped, model, train_set, val_loader, optimizer, cfg, epoch, device,
                                     trainable, info, pin, part, saver)
        part = None
        check_finite_weights(model, f"run {run_dir.name}, epoch {epoch + 1}")   # before it is saved as trained
        improved = val_loader is None or not info.is_main or record["val"] > state["best_score"]
        state["epoch"] = epoch + 1
        state["history"].append(record)
        if improved:
            state.update(best_score=record["val"] if val_loader is not None else -math.inf,
                         best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        stop = ddp.broadcast_flag(val_loader is not None and state["bad_epochs"] >= cfg.patience, info)
        if info.is_main:
            _save_epoch(run_dir, model, cfg, optimizer, state, improved, record)
            if saver is not None:
                saver.clear()   # the epoch is in last.pt now
        ddp.barrier(info)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, state)
    ddp.assert_replicas_in_sync(wrapped, info)
    _load_best(model, run_dir, state, info)
    return state["history"]


def _train_and_validate(wrapped, model, train_set, val_loader, optimizer, cfg, epoch: int, device, trainable,
                        info, pin: bool, part: dict | None = None, saver: PartSaver | None = None) -> dict:
    """One epoch: training, the BN refresh, and validation on the main process; its record. An
    epoch resumed from ``part`` counts the seconds trained before the cut."""
    start = time.time() - (float(part["seconds"]) if part is not None else 0.0)
    torch.manual_seed(epoch_seed(cfg.seed, epoch) + 2)  # datasets drawing from the global RNG (not AUDataset)
    per_au_loss, timing = [[] for _ in ddp.unwrap(model).aus], {"first_batch_seconds": 0.0}
    if part is not None:
        timing["first_batch_seconds"] = float(part.get("first_batch_seconds", 0.0))
    loss = train_epoch(wrapped, train_loader(train_set, cfg, epoch, info, pin), optimizer, cfg,
                       epoch, device, trainable, info, per_au_loss, timing, part, saver)
    refresh_statistics(wrapped, train_set, cfg, epoch, device)
    train_seconds = time.time() - start
    au_loss = [float(torch.stack(v).float().mean()) if v else float("nan") for v in per_au_loss]
    record = {"epoch": epoch + 1, "loss": loss, "val": float("nan"), "seconds": 0.0,
              "train_seconds": train_seconds, "first_batch_seconds": timing["first_batch_seconds"],
              "loss_per_au": au_loss, "val_per_au": []}
    if info.is_main and val_loader is not None:
        pred = predict(model, val_loader, device, cfg, "validate")
        record["val"] = validation_score(pred, cfg, trainable)
        key = "f1" if cfg.task == "occurrence" else "icc"
        record["val_per_au"] = [float(v) for v in score_predictions(pred, cfg)[key]]
    record["seconds"] = time.time() - start
    return record


def _save_epoch(run_dir: Path, model, cfg, optimizer, state: dict, improved: bool, record: dict) -> None:
    """``last.pt`` first, then ``best.pt`` when the epoch improved: killed between the two
    writes, last.pt's weights are the best epoch's, from which check_checkpoints rewrites best.pt."""
    epoch = state["epoch"]
    save_checkpoint(run_dir / "last.pt", model, cfg, optimizer=optimizer.state_dict(), train_state=state,
                    rng=rng_state(), epoch=epoch)
    if improved:
        save_checkpoint(run_dir / "best.pt", model, cfg, epoch=epoch)
    name = "val F1" if cfg.task == "occurrence" else "val ICC"
    say(f"epoch {epoch}/{cfg.epochs}  loss {record['loss']:.4f}  {name} {record['val']:.4f}  "
        f"(best {state['best_score']:.4f} @ {state['best_epoch']})  {record['seconds']:.1f}s")


def _load_best(model, run_dir: Path, state: dict, info) -> None:
    """The best epoch's weights into ``model``, or an error: never a silent test of the last
    epoch's."""
    best = run_dir / "best.pt"
    if info.is_main and state["best_epoch"] > 0:
        payload = read_run_checkpoint(best)
        if payload.get("epoch") != state["best_epoch"]:
            raise ValueError(f"{best} holds epoch {payload.get('epoch')}, not the best epoch "
                             f"{state['best_epoch']} (changed during the run?); {restart_hint(run_dir)}")
        ddp.unwrap(model).load_state_dict(payload["state_dict"])
    elif not info.is_main and best.exists():
        ddp.unwrap(model).load_state_dict(read_checkpoint(best)["state_dict"])
