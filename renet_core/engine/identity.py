"""Run identity: a hash of the data and of every setting that can change a run's numbers.

A table finds its results by this identity (``config_hash``), never by a label, so a run made
with other data or other settings is never shown under a row that does not describe it. The
data enter as :func:`data_identity`: the SynthAU twin by its layout, size, seed and generator
version (and a non-default coupling or setting); a dataset copy by its resolved path and a
fingerprint of its label and landmark files, image archives and videos, and the names of its frame
images. A local ``pretrained`` weights file enters by the hash of its content, not its path. The
training code enters as :data:`TRAINING_VERSION`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from renet_core.synth import GENERATOR_VERSION, variant_tag

#: Environment variables naming the real datasets' roots (``data="real"``).
ROOT_ENV = {"bp4d": "RENET_BP4D", "disfa": "RENET_DISFA", "bp4dplus": "RENET_BP4DPLUS"}
#: The training semantics, hashed into every identity (field ``training_version``): a change
#: that alters the numbers of every run bumps it, so that no run made before is reused.
#: 1 (never hashed): runs made before drew augmentation from the global RNG, which each loader
#: worker seeds its own way, so their numbers depended on ``num_workers``; they are not reused.
#: 2: every training item's crop and flip come from (seed, epoch, item) (``AUDataset``).
TRAINING_VERSION = 2
#: Fields added after results were first published, hashed only when they differ from these
#: defaults, so that runs made before they existed keep their identity.
#: ``threads`` (round 4): the runs made before it trained with 2 threads (the notebooks use every
#: core; the committed study was made on 2 cores); ``eval_batch_size``: the batch of the
#: evaluation passes, which picks the kernels and so can move a score at the threshold;
#: ``adam_impl`` (issue 33's speed levers): foreach and fused Adam order the update's arithmetic
#: otherwise, so a run made with either is another run.
LATER_FIELDS = {"head": "shared", "bn_momentum": 0.1, "bn_warm_start": True, "au_lr_scale": 1.0,
                "lr_schedule": "constant", "landmark_origin": 1, "duplicate_rule": "frame",
                "synth_coupling": 1.0, "synth_setting": "default", "threads": 2, "eval_batch_size": None,
                "adam_impl": "default"}
#: Fields that do not change a run's results (left out of the hash). ``root`` enters it through
#: :func:`data_identity`; ``method`` and ``profile`` are labels; ``num_workers`` only changes
#: the speed (TRAINING_VERSION 2), and the paper profile derives it from the machine. The device
#: (and the processor, libraries and precision it implies) is not a setting of the computation
#: but where it ran: each run records it in its ``environment.json``.
IDENTITY_EXCLUDED = ("root", "cache_dir", "results_dir", "device", "progress", "force",
                     "method", "profile", "num_workers", "checkpoint_seconds")
#: Files that describe a dataset's labels and landmarks (fingerprinted by size and mtime).
LABEL_SUFFIXES = (".csv", ".txt", ".mat", ".json", ".dat", ".xlsx")
#: Image containers, few and large: fingerprinted by size and mtime too.
CONTAINER_SUFFIXES = (".zip", ".avi", ".mp4", ".wmv", ".mov")
#: Frame images, many: fingerprinted by name only (a deleted or added frame changes it, cheaply).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def configured_root(dataset: str, given: str | os.PathLike | None = None) -> str | None:
    """The root of a real dataset: ``given``, else ``$RENET_<DATASET>`` (:data:`ROOT_ENV`), else
    None (its SynthAU twin). The one place where the dataset variables are read."""
    if dataset not in ROOT_ENV:
        raise ValueError(f"config dataset={dataset!r}; expected one of {tuple(ROOT_ENV)}")
    if given:
        return str(given)
    return os.environ.get(ROOT_ENV[dataset]) or None


def run_identity(cfg) -> str:
    """The run identity of config ``cfg``: 16 hex digits of a hash over every field but
    ``IDENTITY_EXCLUDED`` (``LATER_FIELDS`` only when not at their old default), the resolved AU
    list, the AU learning-rate scale as a number ("C" and its value are the same run), the data
    (:func:`data_identity`) and :data:`TRAINING_VERSION`."""
    values = dataclasses.asdict(cfg)
    values["au_lr_scale"] = cfg.lr_scale()
    values["threads"] = cfg.resolved_threads()   # 0 ("every core") is hashed as the count it means
    values = {k: v for k, v in values.items() if k not in IDENTITY_EXCLUDED
              and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
    values["aus"] = cfg.resolved_aus()
    values["data_identity"] = data_identity(cfg)
    if values.get("pretrained") not in (None, "imagenet", "standin"):   # a local file: by its content
        values["pretrained"] = pretrained_identity(values["pretrained"])
    values["training_version"] = TRAINING_VERSION
    if cfg.pretrained == "standin" and cfg.holdout_aus:   # its stand-in never saw them (standin.py)
        values["standin_without"] = sorted(int(a) for a in cfg.holdout_aus)
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_identity(cfg) -> str:
    """What the run's data is: the SynthAU twin by layout, size, seed, generator version and,
    when not the default, its coupling and setting (:func:`renet_core.synth.variant_tag`); a
    dataset root by its resolved path and :func:`data_fingerprint` (label and landmark files)."""
    if not cfg.root and cfg.data == "synthetic":
        return (f"synthau:{cfg.dataset}-{cfg.synth_size}-seed{cfg.synth_seed}-v{GENERATOR_VERSION}"
                + variant_tag(cfg.synth_coupling, cfg.synth_setting))
    root = configured_root(cfg.dataset, cfg.root)
    if not root:
        raise ValueError(f"data='real' for {cfg.dataset} needs its root: pass root=... or set "
                         f"${ROOT_ENV[cfg.dataset]}")
    return f"{Path(root).resolve()}:{data_fingerprint(root)}"


_FINGERPRINTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("renet_fingerprints", default=None)


@contextlib.contextmanager
def fingerprints_once():
    """Within this block (a decorator too) each dataset root is walked once by
    :func:`data_fingerprint`, however many configs name it: a table builds ~8 configs, the claims
    scoreboard ~70, and on a network copy of BP4D one walk can take seconds. Outside any such
    block, and at each new block, the files are looked at again, so a label file fixed between
    two ``reproduce`` calls changes the run identity. Nested blocks share the outer one."""
    if _FINGERPRINTS.get() is not None:
        yield
        return
    token = _FINGERPRINTS.set({})
    try:
        yield
    finally:
        _FINGERPRINTS.reset(token)


def data_fingerprint(root: str | os.PathLike) -> str:
    """A cheap fingerprint of a dataset copy: the relative path, size and modification time of
    every label and landmark file (``LABEL_SUFFIXES``) and image archive or video
    (``CONTAINER_SUFFIXES``) under ``root``, and the relative path of every frame image
    (``IMAGE_SUFFIXES``; not read). Fixing a label file, deleting a frame image, or pointing at
    another copy changes it; hidden files do not. Inside :func:`fingerprints_once` a root is
    walked once."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset root {root} is not a folder; expected the dataset as distributed "
                         "(see README, 'Real data and a GPU')")
    memo, key = _FINGERPRINTS.get(), str(root.resolve())
    if memo is not None and key in memo:
        return memo[key]
    value = _walk_fingerprint(root)
    if memo is not None:
        memo[key] = value
    return value


def _walk_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            lower, path = name.lower(), Path(folder) / name
            if name.startswith("."):
                continue
            if lower.endswith(LABEL_SUFFIXES + CONTAINER_SUFFIXES):
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            elif lower.endswith(IMAGE_SUFFIXES):
                digest.update(f"{path.relative_to(root)}\n".encode())
    return digest.hexdigest()[:16]


_PRETRAINED: dict = {}


def pretrained_identity(path: str | os.PathLike) -> str:
    """A local ``pretrained`` weights file as the run identity sees it: the hash of its content
    (replacing the file changes the identity; moving it does not). Hashed once per file version
    (size and mtime) in a process."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError as exc:
        raise FileNotFoundError(f"pretrained weights file not found: {path} (config pretrained=PATH; "
                                "'imagenet', 'standin' or null are the other choices)") from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _PRETRAINED:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _PRETRAINED[key] = f"file-sha256:{digest.hexdigest()[:16]}"
    return _PRETRAINED[key]
