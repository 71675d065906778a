"""Facial landmark files of the three datasets -> 49x2 pixel arrays (None = lost frame).

* BP4D ``2DFeatures/<S>_<T>.mat``: MATLAB v7.3 (HDF5, read with h5py); ``fit/pred`` holds one
  object reference per tracked video frame, each a 2x49 array (49x2 after transposing);
  frames the tracker lost are empty (size <= 2) arrays.
* BP4D+ ``2DFeatures/<S>_<T>.mat``: MATLAB v5 (scipy.io.loadmat); a 1xN struct ``fit`` with
  ``frame`` (1-based), ``pts_2d`` (49x2 pixels) and ``headPose``; lost frames are empty.
* DISFA ``Landmark_Points/<SN>/tmp_frame_lm/*_lm.mat``: key ``pts``, 66x2; the 49 inner points
  are rows 18..66 (1-based), dropping the 17 jaw points (as PyTorch-JAANet does).

Either MATLAB version is accepted for every file (h5py for v7.3, scipy for older ones).

Coordinates: the three datasets' MATLAB files hold 1-based pixel coordinates (MATLAB indexes the
first pixel 1). Every reader subtracts ``origin`` (default 1, :data:`DEFAULT_ORIGIN`), so the
points it returns are 0-based (OpenCV's convention: pixel centres at integers), as JAA-Net does
("make the landmarks be indexed from 0") before the alignment this project adopted;
``origin=0`` reads the numbers as they are.

Malformed entries: a reader given an ``errors`` dict records a malformed entry there (key: the
entry's position, for BP4D+ its frame; value: a message naming the file) and returns None for it,
so one bad entry drops only its own frame; without ``errors`` it raises
:class:`LandmarkFileError`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.io import loadmat

from renet_core.data.bp4dplus import zip_images
from renet_core.data.layout import list_frame_images

N_POINTS = 49
DISFA_INNER = slice(17, 66)  # 66-point scheme -> 49 inner points (1-based 18..66)
#: The datasets' MATLAB landmark files are 1-based; readers subtract this by default.
DEFAULT_ORIGIN = 1
ORIGINS = (0, 1)


class LandmarkFileError(ValueError):
    """A landmark file that cannot be read or does not hold the expected arrays."""


class LandmarkReadError(LandmarkFileError):
    """A landmark file that cannot be opened or parsed at all (not a readable MATLAB file)."""


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(520)
    return b"\x89HDF\r\n\x1a\n" in head[:8] or head[512:520] == b"\x89HDF\r\n\x1a\n"


def as_points(array, path: Path | str = "", n_points: int = N_POINTS) -> np.ndarray | None:
    """An ``n_points x 2`` float array, or None for an empty (lost) or non-finite entry."""
    arr = np.asarray(array, dtype=float)
    if arr.size <= 2:
        return None
    if arr.ndim != 2:
        arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 2 else arr
    if arr.shape == (2, n_points) and arr.shape != (n_points, 2):
        arr = arr.T
    if arr.shape == (66, 2) and n_points == N_POINTS:
        arr = arr[DISFA_INNER]
    elif arr.shape == (2, 66) and n_points == N_POINTS:
        arr = arr.T[DISFA_INNER]
    if arr.shape != (n_points, 2):
        raise LandmarkFileError(f"{path}: landmark array of shape {arr.shape}, expected "
                                f"{n_points}x2 (or 66x2 for DISFA)")
    if not np.isfinite(arr).all():
        return None
    return np.ascontiguousarray(arr)


def _open_error(path: Path, exc: Exception) -> LandmarkFileError:
    return LandmarkReadError(f"{path}: cannot read MATLAB landmark file ({exc})")


def check_origin(origin) -> int:
    """``origin`` as an int, 0 or 1, else a ValueError saying what is expected."""
    if isinstance(origin, bool) or origin not in ORIGINS:
        raise ValueError(f"landmark_origin must be 1 (the datasets' MATLAB files are 1-based: "
                         f"subtract 1) or 0 (read the coordinates as they are), got {origin!r}")
    return int(origin)


def _shift(points: np.ndarray | None, origin: int) -> np.ndarray | None:
    return points if points is None or not origin else points - origin


def _entry(array_fn, path: Path, origin: int, what: str, errors: dict | None, key):
    """One entry -> 0-based 49x2 or None; a malformed entry raises, or is recorded in
    ``errors[key]`` (and read as None) when ``errors`` is given."""
    try:
        return _shift(as_points(array_fn(), path), origin)
    except Exception as exc:  # wrong shape, strings, a dangling reference ...
        message = (f"{exc} ({what})" if isinstance(exc, LandmarkFileError) else
                   f"{path}: {what}: {exc}; expected a 49x2 numeric array or an empty one")
        if errors is None:
            raise LandmarkFileError(message) from exc
        errors[key] = message
        return None


def read_bp4d_landmarks(path: str | Path, origin: int = DEFAULT_ORIGIN,
                        errors: dict | None = None) -> list[np.ndarray | None]:
    """BP4D ``2DFeatures`` file -> list over ``fit/pred`` entries (0-based 49x2, None when lost
    or, with ``errors``, malformed: ``errors[k]`` says why entry k was dropped)."""
    path = Path(path)
    origin = check_origin(origin)
    try:
        if _is_hdf5(path):
            with h5py.File(path, "r") as fh:
                if "fit" not in fh or "pred" not in fh["fit"]:
                    raise LandmarkFileError(f"{path}: no 'fit/pred' in the v7.3 file")
                refs = np.asarray(fh["fit/pred"]).ravel()
                return [_entry(lambda: np.asarray(fh[ref]), path, origin,
                               f"fit/pred entry {k}", errors, k) for k, ref in enumerate(refs)]

        fit = loadmat(path, squeeze_me=True, struct_as_record=False)["fit"]
        return [_entry(lambda: p, path, origin, f"fit.pred entry {k}", errors, k)
                for k, p in enumerate(np.atleast_1d(fit.pred))]
    except LandmarkFileError:
        raise
    except Exception as exc:  # h5py/scipy raise many types for a broken file
        raise _open_error(path, exc) from exc


def _frame_number(value, path: Path, k: int, errors: dict | None) -> int | None:
    """The 1-based frame number of ``fit`` entry ``k`` (None: no frame, or malformed)."""
    frame = np.asarray(value).ravel()
    if frame.size == 0:
        return None
    try:
        number = float(frame[0])
        if not np.isfinite(number) or number != int(number):
            raise ValueError(f"not a whole number: {frame[0]!r}")
    except (TypeError, ValueError) as exc:
        message = (f"{path}: fit entry {k}: malformed 'frame' ({exc}); expected a whole frame "
                   "number (its landmarks are not used)")
        if errors is None:
            raise LandmarkFileError(message) from exc
        errors[f"entry {k}"] = message
        return None
    return int(number)


def read_bp4dplus_landmarks(path: str | Path, origin: int = DEFAULT_ORIGIN,
                            errors: dict | None = None) -> dict[int, np.ndarray | None]:
    """BP4D+ ``2DFeatures`` file -> ``{frame (1-based): 0-based 49x2 or None}`` (None: lost or,
    with ``errors``, malformed: ``errors[frame]`` says why)."""
    path = Path(path)
    origin = check_origin(origin)
    try:
        if _is_hdf5(path):
            out: dict[int, np.ndarray | None] = {}
            with h5py.File(path, "r") as fh:
                frames = np.asarray(fh["fit/frame"]).ravel()
                pts = np.asarray(fh["fit/pts_2d"]).ravel()
                for k, (fref, pref) in enumerate(zip(frames, pts)):
                    frame = _frame_number(np.asarray(fh[fref]), path, k, errors)
                    if frame is not None:
                        out[frame] = _entry(lambda: np.asarray(fh[pref]), path, origin,
                                            f"fit entry {k} (frame {frame})", errors, frame)
            return out

        fit = loadmat(path, squeeze_me=False, struct_as_record=True)
        if "fit" not in fit:
            raise LandmarkFileError(f"{path}: no struct 'fit' in the file")
        fit = fit["fit"].ravel()
        if fit.dtype.names is None or not {"frame", "pts_2d"} <= set(fit.dtype.names):
            raise LandmarkFileError(f"{path}: struct 'fit' lacks the fields 'frame', 'pts_2d'")
        out = {}
        for k, entry in enumerate(fit):
            frame = _frame_number(entry["frame"], path, k, errors)
            if frame is not None:
                out[frame] = _entry(lambda: entry["pts_2d"], path, origin,
                                    f"fit entry {k} (frame {frame})", errors, frame)
        return out
    except LandmarkFileError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc


def read_disfa_landmarks(path: str | Path, origin: int = DEFAULT_ORIGIN) -> np.ndarray | None:
    """DISFA per-frame file (key ``pts``, 66x2) -> the 49 inner points (0-based), or None when
    empty."""
    path = Path(path)
    origin = check_origin(origin)
    try:
        if _is_hdf5(path):
            with h5py.File(path, "r") as fh:
                return _shift(as_points(np.asarray(fh["pts"]).T, path), origin)

        mat = loadmat(path)
        if "pts" not in mat:
            raise LandmarkFileError(f"{path}: no variable 'pts' in the file")
        return _shift(as_points(mat["pts"], path), origin)
    except LandmarkFileError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc


# ------------------------------------------------------------------ the landmarks of one job
#: Why a frame's landmarks are missing (a manifest ``status``), besides a plain lost frame.
NO_LANDMARKS = "skipped: no landmarks"
MALFORMED_LANDMARKS = "skipped: malformed landmarks"
UNREADABLE_LANDMARKS = "skipped: unreadable landmark file"
NO_LANDMARK_ENTRY = "skipped: no landmark entry (landmark file shorter than the image list)"
LANDMARK_COUNT_MISMATCH = "skipped: landmark entries do not match the images"


def bp4d_entry_keys(frames: list[int], ranks: list[int], numbers: list[int] | None,
                    n_entries: int) -> list[int] | None:
    """The ``fit/pred`` entry of each BP4D frame, by the rule the layout allows:

    * one entry per image of the sequence folder (``numbers``, the folder's frame numbers):
      the frame's rank among the images (``ranks``; frame - 1 for a folder from frame 1);
    * otherwise, entries that cover frames 1 .. the last image's number (a whole video with
      some images missing): entry frame - 1, by frame number, never by position;
    * otherwise None: which entry belongs to which frame is unknown (a count mismatch).
    """
    if numbers is None or len(numbers) == n_entries:
        return list(ranks)
    if numbers and min(numbers) >= 1 and max(numbers) <= n_entries:
        return [int(f) - 1 if r >= 0 else -1 for f, r in zip(frames, ranks)]
    return None


def job_landmarks(rows: pd.DataFrame, messages: list,
                  origin: int = DEFAULT_ORIGIN) -> tuple[list, dict]:
    """One 0-based 49x2 array or None per row, and ``{row: skip status}`` for the None rows
    that are not plain lost frames (malformed entry, unreadable file, no entry, a BP4D landmark
    file whose entries cannot be matched to the sequence's images)."""
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
            n_entries = len(table)
            numbers, where = _sequence_images(rows)
            keys = bp4d_entry_keys([int(f) for f in rows["frame"]],
                                   [int(k) for k in rows["landmark_index"]], numbers, n_entries)
            if keys is None:
                first = rows.iloc[0]
                messages.append(
                    f"{path}: {n_entries} landmark entries for {len(numbers)} images (frames "
                    f"{min(numbers)}-{max(numbers)}) in {where}; expected one entry per image, or "
                    f"one per frame from 1 to the last: which entry belongs to which frame is "
                    f"unknown, so sequence {first['subject']} {first['task']} is not aligned "
                    "(restore its images or its landmark file)")
                return out, {i: LANDMARK_COUNT_MISMATCH for i in range(len(rows))
                             if rows["image_path"].iloc[i]}
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
    if beyond and kind != "bp4d_fit_pred":
        n_images, where = _sequence_images(rows)
        n_images = None if n_images is None else len(n_images)
        if n_images is not None and n_entries < n_images:
            messages.append(f"{path}: {n_entries} landmark entries for {n_images} images in "
                            f"{where}; expected one entry per image: labelled frames without an "
                            "entry are skipped")
        else:
            missing = sorted(int(keys[i]) for i in beyond if rows["image_path"].iloc[i])
            if missing:
                messages.append(f"{path}: no landmark entry for labelled frame(s) {missing[:10]}"
                                f"{' ...' if len(missing) > 10 else ''}; expected an entry per "
                                "frame: these frames are skipped")
    for i in beyond:
        if rows["image_path"].iloc[i]:
            reasons[i] = NO_LANDMARK_ENTRY
    return out, reasons


def _sequence_images(rows: pd.DataFrame) -> tuple[list[int] | None, str]:
    """Frame numbers (sorted) of the images of the job's sequence (folder or zip task folder)
    and where they are; None when there is no image to locate them by."""
    with_image = rows.loc[rows["image_path"] != ""]
    if with_image.empty:
        return None, ""
    first = with_image.iloc[0]
    kind = first["image_kind"]
    try:
        if kind == "file":
            folder = Path(first["image_path"]).parent
            return sorted(list_frame_images(folder)), str(folder)
        if kind == "zip":
            task = str(first["image_member"]).replace("\\", "/").split("/")[-2].upper()
            return (sorted(zip_images(Path(first["image_path"])).get(task, {})),
                    f"{first['image_path']}:{task}")
    except Exception:  # an unreadable folder or zip is reported where the images are read
        return None, ""
    return None, ""
