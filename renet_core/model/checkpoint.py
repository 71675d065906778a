"""Checkpoints: a model with everything needed to rebuild it (AUs, task, relation, options) and
the config that trained it, written atomically and read with ``weights_only=True``."""

from __future__ import annotations

import dataclasses
import json
import zipfile
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
        # the run identity it was trained under: evaluate() refuses it for another run
        "config_hash": config.config_hash() if hasattr(config, "config_hash") else None,
    }
    clash = set(extra) & set(payload)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with reserved ones: {sorted(clash)}")
    payload.update(extra)
    return torch_save_atomic(payload, path)


def describe_file(path: Path) -> str:
    """What a file that ``torch.load(weights_only=True)`` refused is, in words, from its first
    bytes (an empty file, a truncated archive, a pickled object, a NumPy archive, text ...)."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return f"a damaged or truncated archive ({size} bytes; a PyTorch file cut short?)"
        if any(n.endswith("data.pkl") for n in names):
            return ("a PyTorch file holding Python objects other than tensors and plain values (a "
                    "pickled model or another program's file), which is never unpickled here")
        if any(n.endswith(".npy") for n in names):
            return "a NumPy .npz archive (e.g. a run's predictions.npz)"
        return "a zip archive that is not a PyTorch file"
    kinds = {b"\x89HDF": "an HDF5 file", b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image",
             b"\x80": "a legacy pickle (old torch.save format or plain pickle) of Python objects"}
    for magic, words in kinds.items():
        if head.startswith(magic):
            return words
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a binary file of another kind ({size} bytes, starting {head[:8]!r})"
    return f"a text file ({size} bytes, starting {text[:30]!r})"


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint payload (``weights_only=True``); a file that is not one is named with
    what it is (:func:`describe_file`), never with torch's advice to unpickle it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    expected = "expected a checkpoint written by renet_core (a run's best.pt or last.pt)"
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:
        raise ValueError(f"checkpoint {path} is unreadable: it is {describe_file(path)}, not a "
                         f"renet_core checkpoint; {expected}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        what = (f"a dict of {len(payload)} tensors (a state_dict? give it as pretrained=PATH)"
                if isinstance(payload, dict) and payload and all(torch.is_tensor(v) for v in payload.values())
                else f"a {type(payload).__name__}")
        raise ValueError(f"{path} is not a renet_core checkpoint: it holds {what}; {expected} "
                         f"(a dict with format={CHECKPOINT_FORMAT!r})")
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
