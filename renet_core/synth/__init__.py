"""SynthAU: procedural AU-labelled face sequences in the real BP4D, DISFA and BP4D+ layouts.

Everything this package writes is SYNTHETIC. It exists because the real datasets are licensed
and absent; it lets the same loaders, alignment, training and notebooks run end to end, and its
labels carry the kind of structure RE-Net exploits (co-occurrence, exclusion, imbalance,
subjects, time), but no number obtained on it is a reproduction of the paper's numbers.

Entry points
------------
* :func:`write_dataset` ``(layout, root, size="smoke"|"demo", seed=0, **knobs)`` writes one
  layout ("bp4d", "disfa", "bp4dplus") plus ``root/SYNTHAU.json`` (the marker the data layer
  reads) and ``root/README_SYNTHETIC.txt``.
* :func:`sample_labels` ``(layout, size, seed)`` -> the label table without rendering (fast;
  used for label statistics).
* CLI: ``python -m renet_core.synth LAYOUT ROOT --size demo [--seed N]``.

Sizes (all subjects of the standard folds present at both sizes; see :mod:`.plans`)
-------------------------------------------------------------------------------
============  ====================================  =====================================
layout        smoke                                 demo
============  ====================================  =====================================
bp4d          41 subjects x 1 task x 4 = 164 fr.    41 x 3 tasks x 20 = 2,460 frames
disfa         27 subjects x 6 (SN010 5) = 161 fr.   27 x 74 (SN010 73) = 1,997 frames
bp4dplus      140 subjects x 1 task x 3 = 420 fr.   140 x 2 tasks x 9 = 2,520 frames (+2 T11)
============  ====================================  =====================================

DISFA frames are drawn twice (left and right camera). Frame sizes (width x height): BP4D and
BP4D+ 174x232 (real 1040x1392), DISFA 224x168 (real 1024x768); knob ``frame_size``.

Measured on the 2-core development machine (no GPU, shared with other jobs): smoke, all three
layouts, ~4 s in all; demo BP4D 17 s, DISFA 15 s, BP4D+ 19 s (about 52 s in all, 2 processes).

Difficulty knobs (:class:`~renet_core.synth.render.Knobs`; default values defined once in
:mod:`renet_core.synth.defaults`): ``subtlety``, ``noise`` (grey levels), ``pose``,
``identity_spread``, ``blur``, ``jpeg_quality``, ``frame_size`` (per layout), ``time_scale``.

Label structure (the premise experiment, notebook 11): ``coupling`` (0 every AU independent, 1
the default prototypes, above 1 stronger co-occurrence; every AU's rate held at its target) and
the named settings of :data:`SETTINGS` ("control": two AUs drawn faint beside visible partners).
Only a non-default value enters a twin's name and data identity (:func:`variant_tag`) and the
marker's knobs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import write_text_atomic
from renet_core.data.layout import SYNTH_MARKER as MARKER

from . import defaults
from .aus import AU_INDEX, AU_NAMES, AUS
from .labels import TARGET_RATES, check_coupling, generate_sequences, task_is_coded
from .layouts import _quirks, default_workers, write_frames, write_labels
from .plans import PLANS, SIZES
from .render import Knobs

LAYOUTS = ("bp4d", "disfa", "bp4dplus")
GENERATOR_VERSION = 3  # 2: easier default knobs (see Knobs); 3: 1-based landmark files

README = """SYNTHETIC DATA -- SynthAU ({layout}, size {size}, seed {seed})

Every image, video, label and landmark file under this folder was generated procedurally by
renet_core.synth (the RE-Net reproduction project). No real person is shown; nothing here comes
from the licensed {real} dataset. The folder only copies that dataset's on-disk layout so the
project's loaders can be exercised. Results obtained on it are NOT results on {real}.
"""
REAL_NAMES = {"bp4d": "BP4D-Spontaneous", "disfa": "DISFA", "bp4dplus": "BP4D+"}


def _check(layout: str, size: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown SynthAU layout {layout!r}; expected one of {LAYOUTS}")
    if size not in SIZES:
        raise ValueError(f"unknown SynthAU size {size!r}; expected one of {SIZES}")


def sample_sequences(layout: str, size: str = "demo", seed: int = 0, time_scale: float = 1.0,
                     coupling: float = 1.0):
    """The labelled sequences of a layout (:class:`~.labels.Sequence`), without rendering."""
    _check(layout, size)
    return generate_sequences(layout, PLANS[layout](size, seed), seed, time_scale, coupling=coupling)


def sample_labels(layout: str, size: str = "demo", seed: int = 0, time_scale: float = 1.0,
                  coupling: float = 1.0) -> pd.DataFrame:
    """One row per coded frame: ``subject, task, frame, AU1..AU26`` (0/1), ``AU1_int..`` (0-5).

    Exactly the labels :func:`write_dataset` writes for the same arguments (before the 9 codes
    and dropped intensity rows of the layout quirks), computed without rendering any pixel.
    ``coupling``: how strongly AUs co-occur (:func:`~.labels.generate_sequences`; 1 = default).
    """
    rows = []
    for s in sample_sequences(layout, size, seed, time_scale, coupling):
        if not task_is_coded(layout, s.task):
            continue
        df = pd.DataFrame({"subject": s.subject, "task": s.task, "frame": s.frames})
        for au in AUS:
            df[f"AU{au}"] = s.occurrence[:, AU_INDEX[au]]
        for au in AUS:
            df[f"AU{au}_int"] = s.intensity[:, AU_INDEX[au]]
        rows.append(df)
    out = pd.concat(rows, ignore_index=True)
    out.attrs.update(dataset=f"SynthAU {layout}", synthetic=True)
    return out


SETTINGS = defaults.SETTINGS


def setting_knobs(setting: str = "default", coupling: float = defaults.COUPLING) -> dict:
    """The :class:`Knobs` fields of the named ``setting`` (:data:`SETTINGS`) at ``coupling``, for
    :func:`write_dataset`; ``{}`` for the default setting at the default coupling."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown SynthAU setting {setting!r}; expected one of {tuple(SETTINGS)}")
    knobs = dict(SETTINGS[setting])
    if check_coupling(coupling) != defaults.COUPLING:
        knobs["coupling"] = float(coupling)
    return knobs


def variant_tag(coupling: float = defaults.COUPLING, setting: str = "default") -> str:
    """What a non-default coupling or setting adds to a SynthAU twin's name and data identity:
    ``""`` for the defaults (so the default datasets keep their names and identities), else e.g.
    ``"-coupling0.5"``, ``"-control"`` or ``"-coupling2-control"``."""
    setting_knobs(setting, coupling)   # checks both
    tag = "" if float(coupling) == defaults.COUPLING else \
        f"-coupling{np.format_float_positional(float(coupling), trim='-')}"
    return tag + ("" if setting == "default" else f"-{setting}")


def marker_payload(layout: str, size: str, seed: int, knobs: Knobs) -> dict:
    """Content of ``SYNTHAU.json`` (no timestamps, so it is deterministic)."""
    return {"generator": "renet_core.synth", "synthetic": True, "layout": layout, "size": size,
            "seed": int(seed), "version": GENERATOR_VERSION, "knobs": knobs.as_dict(),
            "note": "Synthetic SynthAU data in the " + REAL_NAMES[layout] + " layout; not real data."}


def read_marker(root: str | Path) -> dict | None:
    """The parsed ``SYNTHAU.json`` of ``root``, or ``None`` if there is none."""
    path = Path(root) / MARKER
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_dataset(layout: str, root: str | Path, size: str = "smoke", seed: int = 0, *,
                  workers: int | None = None, progress: bool | None = None,
                  overwrite: bool = False, **knobs) -> Path:
    """Write SynthAU ``layout`` ("bp4d", "disfa", "bp4dplus") at ``size`` under ``root``.

    Same arguments -> identical label bytes and identical pixels. The marker ``SYNTHAU.json`` is
    written last, so a root without it is incomplete; calling again on a complete root with the
    same arguments returns at once. A non-empty ``root`` that is not a SynthAU folder is refused
    (it might be a real dataset). ``knobs`` are :class:`~renet_core.synth.render.Knobs` fields.
    Returns ``root`` as a Path.
    """
    _check(layout, size)
    root = Path(root)
    k = Knobs(**knobs)
    payload = marker_payload(layout, size, seed, k)
    old = read_marker(root) if root.exists() else None
    if old is not None:
        if {key: old.get(key) for key in payload} == payload and not overwrite:
            return root
        shutil.rmtree(root)
    elif root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty and has no {MARKER}; refusing to write "
                              "SynthAU data over what may be a real dataset")
    root.mkdir(parents=True, exist_ok=True)
    seqs = generate_sequences(layout, PLANS[layout](size, seed), seed, k.time_scale, coupling=k.coupling)
    quirks = _quirks(layout, seqs, seed)
    write_text_atomic(root / "README_SYNTHETIC.txt",
                      README.format(layout=layout, size=size, seed=seed, real=REAL_NAMES[layout]))
    write_labels(layout, root, seqs, quirks)
    total = sum(len(s.frames) for s in seqs)
    if workers is None:
        workers = default_workers(total)
    if progress is None:
        progress = size != "smoke"
    images = write_frames(layout, root, seqs, quirks, seed, k, workers, progress)
    payload["counts"] = {"subjects": len({s.subject for s in seqs}), "sequences": len(seqs),
                         "labelled_frames": int(sum(len(s.frames) for s in seqs
                                                    if task_is_coded(layout, s.task))),
                         "images": int(images)}
    write_text_atomic(root / MARKER, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return root


__all__ = ["write_dataset", "sample_labels", "sample_sequences", "read_marker", "Knobs",
           "LAYOUTS", "AUS", "AU_NAMES", "TARGET_RATES", "MARKER", "SETTINGS", "setting_knobs", "variant_tag"]
