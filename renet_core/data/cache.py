"""``prepare``: align every labelled frame to a ``size x size`` crop and cache it (section 4.3).

Cache layout (``cache_dir``):

* ``prepare.json``: the settings the cache was made with (a later run with other settings is
  refused rather than mixing crops);
* ``crops/<subject>/<task>/<frame>.jpg``: the aligned crops (JPEG quality 95);
* ``status/<job>.csv``: per sequence (DISFA: per subject video) the outcome of every frame,
  written when the job finishes; a run that finds a job's status file and its crops skips it,
  so an interrupted run resumes where it stopped and a second run redoes nothing;
* ``manifest.csv``: the index plus ``status`` and ``crop`` (relative to ``cache_dir``).

Every file is written atomically (:mod:`renet_core.io`); temporary files left by a killed run
are removed at the start of the next one, so nothing half-written stays in the cache.

Landmarks are read 1-based (``landmark_origin=1``, default): the datasets' MATLAB files count
pixels from 1, so 1 is subtracted before aligning, as JAA-Net does; ``landmark_origin=0`` reads
them as they are. The setting is part of ``prepare.json``; caches written before it existed
(which read the files as 0-based) are refused (``PREPARE_VERSION``).

Bad frames never abort the run: an image that cannot be read or decoded (a zero-byte file, a
truncated JPEG, garbage) is skipped, counted per reason and named (a warning per file, and the
printed summary lists them); a malformed landmark entry drops only its own frame; a BP4D or BP4D+
landmark file with fewer entries than the sequence has images is reported with both counts.
Each skipped frame's status records the size and mtime of its image and landmark files
(``stamp``): when either changed, the next run checks that frame again. The per-reason summary
is printed whether or not progress bars are shown.

Lost landmarks (the tracker lost the face, or DISFA lacks the frame's landmark file): with
``lost_landmarks="skip"`` (default, as JAA-Net's lists, which drop BP4D frames without
landmarks) the frame is skipped and counted; with ``"nearest"`` the landmarks of the nearest
frame of the same sequence that has them are used, if it is at most ``max_gap`` frames away.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.data.align import AlignmentError, alignment_matrix
from renet_core.data.landmarks import (DEFAULT_ORIGIN, LandmarkFileError, LandmarkReadError,
                                       check_origin, read_bp4d_landmarks, read_bp4dplus_landmarks,
                                       read_disfa_landmarks)
from renet_core.io import write_bytes_atomic, to_csv_atomic, write_text_atomic

ALIGNED = "aligned"
ALIGNED_NEAREST = "aligned (nearest frame's landmarks)"
JOB_FRAMES = 128  # image sequences are cut into jobs of at most this many frames
JPEG_QUALITY = 95
SETTINGS_FILE = "prepare.json"
#: 2: landmarks read 1-based by default (``landmark_origin``); per-frame ``stamp`` of skipped
#: frames. Caches of another version are refused, never mixed.
PREPARE_VERSION = 2
NO_LANDMARKS = "skipped: no landmarks"
MALFORMED_LANDMARKS = "skipped: malformed landmarks"
UNREADABLE_LANDMARKS = "skipped: unreadable landmark file"
NO_LANDMARK_ENTRY = "skipped: no landmark entry (landmark file shorter than the image list)"
UNREADABLE_IMAGE = "skipped: unreadable image"
TRUNCATED_IMAGE = "skipped: truncated image"
MANIFEST = "manifest.csv"
_JOB_COLUMNS = ["subject", "task", "frame", "image_kind", "image_path", "image_member",
                "image_index", "landmark_kind", "landmark_path", "landmark_index"]


# ----------------------------------------------------------------------------- writing

def write_crop(target: Path, data: bytes) -> None:
    """Write a crop atomically, without a per-file fsync.

    A per-file fsync costs ~9 ms a crop (it made ``prepare`` 6x slower). A crash still never
    leaves a half-written crop under its final name; durability against power loss is restored
    once per job: :func:`prepare` calls ``os.sync()`` before it records a job as done, so a job
    found done on resume has its crops on disk.
    """
    write_bytes_atomic(target, data, fsync=False)


# ----------------------------------------------------------------------------- reading

def _is_truncated_jpeg(data: bytes) -> bool:
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]


def _reduction(points: np.ndarray, size: int) -> int:
    """Largest JPEG decode reduction (1, 2, 4, 8) that never upsamples the crop."""
    matrix = alignment_matrix(points, size=size)
    scale = float(np.hypot(*matrix[0, :2]))
    for factor in (8, 4, 2):
        if scale * factor <= 1.0:
            return factor
    return 1


def _decode(data: bytes, reduce: int):
    import cv2

    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag)


def _crop_bytes(image, points, size, reduce=1) -> bytes:
    """Align (scaling landmarks to a reduced decode) and encode the crop as JPEG."""
    import cv2

    if reduce > 1:  # reduced pixel i covers full pixels r*i .. r*i+r-1
        points = (points - (reduce - 1) / 2.0) / reduce
    matrix = alignment_matrix(points, size=size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


# ----------------------------------------------------------------------------- landmarks

def _job_landmarks(rows: pd.DataFrame, messages: list,
                   origin: int = DEFAULT_ORIGIN) -> tuple[list, dict]:
    """One 0-based 49x2 array or None per row, and ``{row: skip status}`` for the None rows
    that are not plain lost frames (malformed entry, unreadable file, no entry)."""
    kind = rows["landmark_kind"].iloc[0]
    out: list = [None] * len(rows)
    reasons: dict[int, str] = {}
    if kind == "disfa_pts":
        for i, path in enumerate(rows["landmark_path"]):
            if path:
                try:
                    out[i] = read_disfa_landmarks(path, origin)
                except LandmarkFileError as exc:
                    messages.append(str(exc))
                    reasons[i] = (UNREADABLE_LANDMARKS if isinstance(exc, LandmarkReadError)
                                  else MALFORMED_LANDMARKS)
        return out, reasons
    path = rows["landmark_path"].iloc[0]
    if not path:
        return out, reasons
    errors: dict = {}
    try:
        if kind == "bp4d_fit_pred":
            table = read_bp4d_landmarks(path, origin, errors)
            keys = [int(k) for k in rows["landmark_index"]]
            n_entries = len(table)
            out = [table[k] if 0 <= k < n_entries else None for k in keys]
            beyond = [i for i, k in enumerate(keys) if k >= n_entries]
        else:
            table = read_bp4dplus_landmarks(path, origin, errors)
            keys = [int(k) for k in rows["landmark_index"]]
            n_entries = len(table) + sum(1 for k in errors if not isinstance(k, int))
            out = [table.get(k) for k in keys]
            beyond = [i for i, k in enumerate(keys) if k not in table and k not in errors]
    except LandmarkFileError as exc:
        messages.append(str(exc))
        return out, {i: UNREADABLE_LANDMARKS for i in range(len(rows))}
    for i, k in enumerate(keys):
        if k in errors:
            reasons[i] = MALFORMED_LANDMARKS
    # one message per malformed entry this job uses (each names the file and the entry)
    messages.extend(errors[k] for k in sorted({k for k in keys if k in errors}))
    messages.extend(v for k, v in errors.items() if not isinstance(k, int))
    n_images, where = (_sequence_images(rows) if beyond or kind == "bp4d_fit_pred"
                       else (None, ""))
    if n_images is not None and n_entries < n_images:
        messages.append(f"{path}: {n_entries} landmark entries for {n_images} images in "
                        f"{where}; expected one entry per image: labelled frames without an "
                        "entry are skipped")
    elif beyond and kind != "bp4d_fit_pred":
        missing = sorted(int(keys[i]) for i in beyond if rows["image_path"].iloc[i])
        if missing:
            messages.append(f"{path}: no landmark entry for labelled frame(s) {missing[:10]}"
                            f"{' ...' if len(missing) > 10 else ''}; expected an entry per "
                            "frame: these frames are skipped")
    for i in beyond:
        if rows["image_path"].iloc[i]:
            reasons[i] = NO_LANDMARK_ENTRY
    return out, reasons


def _sequence_images(rows: pd.DataFrame) -> tuple[int | None, str]:
    """Number of images of the job's sequence (folder or zip task folder) and where they are."""
    from renet_core.data.layout import list_frame_images

    with_image = rows.loc[rows["image_path"] != ""]
    if with_image.empty:
        return None, ""
    first = with_image.iloc[0]
    kind = first["image_kind"]
    try:
        if kind == "file":
            folder = Path(first["image_path"]).parent
            return len(list_frame_images(folder)), str(folder)
        if kind == "zip":
            from renet_core.data.bp4dplus import zip_images

            task = str(first["image_member"]).replace("\\", "/").split("/")[-2].upper()
            return (len(zip_images(Path(first["image_path"])).get(task, {})),
                    f"{first['image_path']}:{task}")
    except Exception:  # an unreadable folder or zip is reported where the images are read
        return None, ""
    return None, ""


def _fill_nearest(frames: np.ndarray, points: list, max_gap: int) -> tuple[list, list]:
    """Lost-landmark rule "nearest": borrow the closest tracked frame within ``max_gap``."""
    have = np.array([p is not None for p in points])
    borrowed = [False] * len(points)
    if have.all() or not have.any():
        return points, borrowed
    tracked = frames[have]
    tracked_points = [p for p in points if p is not None]
    filled = list(points)
    for i in np.flatnonzero(~have):
        j = int(np.argmin(np.abs(tracked - frames[i])))
        if abs(int(tracked[j]) - int(frames[i])) <= max_gap:
            filled[i] = tracked_points[j]
            borrowed[i] = True
    return filled, borrowed


# ----------------------------------------------------------------------------- one job

def run_job(job: dict) -> dict:
    """Align the frames of one job; returns statuses and messages (runs in a worker)."""
    import cv2

    cv2.setNumThreads(1)
    rows = pd.DataFrame(job["rows"], columns=_JOB_COLUMNS + ["crop"])
    cache = Path(job["cache_dir"])
    size, messages = job["size"], []
    points, reasons = _job_landmarks(rows, messages, job.get("landmark_origin", DEFAULT_ORIGIN))
    borrowed = [False] * len(rows)
    if job["lost_landmarks"] == "nearest":
        points, borrowed = _fill_nearest(rows["frame"].to_numpy(), points, job["max_gap"])
    status = ["" if path else "skipped: no image" for path in rows["image_path"]]
    for i, p in enumerate(points):
        if status[i]:
            continue
        if p is None:
            status[i] = reasons.get(i, NO_LANDMARKS)
        else:
            try:
                alignment_matrix(p, size=size)
            except AlignmentError as exc:
                status[i] = f"skipped: degenerate landmarks ({exc})"
    kind = rows["image_kind"].iloc[0]
    if kind == "video":
        _video_frames(rows, points, status, cache, size, messages)
    else:
        _image_frames(rows, points, status, cache, size, messages, kind)
    for i in range(len(rows)):
        if status[i] == ALIGNED and borrowed[i]:
            status[i] = ALIGNED_NEAREST
    crops = [c if s.startswith(ALIGNED) else "" for c, s in zip(rows["crop"], status)]
    stamps = _stamps(rows, status)
    return {"name": job["name"], "frames": rows["frame"].tolist(), "status": status,
            "crop": crops, "stamp": stamps, "messages": messages}


def _file_stamp(path: str, memo: dict) -> str:
    """``"size:mtime_ns"`` of a file, ``"-"`` if it does not exist, ``""`` for no path."""
    if not path:
        return ""
    if path not in memo:
        try:
            info = os.stat(path)
            memo[path] = f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            memo[path] = "-"
    return memo[path]


def _stamps(rows: pd.DataFrame, status: list) -> list[str]:
    """Per skipped frame, the stamps of its image and landmark files (aligned frames: "")."""
    memo: dict = {}
    return ["" if s.startswith(ALIGNED) else
            f"{_file_stamp(image, memo)}|{_file_stamp(landmark, memo)}"
            for s, image, landmark in zip(status, rows["image_path"], rows["landmark_path"])]


def _image_frames(rows, points, status, cache, size, messages, kind):
    archive = None
    try:
        for i, row in enumerate(rows.itertuples(index=False)):
            if status[i]:
                continue
            target = cache / row.crop
            if target.is_file():
                status[i] = ALIGNED
                continue
            if not row.image_path:
                status[i] = "skipped: no image"
                continue
            try:
                if kind == "zip":
                    if archive is None or archive.filename != row.image_path:
                        archive = zipfile.ZipFile(row.image_path)
                    data = archive.read(row.image_member)
                    where = f"{row.image_path}:{row.image_member}"
                else:
                    data = Path(row.image_path).read_bytes()
                    where = row.image_path
            except (OSError, KeyError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                status[i] = UNREADABLE_IMAGE
                where = f"{row.image_path}:{row.image_member}" if kind == "zip" else row.image_path
                messages.append(f"{where}: cannot read the image ({exc})")
                continue
            if not data:
                status[i] = UNREADABLE_IMAGE
                messages.append(f"{where}: empty file (0 bytes); expected a JPEG image (a failed "
                                "copy? copy the file again)")
                continue
            if _is_truncated_jpeg(data):
                status[i] = TRUNCATED_IMAGE
                messages.append(f"{where}: truncated JPEG (no end-of-image marker); expected a "
                                "complete JPEG file")
                continue
            reduce = _reduction(points[i], size)
            try:
                image = _decode(data, reduce)
            except Exception as exc:  # cv2.error: OpenCV refuses the buffer
                image, reason = None, f" ({str(exc).strip().splitlines()[-1]})"
            else:
                reason = ""
            if image is None or image.size == 0:
                status[i] = UNREADABLE_IMAGE
                messages.append(f"{where}: not a decodable image{reason} ({len(data)} bytes); "
                                "expected a JPEG image")
                continue
            write_crop(target, _crop_bytes(image, points[i], size, reduce))
            status[i] = ALIGNED
    finally:
        if archive is not None:
            archive.close()


def _video_frames(rows, points, status, cache, size, messages):
    """Decode the video sequentially (no seeking: seeking compressed AVIs is unreliable)."""
    import cv2

    order = np.argsort(rows["image_index"].to_numpy(), kind="stable")
    todo = [i for i in order if not status[i]]
    for i in list(todo):
        if (cache / rows["crop"].iloc[i]).is_file():
            status[i] = ALIGNED
    todo = [i for i in todo if not status[i]]
    if not todo:
        return
    path = rows["image_path"].iloc[0]
    if not path:
        for i in todo:
            status[i] = "skipped: no image"
        return
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        messages.append(f"{path}: cannot open the video")
        for i in todo:
            status[i] = "skipped: unreadable video"
        return
    position = 0  # index of the next frame the capture will return
    try:
        for n, i in enumerate(todo):
            target_index = int(rows["image_index"].iloc[i])
            ok = True
            while ok and position < target_index:
                ok = capture.grab()
                position += 1
            ok = ok and capture.grab()
            image = capture.retrieve()[1] if ok else None
            position += 1
            if image is None:
                messages.append(f"{path}: video ended after {position - 1} decoded frames; "
                                f"the labels expect frame index {target_index} (truncated?)")
                for j in todo[n:]:
                    status[j] = "skipped: video ended early"
                return
            write_crop(cache / rows["crop"].iloc[i], _crop_bytes(image, points[i], size))
            status[i] = ALIGNED
    finally:
        capture.release()


# ----------------------------------------------------------------------------- jobs

def crop_relpath(subject: str, task: str, frame: int) -> str:
    return f"crops/{subject}/{task or 'video'}/{int(frame):06d}.jpg"


def _jobs(index: pd.DataFrame, cache_dir: Path, settings: dict) -> list[dict]:
    jobs = []
    for (subject, task), rows in index.groupby(["subject", "task"], sort=True):
        rows = rows[_JOB_COLUMNS].copy()
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


def _done(cache_dir: Path, job: dict) -> pd.DataFrame | None:
    """The job's recorded statuses if it finished before with all its crops present and no
    skipped frame's image or landmark file changed since (else the job runs again: its
    existing crops are kept, its skipped frames are checked again)."""
    path = cache_dir / "status" / f"{job['name']}.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"crop": str, "status": str, "stamp": str},
                        keep_default_na=False)
    if len(table) != len(job["rows"]) or "stamp" not in table.columns:
        return None
    if table["frame"].astype(np.int64).tolist() != [int(r[2]) for r in job["rows"]]:
        return None
    aligned = table["status"].str.startswith("aligned")
    if not all((cache_dir / c).is_file() for c in table.loc[aligned, "crop"]):
        return None
    rows = pd.DataFrame(job["rows"], columns=_JOB_COLUMNS + ["crop"])
    skipped = np.flatnonzero(~aligned.to_numpy())
    if len(skipped):
        now = _stamps(rows.iloc[skipped], table["status"].iloc[skipped].tolist())
        if now != table["stamp"].iloc[skipped].tolist():
            return None
    return table


def _remove_leftovers(cache_dir: Path) -> int:
    """Delete temporary files left by a killed run (atomic writers' hidden ``.name.*`` files)."""
    removed = 0
    for folder in (cache_dir, cache_dir / "status", cache_dir / "crops"):
        if not folder.is_dir():
            continue
        walker = os.walk(folder) if folder.name == "crops" else [(str(folder), [], os.listdir(folder))]
        for base, _, names in walker:
            for name in names:
                path = Path(base, name)
                if (name.startswith(".") and name.endswith((".tmp", ".csv", ".jpg"))
                        and path.is_file()):
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed


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
    from renet_core.data.index import load_index

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
    _check_settings(cache_dir, settings)
    leftovers = _remove_leftovers(cache_dir)
    jobs = _jobs(index, cache_dir, settings)
    results, todo = {}, []
    for job in jobs:
        done = _done(cache_dir, job)
        if done is None:
            todo.append(job)
        else:
            results[job["name"]] = done
    n_todo = sum(len(j["rows"]) for j in todo)
    say = print if progress else (lambda *a, **k: None)
    if leftovers:
        say(f"prepare: removed {leftovers} temporary file(s) left by an interrupted run")
    if not todo:
        say(f"prepare: nothing to do, all {len(index)} frames already prepared in {cache_dir}")
    else:
        say(f"prepare: {n_todo} of {len(index)} frames to align into {cache_dir} "
            f"({len(jobs) - len(todo)} of {len(jobs)} jobs already done)")
        warned: set = set()
        for out in _run(todo, workers, progress, n_todo):
            table = pd.DataFrame({"frame": out["frames"], "status": out["status"],
                                  "crop": out["crop"], "stamp": out["stamp"]})
            os.sync()  # the job's crops reach the disk before the job is recorded as done
            to_csv_atomic(table, cache_dir / "status" / f"{out['name']}.csv")
            results[out["name"]] = table
            for message in out["messages"]:
                if message not in warned:  # a sequence cut into jobs repeats its file messages
                    warned.add(message)
                    warnings.warn(message, stacklevel=2)
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


def _run(jobs, workers, progress, total):
    from tqdm.auto import tqdm

    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = max(0, min(workers, len(jobs)))
    bar = tqdm(total=total, unit="frame", desc="prepare", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                out = run_job(job)
                bar.update(len(out["frames"]))
                yield out
            return
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for out in pool.imap_unordered(run_job, jobs):
                bar.update(len(out["frames"]))
                yield out
    finally:
        bar.close()


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
