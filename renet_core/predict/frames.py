"""The frames of a user's inputs: image files, folders of images (a sequence, in name order) and
video files, decoded one at a time.

Bad input (issue 34): an input that gives no frame at all (a missing path, a folder without
images, a video OpenCV cannot open or decode, a single image that is not decodable) is an error
naming the file, raised by :func:`check_inputs` before any work. Damage after the first frame
is not fatal: a video that ends before the frame count in its header keeps every frame read
before the damage, and an undecodable image inside a folder becomes a frame without a face
(``success`` 0); each is reported as a :class:`InputProblem` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")
#: Frames per second given to a folder of images (OpenFace's default for image sequences).
DEFAULT_FPS = 30.0


class PredictInputError(ValueError):
    """An input that cannot be used at all (named, with what was expected)."""


@dataclass
class Source:
    """One input: ``kind`` "video", "image" or "folder" (its ``images`` in name order)."""

    path: Path
    kind: str
    images: tuple[Path, ...] = ()


@dataclass
class Frame:
    """One decoded frame: its ``input`` (the video or image file), ``frame`` (1-based within its
    source), ``timestamp`` (seconds), the image (BGR uint8, None when undecodable) and, for a JPEG
    file, its bytes (the training's reduced decode reads them again)."""

    input: str
    frame: int
    timestamp: float
    image: np.ndarray | None
    jpeg: bytes | None = None


@dataclass
class InputProblem:
    """Damage found while reading (the frames before it are kept)."""

    path: str
    message: str


def _is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def decode_image(path: Path) -> tuple[np.ndarray | None, bytes | None, str]:
    """``(BGR image or None, the bytes when JPEG, why not decodable)`` of an image file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, None, f"cannot read the file ({exc.strerror})"
    if not data:
        return None, None, "empty file (0 bytes)"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return None, None, f"not a decodable image ({len(data)} bytes)"
    if _is_jpeg(data) and b"\xff\xd9" not in data[-64:]:
        return None, None, f"truncated JPEG ({len(data)} bytes, no end-of-image marker)"
    return image, (data if _is_jpeg(data) else None), ""


def _folder_images(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))


def _check_video(path: Path) -> None:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise PredictInputError(f"{path}: cannot open the video (empty, damaged, or a format OpenCV "
                                    f"cannot decode); expected a video file such as {', '.join(VIDEO_SUFFIXES[:4])}")
        ok, image = capture.read()
        if not ok or image is None:
            raise PredictInputError(f"{path}: the video opens but no frame can be decoded (empty or "
                                    "damaged from its first frame)")
    finally:
        capture.release()


def check_inputs(inputs) -> list[Source]:
    """The sources of ``inputs`` (paths), each checked to give at least one frame; an input that
    cannot is an error naming it."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    sources = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = _folder_images(path)
            if not images:
                raise PredictInputError(f"{path}: folder with no images; expected image files "
                                        f"({', '.join(IMAGE_SUFFIXES)}) directly inside it")
            sources.append(Source(path, "folder", images))
        elif not path.exists():
            raise PredictInputError(f"{path}: no such file or folder; expected images, folders of "
                                    "images or video files")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            image, _, why = decode_image(path)
            if image is None:
                raise PredictInputError(f"{path}: {why}; expected an image file")
            sources.append(Source(path, "image"))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            _check_video(path)
            sources.append(Source(path, "video"))
        else:
            raise PredictInputError(f"{path}: unknown kind of file ({path.suffix or 'no suffix'}); expected "
                                    f"an image ({', '.join(IMAGE_SUFFIXES)}) or a video "
                                    f"({', '.join(VIDEO_SUFFIXES)}) or a folder of images")
    if not sources:
        raise PredictInputError("no input given; expected images, folders of images or video files")
    return sources


def count_frames(source: Source) -> int | None:
    """Frames the source is expected to give (a video's header count; None when unknown)."""
    if source.kind == "image":
        return 1
    if source.kind == "folder":
        return len(source.images)
    capture = cv2.VideoCapture(str(source.path))
    try:
        n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return n if n > 0 else None


def iter_frames(source: Source, problems: list[InputProblem], fps: float = DEFAULT_FPS) -> Iterator[Frame]:
    """The frames of one source, in order; damage is appended to ``problems``."""
    if source.kind == "video":
        yield from _video_frames(source.path, problems)
        return
    paths = source.images if source.kind == "folder" else (source.path,)
    for k, path in enumerate(paths, start=1):
        image, jpeg, why = decode_image(path)
        if image is None:
            problems.append(InputProblem(str(path), f"{path}: {why}; written as a frame without a face "
                                         "(success 0)"))
        yield Frame(str(path), k, (k - 1) / fps, image, jpeg)


def _video_frames(path: Path, problems: list[InputProblem]) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        k = 0
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            k += 1
            yield Frame(str(path), k, (k - 1) / fps, image)
    finally:
        capture.release()
    if expected > 0 and k < expected:
        problems.append(InputProblem(str(path), f"{path}: the video ended after {k} of the {expected} frames "
                                     "its header announces (truncated or damaged); the frames read before "
                                     "the damage are kept"))
