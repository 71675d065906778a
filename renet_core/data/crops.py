"""Aligned crops of one preparation job: read each frame's image (file, zip member or video
frame), align it by its landmarks (:mod:`renet_core.data.align`) and write the crop as a JPEG
(section 4.3). Runs in a worker process of :func:`renet_core.data.cache.prepare`; returns each
frame's status and the messages to report, never raises for a bad frame."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from renet_core.base.io import write_bytes_atomic
from renet_core.data.align import AlignmentError, alignment_matrix
from renet_core.data.landmarks import DEFAULT_ORIGIN, NO_LANDMARKS, job_landmarks

ALIGNED = "aligned"
ALIGNED_NEAREST = "aligned (nearest frame's landmarks)"
JPEG_QUALITY = 95
UNREADABLE_IMAGE = "skipped: unreadable image"
TRUNCATED_IMAGE = "skipped: truncated image"
JOB_COLUMNS = ["subject", "task", "frame", "image_kind", "image_path", "image_member",
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
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag)


def _crop_bytes(image, points, size, reduce=1) -> bytes:
    """Align (scaling landmarks to a reduced decode) and encode the crop as JPEG."""
    if reduce > 1:  # reduced pixel i covers full pixels r*i .. r*i+r-1
        points = (points - (reduce - 1) / 2.0) / reduce
    matrix = alignment_matrix(points, size=size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()



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
    cv2.setNumThreads(1)
    rows = pd.DataFrame(job["rows"], columns=JOB_COLUMNS + ["crop"])
    cache = Path(job["cache_dir"])
    size, messages = job["size"], []
    points, reasons = job_landmarks(rows, messages, job.get("landmark_origin", DEFAULT_ORIGIN))
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
    return {"name": job["name"], "frames": rows["frame"].tolist(), "status": status,
            "crop": crops, "stamp": job.get("stamps") or stamps(rows),
            "bytes": crop_bytes(cache, crops), "messages": messages}


def _file_stamp(path: str, memo: dict) -> str:
    """``"size:mtime_ns"`` of a file (a folder: its mtime, which moves when a file is added or
    removed), ``"-"`` if it does not exist, ``""`` for no path."""
    if not path:
        return ""
    if path not in memo:
        try:
            info = os.stat(path)
            memo[path] = f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            memo[path] = "-"
    return memo[path]


def stamps(rows: pd.DataFrame) -> list[str]:
    """Per frame, what its crop was made from: the stamps of its image file (a zip or a video:
    the whole file), of its landmark file and, for image files, of their folder (an image added
    or removed can change which landmark entry a BP4D frame takes). A frame whose stamp changed
    is aligned again (:func:`renet_core.data.cache.prepare`)."""
    memo: dict = {}
    out = []
    for kind, image, landmark in zip(rows["image_kind"], rows["image_path"], rows["landmark_path"]):
        folder = str(Path(image).parent) if kind == "file" and image else ""
        out.append(f"{_file_stamp(image, memo)}|{_file_stamp(landmark, memo)}|{_file_stamp(folder, memo)}")
    return out


def crop_is_whole(path: Path) -> bool:
    """Whether a cached crop is a complete JPEG file (start and end-of-image markers)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(-2, os.SEEK_END)
            tail = fh.read(2)
    except OSError:
        return False
    return head == b"\xff\xd8" and tail == b"\xff\xd9"


def crop_bytes(cache: Path, crops: list[str]) -> list[int]:
    """Size of each written crop (0 for none): recorded, so a crop cut short is re-made."""
    sizes = []
    for crop in crops:
        try:
            sizes.append(os.path.getsize(cache / crop) if crop else 0)
        except OSError:
            sizes.append(-1)
    return sizes


def _image_frames(rows, points, status, cache, size, messages, kind):
    archive = None
    try:
        for i, row in enumerate(rows.itertuples(index=False)):
            if status[i]:
                continue
            target = cache / row.crop
            if crop_is_whole(target):   # made by an earlier, interrupted run of this job
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
    order = np.argsort(rows["image_index"].to_numpy(), kind="stable")
    todo = [i for i in order if not status[i]]
    for i in list(todo):
        if crop_is_whole(cache / rows["crop"].iloc[i]):
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
