"""Atomic file writing: a crash never leaves a half-written result or checkpoint.

Every writer goes through :func:`atomic_path`: the data is written to a temporary file in the
same directory, flushed to disk, and moved over the target with :func:`os.replace`, which is
atomic on POSIX and Windows. Readers therefore see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it over ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched. ``fsync=False``
    skips flushing the data to disk before the rename (much faster for many small files, e.g.
    cached crops); the file is still never visible half-written under its final name, but after
    a power loss it may be empty, so callers that use it must sync before recording completion.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(target: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically and return the target path."""
    return write_bytes_atomic(target, text.encode(encoding))


def to_csv_atomic(frame, target: str | os.PathLike, **kwargs) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(target, suffix=".csv") as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(target)


def torch_save_atomic(obj, target: str | os.PathLike) -> Path:
    """``torch.save`` to ``target`` atomically (checkpoints survive a kill mid-write)."""
    import torch

    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(obj, tmp)
    return Path(target)
