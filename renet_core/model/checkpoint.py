"""Checkpoints: a model with everything needed to rebuild it (AUs, task, relation, options) and
the config that trained it, written atomically and read with ``weights_only=True``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch

from renet_core.base.io import torch_save_atomic
from renet_core.model.networks import build_model

CHECKPOINT_FORMAT = "renet-checkpoint"


def _plain(config):
    """Config as JSON-safe primitives, so that ``weights_only=True`` loading accepts it."""
    if config is None:
        return None
    if hasattr(config, "__dataclass_fields__"):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


def save_checkpoint(path, model, config=None, **extra) -> Path:
    """Write weights, AU list, task, relation matrix, model options and config atomically.

    ``extra`` (optimizer state, epoch, RNG state, ...) must consist of tensors, numbers,
    strings, lists and dicts, since :func:`load_checkpoint` uses ``weights_only=True``.
    """
    model = getattr(model, "module", model)   # unwrap DDP
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "aus": list(model.aus),
        "task": model.task,
        "options": dict(model.options),
        "relation": model.relation.edge_weights().detach().cpu() if model.kind == "renet" else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": _plain(config),
    }
    clash = set(extra) & set(payload)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with reserved ones: {sorted(clash)}")
    payload.update(extra)
    return torch_save_atomic(payload, path)


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint payload (``weights_only=True``), with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} is unreadable (truncated or corrupt?): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a renet_core checkpoint (expected a dict with "
                         f"format={CHECKPOINT_FORMAT!r})")
    return payload


#: Settings that decide what a checkpoint's model is; :func:`load_checkpoint` compares them.
MODEL_SETTINGS = ("model", "task", "aus", "relation_mode", "head")


def checkpoint_settings(payload: dict) -> dict:
    """What the checkpoint's model is: ``model`` (kind), ``task``, ``aus``, and for RE-Net its
    ``relation_mode`` and ``head``; from the model description, else the config it carries (older
    checkpoints lack some options), else the defaults of the time."""
    options = dict(payload.get("options") or {})
    config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    out = {"model": payload["kind"], "task": payload["task"], "aus": [int(a) for a in payload["aus"]]}
    if payload["kind"] == "renet":
        for key, default in (("relation_mode", "fixed"), ("head", "shared")):
            out[key] = options.get(key) or config.get(key) or default
    return out


def load_checkpoint(path, aus: Sequence[int] | None = None, map_location="cpu", expect: dict | None = None):
    """Rebuild the model stored in ``path``; returns ``(model, payload)``.

    ``aus``, when given, must equal the checkpoint's AU list (order included): a model trained
    for other AUs would silently answer for the wrong ones. ``expect`` (keys of
    :data:`MODEL_SETTINGS`, e.g. from an ExperimentConfig) must match the checkpoint's own settings
    (:func:`checkpoint_settings`); every difference is named (relation_mode and head only count
    for RE-Net).
    """
    payload = read_checkpoint(path, map_location)
    if expect:
        have = checkpoint_settings(payload)
        want = {k: ([int(a) for a in v] if k == "aus" else v) for k, v in expect.items()
                if k in MODEL_SETTINGS and v is not None}
        if have["model"] != "renet" or want.get("model", have["model"]) != "renet":
            want.pop("relation_mode", None)
            want.pop("head", None)
        diff = [k for k in MODEL_SETTINGS if k in want and want[k] != have.get(k)]
        if diff:
            def show(values):
                return ", ".join(f"{k}={values.get(k)}" for k in diff)
            raise ValueError(f"checkpoint {path} is {show(have)}, config says {show(want)}: it is not "
                             f"the model this config describes. Evaluate it with a config whose "
                             f"{show(have)}, or give the checkpoint of this config's own run")
    if aus is not None and [int(a) for a in aus] != payload["aus"]:
        raise ValueError(f"checkpoint {path} was trained for AUs {payload['aus']}, "
                         f"but AUs {list(aus)} were requested")
    options = dict(payload.get("options") or {})
    model = build_model(payload["kind"], payload["aus"], payload["task"],
                        relation=payload.get("relation"), **options)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not match the model it describes: {exc}") from exc
    return model.to(map_location) if map_location is not None else model, payload
