"""Atomic file writing: a crash never leaves a half-written result or checkpoint.

Every writer goes through :func:`atomic_path`: the data is written to a temporary file in the
same directory, flushed to disk, and moved over the target with :func:`os.replace`, which is
atomic on POSIX and Windows. Readers therefore see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; locks are no-ops there (one process at a time)
    fcntl = None

#: Name of a temporary file of :func:`atomic_path`: ``.<target name>.<8 random chars><suffix>``
#: (8 hex digits; older versions used :func:`tempfile.mkstemp`'s letters, digits and "_").
#: How run records stamp times ("finished" in done.json and total.json); read back by runall.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

PARTIAL_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+$")


def _create_temp(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty new file ``folder/<prefix><random><suffix>`` with the permissions an
    ordinary ``open(path, "w")`` gives (0666 less the umask, typically 0644), unlike
    :func:`tempfile.mkstemp`'s 0600, which ``os.replace`` would carry over to the target."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"could not create a temporary file for {prefix!r} in {folder}")


def remove_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (SIGKILL, power loss) left in
    ``folder`` (not recursive); returns them. Call it only where no writer is active, e.g. when
    a run starts in its own run folder."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if PARTIAL_NAME.match(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


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
    tmp_path = _create_temp(target.parent, f".{target.name}.", suffix or ".tmp")
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException as exc:
        full = disk_full(exc, target.parent)   # asked before the partial file goes and frees its space
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if full:
            raise DiskFullError(errno.ENOSPC, f"no space left on the disk of {target} while writing it ({full}; "
                                f"{type(exc).__name__}: {exc}). Nothing half-written was kept and {target.name} "
                                "is as it was; free some space (or point RENET_CACHE at a larger disk) and run "
                                "again", str(target)) from exc
        raise


class DiskFullError(OSError):
    """A write ran out of space: the error names the file (issue 31, case 8)."""


#: Below this many free bytes after a failed write, the disk is taken to be what failed it.
NEARLY_FULL = 1 << 20


def disk_full(exc: BaseException, folder: Path) -> str:
    """Why the failed write ``exc`` into ``folder`` ran out of space, in words, or "". Python's
    writers say so (ENOSPC, EDQUOT, EFBIG anywhere in the exception's chain); torch's checkpoint
    writer does not ("unexpected pos N vs M", "iostream error"), so for an OSError or RuntimeError
    the free space of the folder's disk is asked as well."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, (OSError, RuntimeError)):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return ""
        if free < NEARLY_FULL:
            return f"{free} bytes free on that disk when the write failed"
    return ""


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


@contextlib.contextmanager
def locked(lock_path: str | os.PathLike, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive inter-process lock on ``lock_path`` (POSIX ``flock``, released when the
    block ends or the process dies; a no-op where ``fcntl`` is unavailable). ``waiting`` is
    called once when another process holds the lock, before waiting for it."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder that exists or can be made: an error naming ``what`` (e.g. "the
    cache folder $RENET_CACHE") when it, or a folder above it, is a file."""
    path = Path(path).expanduser()
    for above in (path, *path.parents):
        if above.exists():
            if not above.is_dir():
                where = "is a file" if above == path else f"lies below the file {above}"
                raise ValueError(f"{what} {path} {where}, not a folder; expected a folder "
                                 "(it is made when missing)")
            break
    return path


def torch_save_atomic(obj, target: str | os.PathLike) -> Path:
    """``torch.save`` to ``target`` atomically (checkpoints survive a kill mid-write)."""
    import torch  # lazy: torch is heavy, and the data layer writes files without it

    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(obj, tmp)
    return Path(target)
