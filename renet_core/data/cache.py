"""``prepare``: align every labelled frame to a ``size x size`` crop and cache it (section 4.3).

Cache layout (``cache_dir``):

* ``prepare.json``: the settings the cache was made with (a later run with other settings is
  refused rather than mixing crops);
* ``crops/<subject>/<task>/<frame>.jpg``: the aligned crops (JPEG quality 95);
* ``status/<job>.csv``: per sequence (DISFA: per subject video) the outcome of every frame, the
  ``stamp`` (size and mtime) of what its crop was made from (its image, its landmark file, the
  image's folder) and the crop's size (``bytes``), written when the job finishes. A run skips a
  job whose stamps and crop sizes are unchanged, so an interrupted run resumes where it stopped
  and a second run redoes nothing; a frame whose image or landmark file changed (a landmark
  file fixed, an image deleted or replaced) or whose crop was cut short or lost is aligned
  again, and so are the crops of a job that never finished (nothing vouches for them);
* ``manifest.csv``: the index plus ``status`` and ``crop`` (relative to ``cache_dir``).

Every file is written atomically (:mod:`renet_core.base.io`); temporary files left by a killed run
are removed at the start of the next one, so nothing half-written stays in the cache. One
process prepares a cache at a time (``.prepare.lock``): a second one waits, then finds the work
done; temporary files are removed only while holding the lock, never a live writer's.

Landmarks are read 1-based (``landmark_origin=1``, default): the datasets' MATLAB files count
pixels from 1, so 1 is subtracted before aligning, as JAA-Net does; ``landmark_origin=0`` reads
them as they are. The setting is part of ``prepare.json``; caches written before it existed
(which read the files as 0-based) are refused (``PREPARE_VERSION``).

Bad frames never abort the run: an image that cannot be read or decoded (a zero-byte file, a
truncated JPEG, garbage) is skipped, counted per reason and named (a warning per file, and the
printed summary lists them); a malformed landmark entry drops only its own frame; a BP4D+
landmark file with fewer entries than the sequence has images is reported with both counts; a
BP4D ``fit/pred`` whose entries match neither the images one to one nor their frame numbers
(:func:`renet_core.data.landmarks.bp4d_entry_keys`) skips its whole sequence, named, rather
than give frames their neighbours' landmarks. The per-reason summary is printed whether or not
progress bars are shown.

Lost landmarks (the tracker lost the face, or DISFA lacks the frame's landmark file): with
``lost_landmarks="skip"`` (default, as JAA-Net's lists, which drop BP4D frames without
landmarks) the frame is skipped and counted; with ``"nearest"`` the landmarks of the nearest
frame of the same sequence that has them are used, if it is at most ``max_gap`` frames away.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.io import locked, remove_partial_files, to_csv_atomic, write_text_atomic
from renet_core.data.crops import ALIGNED_NEAREST, JOB_COLUMNS, JPEG_QUALITY, TRUNCATED_IMAGE, UNREADABLE_IMAGE, stamps
from renet_core.data.index import load_index
from renet_core.data.landmarks import DEFAULT_ORIGIN, MALFORMED_LANDMARKS, UNREADABLE_LANDMARKS, check_origin
from renet_core.data.workers import run_jobs

JOB_FRAMES = 128  # image sequences are cut into jobs of at most this many frames
SETTINGS_FILE = "prepare.json"
#: 2: landmarks read 1-based by default (``landmark_origin``); per-frame ``stamp`` of skipped
#: frames. 3: every frame's ``stamp`` (image, landmark file, image folder) and crop ``bytes``;
#: BP4D landmark entries matched by frame number or refused (a count mismatch). Caches of
#: another version are refused, never mixed.
PREPARE_VERSION = 3
MANIFEST = "manifest.csv"


# ----------------------------------------------------------------------------- jobs

def crop_relpath(subject: str, task: str, frame: int) -> str:
    return f"crops/{subject}/{task or 'video'}/{int(frame):06d}.jpg"


def _jobs(index: pd.DataFrame, cache_dir: Path, settings: dict) -> list[dict]:
    jobs = []
    for (subject, task), rows in index.groupby(["subject", "task"], sort=True):
        rows = rows[JOB_COLUMNS].copy()
        rows["crop"] = [crop_relpath(subject, task, f) for f in rows["frame"]]
        is_video = (rows["image_kind"] == "video").all()
        step = len(rows) if is_video else JOB_FRAMES
        for start in range(0, len(rows), step):
            chunk = rows.iloc[start:start + step]
            name = f"{subject}_{task or 'video'}_{start // step:04d}"
            jobs.append({"name": name, "rows": chunk.values.tolist(), "size": settings["size"],
                         "cache_dir": str(cache_dir),
                         "lost_landmarks": settings["lost_landmarks"],
                         "max_gap": settings["max_gap"],
                         "landmark_origin": settings["landmark_origin"]})
    return jobs


def _recorded(cache_dir: Path, job: dict) -> tuple[pd.DataFrame | None, list[str]]:
    """``(statuses, [])`` when the job finished before and nothing its crops were made from
    changed since: every frame's stamp (image, landmark file, image folder) is the recorded one
    and every crop has its recorded size. Else ``(None, crops to make again)``: those of the
    frames whose stamp or crop changed, or every crop of a job that never finished (nothing
    vouches for them)."""
    crops = [r[-1] for r in job["rows"]]
    path = cache_dir / "status" / f"{job['name']}.csv"
    if not path.is_file():
        return None, crops
    table = pd.read_csv(path, dtype={"crop": str, "status": str, "stamp": str},
                        keep_default_na=False)
    if not {"frame", "status", "crop", "stamp", "bytes"} <= set(table.columns):
        return None, crops
    recorded = {int(f): (s, st, int(b)) for f, s, st, b in
                zip(table["frame"], table["status"], table["stamp"], table["bytes"])}
    stale = []
    for row, crop, stamp in zip(job["rows"], crops, job["stamps"]):
        status, was, size = recorded.get(int(row[2]), ("", None, 0))
        if was != stamp:
            stale.append(crop)
        elif status.startswith("aligned"):
            try:
                if os.path.getsize(cache_dir / crop) != size:
                    stale.append(crop)     # cut short or replaced: made again
            except OSError:
                stale.append(crop)
    same_frames = table["frame"].astype(np.int64).tolist() == [int(r[2]) for r in job["rows"]]
    return (table, []) if same_frames and not stale else (None, stale)


def _remove_leftovers(cache_dir: Path) -> int:
    """Delete temporary files left by a killed run (:func:`renet_core.base.io.remove_partial_files`
    in the cache, its status folder and every crop folder)."""
    folders = [cache_dir, cache_dir / "status"]
    crops = cache_dir / "crops"
    if crops.is_dir():
        folders += [Path(base) for base, _, _ in os.walk(crops)]
    return sum(len(remove_partial_files(folder)) for folder in folders)


def _check_settings(cache_dir: Path, settings: dict) -> None:
    path = cache_dir / SETTINGS_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("version") != settings["version"]:
            made = ("before landmarks were read 1-based (it read them as 0-based)"
                    if old.get("version") is None else f"by prepare version {old.get('version')}")
            raise ValueError(f"{path}: this cache was made {made}; this is prepare version "
                             f"{settings['version']}, whose crops differ, so it is not reused: "
                             f"delete {cache_dir} or use another cache_dir")
        differ = {k: (old.get(k), v) for k, v in settings.items()
                  if k not in ("root",) and old.get(k) != v}
        if differ:
            raise ValueError(f"{path}: this cache was prepared with other settings "
                             f"{ {k: o for k, (o, _) in differ.items()} }, not "
                             f"{ {k: n for k, (_, n) in differ.items()} }; use another cache_dir")
    else:
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True))


def _jsonable(attrs: dict) -> dict:
    return json.loads(json.dumps(attrs, default=str))


# ----------------------------------------------------------------------------- public

def prepare(name: str, root, cache_dir, size: int = 256, workers: int | None = None,
            progress: bool = True, lost_landmarks: str = "skip", max_gap: int = 5,
            index: pd.DataFrame | None = None, landmark_origin: int = DEFAULT_ORIGIN,
            **options) -> pd.DataFrame:
    """Align and cache every labelled frame; returns the aligned rows with a ``crop`` column.

    ``size`` is the crop side (256 in the paper, section 4.3; smaller for CPU demos).
    ``workers`` processes (default: CPU count; 0 or 1 runs in this process). ``options`` go to
    :func:`load_index`; ``index`` may be given instead (e.g. a subset). Frames that cannot be
    aligned are dropped from the result and counted in the printed summary and
    ``attrs["prepare_summary"]``; ``cache_dir/manifest.csv`` lists every frame with its status.
    The per-reason summary (naming the unreadable images) is printed even with
    ``progress=False``.

    ``landmark_origin``: 1 (default) = the landmark files are 1-based, as the datasets' MATLAB
    files are: 1 is subtracted before aligning (as JAA-Net does); 0 = use the numbers as they
    are. It is part of the cache's settings.
    """
    if lost_landmarks not in ("skip", "nearest"):
        raise ValueError(f"lost_landmarks must be 'skip' or 'nearest', got {lost_landmarks!r}")
    landmark_origin = check_origin(landmark_origin)
    if index is None:
        index = load_index(name, root, **options)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    settings = {"version": PREPARE_VERSION, "landmark_origin": landmark_origin,
                "dataset": index.attrs.get("dataset", name), "size": int(size),
                "lost_landmarks": lost_landmarks, "max_gap": int(max_gap),
                "alignment": "JAA-Net 49-point eye-based similarity, enlarge 2.9",
                "jpeg_quality": JPEG_QUALITY, "root": str(root),
                "options": _jsonable(options), "attrs": _jsonable(
                    {k: v for k, v in index.attrs.items() if k not in ("problems", "root")})}
    say = print if progress else (lambda *a, **k: None)
    with locked(cache_dir / ".prepare.lock", waiting=lambda: print(
            f"prepare: another process is preparing {cache_dir}; waiting for it", flush=True)):
        _check_settings(cache_dir, settings)
        leftovers = _remove_leftovers(cache_dir)   # no other writer: this process holds the lock
        jobs = _jobs(index, cache_dir, settings)
        results, todo, remade = {}, [], 0
        for job in jobs:
            job["stamps"] = stamps(pd.DataFrame(job["rows"], columns=JOB_COLUMNS + ["crop"]))
            done, stale = _recorded(cache_dir, job)
            if done is None:
                remade += sum(_remove(cache_dir / crop) for crop in stale)
                todo.append(job)
            else:
                results[job["name"]] = done
        n_todo = sum(len(j["rows"]) for j in todo)
        if leftovers:
            say(f"prepare: removed {leftovers} temporary file(s) left by an interrupted run")
        if remade:
            say(f"prepare: {remade} cached crop(s) are made again: their image or landmark file "
                "changed since, they were damaged, or their job never finished")
        if not todo:
            say(f"prepare: nothing to do, all {len(index)} frames already prepared in {cache_dir}")
        else:
            say(f"prepare: {n_todo} of {len(index)} frames to align into {cache_dir} "
                f"({len(jobs) - len(todo)} of {len(jobs)} jobs already done)")
            results.update(_align(todo, cache_dir, workers, progress, n_todo))
        manifest = _manifest(index, jobs, results)
        to_csv_atomic(manifest, cache_dir / MANIFEST)
    summary = _summary(manifest)
    print(_summary_text(summary, cache_dir, manifest))  # with or without progress bars
    prepared = manifest.loc[manifest["status"].str.startswith("aligned")].copy()
    prepared["crop"] = [str(cache_dir / c) for c in prepared["crop"]]
    prepared = prepared.reset_index(drop=True)
    prepared.attrs.update(index.attrs)
    prepared.attrs.update({"cache_dir": str(cache_dir), "size": int(size),
                           "prepare_summary": summary})
    return prepared


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _align(todo: list, cache_dir: Path, workers, progress: bool, n_todo: int) -> dict:
    """Run the jobs to do; record each job's statuses as it finishes (after its crops are on
    disk) and warn once per message. Returns ``{job name: status table}``."""
    results, warned = {}, set()
    for out in run_jobs(todo, workers, progress, n_todo):
        table = pd.DataFrame({"frame": out["frames"], "status": out["status"],
                              "crop": out["crop"], "stamp": out["stamp"], "bytes": out["bytes"]})
        os.sync()  # the job's crops reach the disk before the job is recorded as done
        to_csv_atomic(table, cache_dir / "status" / f"{out['name']}.csv")
        results[out["name"]] = table
        for message in out["messages"]:
            if message not in warned:  # a sequence cut into jobs repeats its file messages
                warned.add(message)
                warnings.warn(message, stacklevel=3)
    return results


def _manifest(index: pd.DataFrame, jobs: list, results: dict) -> pd.DataFrame:
    parts = []
    for job in jobs:
        table = results[job["name"]]
        keys = pd.DataFrame([(r[0], r[1], r[2]) for r in job["rows"]],
                            columns=["subject", "task", "frame"])
        parts.append(pd.concat([keys, table[["status", "crop"]].reset_index(drop=True)],
                               axis=1))
    status = (pd.concat(parts, ignore_index=True) if parts
              else pd.DataFrame(columns=["subject", "task", "frame", "status", "crop"]))
    manifest = index.merge(status, on=["subject", "task", "frame"], how="left",
                           validate="one_to_one")
    manifest.attrs.update(index.attrs)
    return manifest


def _summary(manifest: pd.DataFrame) -> dict:
    counts = Counter(manifest["status"])
    return {"read": int(len(manifest)),
            "aligned": int(sum(v for k, v in counts.items() if k.startswith("aligned"))),
            "aligned_with_nearest_landmarks": int(counts.get(ALIGNED_NEAREST, 0)),
            "skipped": {k: int(v) for k, v in sorted(counts.items())
                        if not k.startswith("aligned")}}


NAMED_REASONS = (UNREADABLE_IMAGE, TRUNCATED_IMAGE, MALFORMED_LANDMARKS, UNREADABLE_LANDMARKS)
NAMED_MAX = 10


def _summary_text(summary: dict, cache_dir: Path, manifest: pd.DataFrame | None = None) -> str:
    """The summary lines; under each bad-file reason, the files (at most ``NAMED_MAX``)."""
    skipped = sum(summary["skipped"].values())
    lines = [f"prepare summary ({cache_dir}): {summary['read']} labelled frames, "
             f"{summary['aligned']} aligned "
             f"({summary['aligned_with_nearest_landmarks']} with the nearest frame's landmarks), "
             f"{skipped} skipped"]
    for reason, count in summary["skipped"].items():
        lines.append(f"  {count:8d}  {reason}")
        if manifest is None or reason not in NAMED_REASONS:
            continue
        rows = manifest.loc[manifest["status"] == reason]
        column = "landmark_path" if "landmark" in reason else "image_path"
        names = [f"{r[column]}:{r['image_member']}" if column == "image_path" and
                 r.get("image_member") else str(r[column]) for _, r in rows.iterrows()]
        names = list(dict.fromkeys(names))
        lines += [f"            {name}" for name in names[:NAMED_MAX]]
        if len(names) > NAMED_MAX:
            lines.append(f"            ... and {len(names) - NAMED_MAX} more (status column of "
                         f"{cache_dir / MANIFEST})")
    return "\n".join(lines)


def load_manifest(cache_dir, all_rows: bool = False) -> pd.DataFrame:
    """Read ``cache_dir/manifest.csv`` back: aligned rows (``all_rows``: every row) with absolute
    ``crop`` paths and the index ``attrs`` restored from ``prepare.json``."""
    cache_dir = Path(cache_dir)
    path = cache_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run renet_core.data.prepare first")
    manifest = pd.read_csv(path, dtype={"subject": str, "task": str, "image_path": str,
                                        "image_member": str, "landmark_path": str,
                                        "crop": str, "status": str}, keep_default_na=False)
    for col in manifest.columns:
        if col.startswith("AU"):
            manifest[col] = pd.to_numeric(manifest[col].replace("", np.nan), errors="coerce")
    if not all_rows:
        manifest = manifest.loc[manifest["status"].str.startswith("aligned")].reset_index(drop=True)
    manifest["crop"] = [str(cache_dir / c) if c else "" for c in manifest["crop"]]
    settings = json.loads((cache_dir / SETTINGS_FILE).read_text())
    manifest.attrs.update(settings.get("attrs", {}))
    manifest.attrs.update({"cache_dir": str(cache_dir), "size": settings["size"]})
    return manifest
