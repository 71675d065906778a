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
  AU choice, augmentation) is seeded from (seed, epoch), so a run resumed from ``last.pt`` ends
  exactly where an uninterrupted run ends (on the CPU). When a run (re)starts,
  :func:`check_checkpoints` removes temp files of killed writers and makes a missing or corrupt
  ``best.pt`` an error then (with the fix), never a silent test of the last epoch's weights.
* A NaN or infinite loss stops the run (:class:`NonFiniteLossError`); ``last.pt`` still holds
  the last good epoch.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset
from tqdm.auto import tqdm

from . import ddp, metrics
from .io import remove_partial_files, torch_save_atomic
from .model import AUBatchNorm2d, read_checkpoint, save_checkpoint


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ------------------------------------------------------------------------ batches and devices

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


def to_device(batch, device: torch.device, channels_last: bool):
    images, target, mask = batch
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, target.to(device, non_blocking=non_blocking), mask.to(device, non_blocking=non_blocking)


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch): shuffling, AU choice and augmentation of that epoch."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**31 - 1)


def train_loader(dataset: Dataset, cfg, epoch: int, info: ddp.DistInfo, pin: bool) -> DataLoader:
    """Shuffled batches for one epoch; ``cfg.steps_per_epoch`` caps the number of batches."""
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    drop_last = len(dataset) > cfg.batch_size
    if info.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        n = len(dataset) if not cfg.steps_per_epoch else cfg.steps_per_epoch * cfg.batch_size
        sampler = RandomSampler(dataset, num_samples=n, generator=generator)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=cfg.num_workers, pin_memory=pin, generator=generator,
                      persistent_workers=False)


def eval_loader(dataset: Dataset, cfg, pin: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=cfg.eval_batch_size or cfg.batch_size, shuffle=False,
                      num_workers=cfg.num_workers, pin_memory=pin)


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
                per_au_loss: list | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss. ``per_au_loss``, when given (a
    list of C lists), collects every step's loss of each AU trained in that step."""
    model.train()
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + 1)
    channels_last = device.type == "cuda" and cfg.channels_last
    scaler = torch.amp.GradScaler("cuda", enabled=uses_fp16(device, cfg.amp))
    total, steps = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not (cfg.progress and info.is_main))
    for step, batch in enumerate(bar):
        if cfg.steps_per_epoch and step >= cfg.steps_per_epoch:
            break
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
        bar.set_postfix(loss=f"{total / steps:.4f}")
    return total / max(steps, 1)


# ------------------------------------------------------------------------------- evaluation

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
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + 3)
    sampler = RandomSampler(dataset, num_samples=min(batches * cfg.batch_size, max(len(dataset), cfg.batch_size)),
                            generator=generator)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers)
    channels_last = device.type == "cuda" and cfg.channels_last
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
    channels_last = device.type == "cuda" and cfg.channels_last
    truth, scores, kept, n_kept = [], [], [], 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=not cfg.progress):
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


# ------------------------------------------------------------------------------- checkpoints

def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restart_hint(run_dir: Path) -> str:
    return (f"delete the run folder {run_dir} to train this run from scratch, or rerun with "
            f"force=True (CLI: --force)")


def _read_run_checkpoint(path: Path) -> dict:
    """:func:`read_checkpoint` of a run's ``last.pt``/``best.pt``; errors name the fix."""
    try:
        return read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"{exc}; {_restart_hint(path.parent)}") from exc


def _drop_unvouched(best: Path, why: str) -> None:
    if best.exists():
        best.unlink(missing_ok=True)
        tqdm.write(f"removed {best} ({why}; it is not this run's best epoch)")


def check_checkpoints(run_dir: str | Path) -> dict | None:
    """Make ``run_dir`` safe to (re)start a run in, before any data is prepared or epoch trained;
    returns the training state saved in ``last.pt`` (None: the run starts from scratch).

    * Temporary files of checkpoints (or other files) whose writer was killed are removed.
    * An unreadable ``last.pt`` is an error naming the fix.
    * ``best.pt`` must hold the epoch that ``last.pt`` records as the best. Missing, unreadable or
      of another epoch, it is rewritten from ``last.pt`` when the best epoch is the last finished
      one (a kill between the two writes: ``last.pt`` holds those very weights); otherwise the
      best weights are lost, and that is an error naming the fix -- never a silent test of the
      last epoch's weights.
    * A ``best.pt`` that no ``last.pt`` vouches for (a run killed during its first epoch, a
      ``last.pt`` deleted by hand, no epoch ever improved) is removed: it is not this run's.
    """
    run_dir = Path(run_dir)
    remove_partial_files(run_dir)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if not last.exists():
        _drop_unvouched(best, f"no {last.name}: the run starts from scratch")
        return None
    payload = _read_run_checkpoint(last)
    if not isinstance(payload.get("train_state"), dict):
        raise ValueError(f"checkpoint {last} holds no training state (not a last.pt of a run); "
                         f"{_restart_hint(run_dir)}")
    state = payload["train_state"]
    best_epoch, epoch = int(state.get("best_epoch", 0)), int(state.get("epoch", 0))
    if best_epoch <= 0:
        _drop_unvouched(best, f"{last.name} records no best epoch")
        return state
    problem = None
    if not best.exists():
        problem = "is missing"
    else:
        try:
            found = read_checkpoint(best)
        except ValueError as exc:
            problem = f"is unreadable ({exc})"
        else:
            same_model = all(found.get(k) == payload.get(k) for k in ("kind", "task", "aus"))
            if found.get("epoch") != best_epoch or not same_model:
                problem = (f"holds epoch {found.get('epoch')} of a {found.get('kind')} model, not the "
                           f"best epoch {best_epoch} recorded in {last.name}")
    if problem is None:
        return state
    if best_epoch == epoch:
        keep = {k: v for k, v in payload.items() if k not in ("optimizer", "train_state", "rng")}
        keep["epoch"] = best_epoch
        torch_save_atomic(keep, best)
        tqdm.write(f"{best} {problem}; rewritten from {last.name} (the best epoch, {best_epoch}, is its last)")
        return state
    raise ValueError(f"{best} {problem}: the weights of the best epoch ({best_epoch} of {epoch} trained) "
                     f"are lost, and testing another epoch's would be a wrong result; {_restart_hint(run_dir)}")


def _restore(model, optimizer, path: Path) -> dict:
    """Load ``last.pt`` into ``model`` and ``optimizer``; returns the saved training state."""
    payload = _read_run_checkpoint(path)
    try:
        ddp.unwrap(model).load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} does not match this run's model/optimizer ({exc}); "
                         f"{_restart_hint(path.parent)}") from exc
    torch.set_rng_state(payload["rng"]["torch"])
    return payload["train_state"]


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
    """Adam (section 4.3) over :func:`parameter_groups`; each group keeps its ``base_lr``."""
    groups = parameter_groups(model, cfg)
    for group in groups:
        group["base_lr"] = group["lr"]
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


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

    Leaves the best epoch's weights in ``model`` (the last epoch's if there is no validation
    set) and returns the list of per-epoch records (loss, validation score, seconds).
    """
    run_dir = Path(run_dir)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    trainable = [k for k, au in enumerate(ddp.unwrap(model).aus) if au not in set(cfg.holdout_aus or [])]
    if not trainable:
        raise ValueError(f"every AU of {ddp.unwrap(model).aus} is held out: nothing to train")
    pin = device.type == "cuda"
    wrapped = ddp.wrap(model, info, device)
    optimizer = make_optimizer(ddp.unwrap(model), cfg)
    state = {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    if info.is_main:
        check_checkpoints(run_dir)   # bad best.pt / last.pt: an error now, not after training
    ddp.barrier(info)
    if last.exists():
        state = _restore(model, optimizer, last)
        if info.is_main:
            tqdm.write(f"resuming {run_dir.name} after epoch {state['epoch']} (best {state['best_score']:.4f} "
                       f"at epoch {state['best_epoch']})")
    stop = state["bad_epochs"] >= cfg.patience and val_set is not None
    val_loader = eval_loader(val_set, cfg, pin) if val_set is not None and len(val_set) else None
    while state["epoch"] < cfg.epochs and not stop:
        epoch, start = state["epoch"], time.time()
        torch.manual_seed(epoch_seed(cfg.seed, epoch) + 2)  # augmentation in the main process
        per_au_loss = [[] for _ in ddp.unwrap(model).aus]
        loss = train_epoch(wrapped, train_loader(train_set, cfg, epoch, info, pin), optimizer, cfg,
                           epoch, device, trainable, info, per_au_loss)
        refresh_statistics(wrapped, train_set, cfg, epoch, device)
        train_seconds = time.time() - start
        au_loss = [float(torch.stack(v).float().mean()) if v else float("nan") for v in per_au_loss]
        record = {"epoch": epoch + 1, "loss": loss, "val": float("nan"), "seconds": 0.0,
                  "train_seconds": train_seconds, "loss_per_au": au_loss, "val_per_au": []}
        improved = True
        if info.is_main and val_loader is not None:
            pred = predict(model, val_loader, device, cfg, "validate")
            record["val"] = validation_score(pred, cfg, trainable)
            key = "f1" if cfg.task == "occurrence" else "icc"
            record["val_per_au"] = [float(v) for v in score_predictions(pred, cfg)[key]]
            improved = record["val"] > state["best_score"]
        record["seconds"] = time.time() - start
        state["epoch"] = epoch + 1
        state["history"].append(record)
        if improved:
            state.update(best_score=record["val"] if val_loader is not None else -math.inf,
                         best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        stop = ddp.broadcast_flag(val_loader is not None and state["bad_epochs"] >= cfg.patience, info)
        if info.is_main:
            # last.pt first: killed between the two writes, last.pt's weights are the best epoch's,
            # from which check_checkpoints rewrites best.pt
            save_checkpoint(last, model, cfg, optimizer=optimizer.state_dict(), train_state=state,
                            rng=_rng_state(), epoch=epoch + 1)
            if improved:
                save_checkpoint(best, model, cfg, epoch=epoch + 1)
            name = "val F1" if cfg.task == "occurrence" else "val ICC"
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss:.4f}  {name} {record['val']:.4f}  "
                       f"(best {state['best_score']:.4f} @ {state['best_epoch']})  {record['seconds']:.1f}s")
        ddp.barrier(info)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, state)
    ddp.assert_replicas_in_sync(wrapped, info)
    if info.is_main and state["best_epoch"] > 0:
        # the best epoch's weights, or an error: never a silent test of the last epoch's
        payload = _read_run_checkpoint(best)
        if payload.get("epoch") != state["best_epoch"]:
            raise ValueError(f"{best} holds epoch {payload.get('epoch')}, not the best epoch "
                             f"{state['best_epoch']} (changed during the run?); {_restart_hint(run_dir)}")
        ddp.unwrap(model).load_state_dict(payload["state_dict"])
    elif not info.is_main and best.exists():
        ddp.unwrap(model).load_state_dict(read_checkpoint(best)["state_dict"])
    return state["history"]
