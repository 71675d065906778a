"""One run: train and evaluate one fold of a config whose initial weights are resolved, and
file its checkpoints, predictions and result rows in the results store (section 4.3).

:func:`renet_core.engine.run.run` is what users call: it resolves ``pretrained="standin"`` first
(:mod:`renet_core.engine.standin`, itself a run of this module) and then calls :func:`execute`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from renet_core import __version__
from renet_core.base import ddp, metrics
from renet_core.base.device import pick_device, torch_threads
from renet_core.base.environment import environment_key, environment_record, read_environment, write_environment
from renet_core.base.io import TIME_FORMAT, locked
from renet_core.base.progress import say
from renet_core.engine.config import ExperimentConfig
from renet_core.engine.evaluate import check_finite_outputs, predict, score_predictions
from renet_core.engine.identity import IDENTITY_EXCLUDED
from renet_core.engine.loop import fit
from renet_core.engine.precision import amp_dtype, eval_loader, uses_channels_last
from renet_core.engine.resume import check_checkpoints, training_state, unfinished
from renet_core.engine.splits import Splits, describe_data, load_splits, make_dataset, relation_from_training
from renet_core.engine.store import ResultsStore
from renet_core.model import build_model, load_checkpoint
from renet_core.model.pretrained import pretrained_state_dict

#: The run folder's lock file (:func:`run_lock`).
RUN_LOCK = ".run.lock"


@dataclass
class RunResult:
    """What a run returns: the result rows and where everything was written."""

    config_hash: str
    rows: pd.DataFrame
    run_dir: Path
    skipped: bool = False
    history: list = field(default_factory=list)

    def per_au(self, metric: str) -> pd.Series:
        sel = self.rows[self.rows["metric"] == metric]
        return pd.Series(sel["value"].to_numpy(), index=sel["au"].to_numpy(), name=metric)


def as_config(config) -> ExperimentConfig:
    """``config`` (an ExperimentConfig or a dict of its fields) as a checked ExperimentConfig."""
    cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config)
    return cfg.validated()


def finished(cfg: ExperimentConfig) -> RunResult | None:
    """The stored result of ``cfg`` when its run is done and ``force`` is off, else None. When
    results.csv lacks some of the run's rows (a lost or cut file, a deleted line), they are
    rebuilt from its saved predictions (:func:`stored_rows`)."""
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    if cfg.force or not store.is_done(key):
        return None
    return RunResult(key, stored_rows(cfg, store), store.run_dir(key), skipped=True)


def stored_rows(cfg: ExperimentConfig, store: ResultsStore) -> pd.DataFrame:
    """A done run's result rows: from results.csv, or, when some are missing there, rebuilt from
    the run's ``predictions.npz`` and ``done.json`` (and written back); a run without either is an
    error naming the files and the fix."""
    key = cfg.config_hash()
    rows = store.load()
    rows = rows[rows["config_hash"].astype(str) == key].reset_index(drop=True)
    expected = len(cfg.resolved_aus()) * (1 if cfg.task == "occurrence" else 2)
    if len(rows) >= expected:
        return rows
    try:
        pred = store.load_predictions(key)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"run {key} is done, but {store.csv} holds {len(rows)} of its {expected} result rows and "
                         f"they cannot be rebuilt: {exc}") from None
    summary = store.done_summary(key)
    source, synthetic = ((summary["data_source"], bool(summary.get("synthetic"))) if "data_source" in summary
                         else describe_data(cfg))
    history = summary.get("history") or []
    rebuilt = result_rows(cfg, score_predictions(pred, cfg), source, synthetic, n_test=len(pred["y_true"]),
                          epochs_trained=len(history) or None)
    store.add_rows(rebuilt)
    say(f"run {key}: {len(rows)} of its {expected} result rows were in {store.csv}; rebuilt from its saved "
        "predictions")
    return rebuilt


def execute(cfg: ExperimentConfig, splits: Splits | None = None, on_epoch_end: Callable[[int, dict], None] | None = None,
            dataset_factory=None, pretrained: str | os.PathLike | None = None) -> RunResult:
    """Train and evaluate one fold of ``cfg`` from the initial weights ``pretrained`` (None,
    "imagenet" or a state_dict file, read before any data is prepared: never "standin", which
    :func:`renet_core.engine.run.run` resolves); write checkpoints, predictions and result rows.
    A finished config is returned from the store unless ``cfg.force``; an interrupted one
    resumes from ``last.pt``. ``splits`` and
    ``dataset_factory(frames, cfg, train)`` bypass the data layer (tests, own frames)."""
    done = finished(cfg)
    if done is not None:
        return done
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    info = ddp.env_info()
    with run_lock(store, key, info.is_main), torch_threads(cfg.resolved_threads()):
        done = finished(cfg)     # one process trains a run; another waits, then reuses it
        if done is not None:
            return done
        return _execute(cfg, store, key, info, splits, on_epoch_end, dataset_factory, pretrained)


def run_lock(store: ResultsStore, key: str, take: bool = True):
    """The run's lock (``<run folder>/.run.lock``): held while a process trains or evaluates the run,
    so a second process (another notebook, ``train``) waits and then finds it done, and temp
    files in the run folder are removed only by the process that holds it (never a live writer's)."""
    if not take:
        return contextlib.nullcontext()
    return locked(store.run_dir(key) / RUN_LOCK, waiting=lambda: say(
        f"run {key} is being trained or evaluated by another process; waiting for it to finish"))


def _execute(cfg, store, key, info, splits, on_epoch_end, dataset_factory, pretrained) -> RunResult:
    started = time.time()
    run_dir = store.run_dir(key)
    if cfg.force and info.is_main:
        for name in ("done.json", "last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    resumed = None
    if info.is_main:   # temp files of killed runs go; a bad best.pt/last.pt fails now, before any data work
        resumed = check_checkpoints(run_dir)
    # a resumed run's wall seconds count the epochs an earlier process trained (their recorded
    # seconds), so run_all's estimates and the index's fresh-cache times stay whole after a restart
    earlier = sum(float(e.get("seconds") or 0.0) for e in (resumed or {}).get("history", []))
    weights = None if pretrained is None else pretrained_state_dict(pretrained)   # fails before any data work
    device = pick_device(cfg.device)
    info = ddp.setup(device)
    device = ddp.device_for(info, device)
    splits = splits or load_splits(cfg)
    make = dataset_factory or make_dataset
    if info.is_main:
        store.save_config(key, cfg.to_dict())
        record_environment(run_dir, device, cfg)
    model = _initial_model(cfg, splits, weights, device)
    val_set = make(splits.val, cfg, False) if len(splits.val) else None
    history = fit(model, make(splits.train, cfg, True), val_set, cfg, run_dir, device, info, on_epoch_end)
    rows = pd.DataFrame()
    if info.is_main:
        rows = evaluate_model(model, cfg, splits, store, device, make, history, started=started - earlier)
    ddp.barrier(info)
    ddp.cleanup(info)
    return RunResult(key, rows, run_dir, history=history)


def precision_name(device, amp: str) -> str:
    """The arithmetic ``amp`` resolves to on ``device``, in words: "float32", "bf16 autocast" or
    "fp16 autocast" (:func:`renet_core.engine.precision.amp_dtype`)."""
    dtype = amp_dtype(device, amp)
    return "float32" if dtype is None else {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]


def record_environment(run_dir: Path, device, cfg: ExperimentConfig, rescored: bool = False) -> dict:
    """Write where the run computes into ``<run dir>/environment.json`` (issue 32; not part of the
    identity). A run resumed or scored again in another environment keeps the first one's record
    under ``earlier``, so a run made in two places says so."""
    record = environment_record(device, torch.get_num_threads(), precision_name(device, cfg.amp))
    before = read_environment(run_dir)
    if before and environment_key(before) != environment_key(record):
        earlier = before.pop("earlier", [])
        record["earlier"] = [*earlier, before]
    elif before and before.get("earlier"):
        record["earlier"] = before["earlier"]
    if rescored:
        record["rescored"] = True
    write_environment(run_dir, record)
    return record


def _initial_model(cfg: ExperimentConfig, splits: Splits, pretrained, device):
    """The run's model before training: seeded, RE-Net's relation from the training labels."""
    torch.manual_seed(cfg.seed)
    relation = relation_from_training(pd.concat([splits.train, splits.val]), cfg) if cfg.model == "renet" else None
    try:
        model = build_model(cfg.model, cfg.resolved_aus(), cfg.task, relation=relation,
                            relation_mode=cfg.relation_mode, pretrained=pretrained,
                            denominator=cfg.denominator, head=cfg.head, seed=cfg.seed,
                            bn_momentum=cfg.bn_momentum, bn_warm_start=cfg.bn_warm_start).to(device)
    except ValueError as exc:
        if "denominator" not in str(exc):
            raise
        raise ValueError(f"{cfg.dataset} fold {cfg.fold}, relation from the training labels: {exc} "
                         "(config: denominator='abs')") from exc
    if uses_channels_last(device, cfg):
        model = model.to(memory_format=torch.channels_last)
    return model


def evaluate_model(model, cfg, splits: Splits, store: ResultsStore, device,
                   make=make_dataset, history=None, file: bool = True, started: float | None = None,
                   record: dict | None = None) -> pd.DataFrame:
    """Test-set evaluation of a trained model: predictions saved, rows written, run marked done
    (``file=False``: the rows are only returned, nothing is filed under the config's run). The
    run record (``done.json``) keeps the per-epoch history, the training steps and, given the
    run's ``started`` time, its wall seconds (data, training and test): what run_all's estimates
    of the time still to go are made of. ``record``: the training record of a run scored again
    (its history, steps and seconds are kept, not rebuilt). Non-finite outputs are an error
    (:class:`NonFiniteOutputError`) and file nothing."""
    key = cfg.config_hash()
    if cfg.holdout_aus:  # Table 6: derive unseen AUs' parameters from trained ones (Eq. 4-5)
        ddp.unwrap(model).derive_unseen_aus([cfg.resolved_aus().index(a) for a in cfg.holdout_aus])
    test_set = make(splits.test, cfg, False)
    loader = eval_loader(test_set, cfg, pin=device.type == "cuda")
    pred = predict(model, loader, device, cfg, desc="test", features=cfg.save_features)
    check_finite_outputs(pred["scores"], f"run {key} ({cfg.method_name()}, {cfg.dataset} fold {cfg.fold})")
    per_metric = score_predictions(pred, cfg)
    epochs = len(history) if history else None
    rows = result_rows(cfg, per_metric, source=splits.source, synthetic=splits.synthetic,
                       n_test=len(test_set), epochs_trained=epochs)
    if not file:
        return rows
    arrays = {"y_true": pred["y_true"], "scores": pred["scores"], "aus": np.array(cfg.resolved_aus()),
              "subject": np.asarray(splits.test["subject"].astype(str), dtype=str),
              "frame": np.asarray(splits.test["frame"].astype(str), dtype=str) if "frame" in splits.test else np.array([], dtype=str)}
    if cfg.task == "intensity":
        arrays["y_pred"] = metrics.decode_intensity(pred["scores"], cfg.intensity_rule)
    arrays.update({k: pred[k] for k in ("features", "features_index") if k in pred})
    store.save_predictions(key, **arrays)
    store.add_rows(rows)
    per_epoch = cfg.steps_per_epoch or len(splits.train) // cfg.batch_size
    summary = {"method": cfg.method_name(), "fold": cfg.fold, "finished": time.strftime(TIME_FORMAT),
               "model": cfg.model, "strategy": cfg.strategy, "steps": (epochs or 0) * per_epoch,
               "seconds": round(time.time() - started, 1) if started else None, "history": history or []}
    if record:   # the training record stays; a run scored again says when
        summary.update({k: record[k] for k in ("finished", "steps", "seconds", "history") if k in record})
        if "finished" in record:
            summary["rescored"] = time.strftime(TIME_FORMAT)
    summary.update({"data_source": splits.source, "synthetic": bool(splits.synthetic), "n_test": len(test_set),
                    **{m: float(np.nanmean(v)) for m, v in per_metric.items()}})
    store.mark_done(key, summary)
    return rows



def result_rows(cfg, per_metric: dict[str, np.ndarray], source: str, synthetic: bool,
                n_test: int, epochs_trained: int | None) -> pd.DataFrame:
    """Tidy rows: one per (dataset, task, method, fold, AU, metric)."""
    aus = cfg.resolved_aus()
    records = []
    for metric, values in per_metric.items():
        for au, value in zip(aus, values):
            records.append({"dataset": cfg.dataset, "task": cfg.task, "method": cfg.method_name(),
                            "fold": cfg.fold, "au": au, "metric": metric, "seed": cfg.seed,
                            "value": float(value), "config_hash": cfg.config_hash(),
                            "package_version": __version__, "data_source": source,
                            "synthetic": bool(synthetic), "profile": cfg.profile or "",
                            "n_test": n_test, "epochs_trained": epochs_trained,
                            "heldout": au in set(cfg.holdout_aus)})
    return pd.DataFrame.from_records(records)


def evaluate(config, checkpoint: str | os.PathLike | None = None, splits: Splits | None = None,
             dataset_factory=None, allow_other_run: bool = False, file: bool = True) -> pd.DataFrame:
    """Re-evaluate a trained run on its test fold from ``checkpoint`` (default: its ``best.pt``).

    The rows are filed under this config's run and mark it done, so a checkpoint whose model
    (kind, task, AUs, RE-Net's relation mode and head) differs from the config is refused before
    any data is prepared, naming each difference; so is a checkpoint trained under another run
    identity (another fold tests on its own training subjects), naming both runs.
    ``allow_other_run=True`` scores such a checkpoint on this config's test fold and returns the
    rows without filing them under any run.

    Only a whole training is filed (issue 31, cases 1-2): a run that is done keeps its training
    record (history, steps, seconds) and gets the new scores; a run that is not done is filed only
    when its ``last.pt`` shows all its epochs trained (or an early stop), and otherwise refused
    before any data is prepared, naming how far it got. ``file=False`` scores any of these and
    returns the rows without filing anything."""
    cfg = as_config(config)
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    own = store.run_dir(key) / "best.pt"
    path = Path(checkpoint) if checkpoint else own
    if not path.is_file():
        hint = "train this config first, or give the checkpoint to evaluate" if path == own else "check the path"
        raise FileNotFoundError(f"checkpoint not found: {path}; {hint}")
    device = pick_device(cfg.device)
    expect = {"model": cfg.model, "task": cfg.task, "aus": cfg.resolved_aus(),
              "relation_mode": cfg.relation_mode, "head": cfg.head}
    try:
        model, payload = load_checkpoint(path, aus=cfg.resolved_aus(), map_location="cpu", expect=expect)
    except ValueError as exc:
        if path != own and "config says" in str(exc):
            raise ValueError(f"{exc}: {own}") from None
        raise
    other = _other_run(payload, cfg)
    if other and not allow_other_run:
        raise ValueError(f"checkpoint {path} {other}, not under this config's run {key} ({cfg.dataset} fold "
                         f"{cfg.fold}, {cfg.method_name()}): scored as run {key} it could test on its own training "
                         f"subjects. Evaluate it with the config it was trained with, or pass allow_other_run=True "
                         f"(--allow-other-run) to score it here without filing it under run {key}")
    file = file and not other
    model.to(device)
    with run_lock(store, key, file), torch_threads(cfg.resolved_threads()):
        record = _training_record(cfg, store, key) if file else None
        if file:
            record_environment(store.run_dir(key), device, cfg, rescored=True)
        rows = evaluate_model(model, cfg, splits or load_splits(cfg), store, device, dataset_factory or make_dataset,
                              history=(record or {}).get("history"), file=file, record=record)
    # rows of another run's checkpoint say so: they carry its identity, not this config's
    return rows.assign(config_hash=str(payload.get("config_hash") or ""), checkpoint=str(path)) if other else rows


def _training_record(cfg: ExperimentConfig, store: ResultsStore, key: str) -> dict:
    """What a run's training left to be kept when it is filed by :func:`evaluate`: the record of a
    done run (``done.json``), else the whole training in ``last.pt``; a run short of its planned
    training is an error naming how far it got and the two ways on."""
    if store.is_done(key):
        return store.done_summary(key)
    run_dir = store.run_dir(key)
    state = training_state(run_dir)
    short = unfinished(state, cfg)
    if short:
        raise ValueError(f"run {key} ({cfg.method_name()}, {cfg.dataset} fold {cfg.fold}) {short}: scoring its "
                         "checkpoint would file a partly trained model under the identity of the whole budget. "
                         "Train it (python -m renet_core train with this config resumes it from last.pt), or "
                         "score the checkpoint without filing it (file=False, --no-file)")
    history = list(state.get("history") or [])     # killed after training, before its test: filed now
    return {"history": history, "seconds": round(sum(float(e.get("seconds") or 0) for e in history), 1)}


def _other_run(payload: dict, cfg: ExperimentConfig) -> str:
    """"" when the checkpoint was trained under ``cfg``'s run identity, else what it was trained
    as (its identity and the settings that differ; older checkpoints without an identity are
    judged by the config they carry)."""
    key, have = cfg.config_hash(), payload.get("config_hash")
    stored = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    if have is None and stored:
        try:
            have = ExperimentConfig.from_dict({k: v for k, v in stored.items() if k != "force"}).config_hash()
        except (TypeError, ValueError, OSError):
            have = None
    if have == key:
        return ""
    mine = cfg.to_dict()
    differ = [f"{k}={stored[k]!r} (config: {mine[k]!r})" for k in sorted(stored)
              if k in mine and k not in IDENTITY_EXCLUDED and stored[k] != mine[k]]
    what = f"was trained as run {have}" if have else "records no run identity (nor a config to derive it from)"
    return what + (f" with {', '.join(differ)}" if differ else "")
