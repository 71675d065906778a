"""Facial landmark files of the three datasets -> 49x2 pixel arrays (None = lost frame).

* BP4D ``2DFeatures/<S>_<T>.mat``: MATLAB v7.3 (HDF5, read with h5py); ``fit/pred`` holds one
  object reference per tracked video frame, each a 2x49 array (49x2 after transposing);
  frames the tracker lost are empty (size <= 2) arrays.
* BP4D+ ``2DFeatures/<S>_<T>.mat``: MATLAB v5 (scipy.io.loadmat); a 1xN struct ``fit`` with
  ``frame`` (1-based), ``pts_2d`` (49x2 pixels) and ``headPose``; lost frames are empty.
* DISFA ``Landmark_Points/<SN>/tmp_frame_lm/*_lm.mat``: key ``pts``, 66x2; the 49 inner points
  are rows 18..66 (1-based), dropping the 17 jaw points (as PyTorch-JAANet does).

Either MATLAB version is accepted for every file (h5py for v7.3, scipy for older ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_POINTS = 49
DISFA_INNER = slice(17, 66)  # 66-point scheme -> 49 inner points (1-based 18..66)


class LandmarkFileError(ValueError):
    """A landmark file that cannot be read or does not hold the expected arrays."""


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
    return LandmarkFileError(f"{path}: cannot read MATLAB landmark file ({exc})")


def read_bp4d_landmarks(path: str | Path) -> list[np.ndarray | None]:
    """BP4D ``2DFeatures`` file -> list over ``fit/pred`` entries (49x2 or None when lost)."""
    path = Path(path)
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as fh:
                if "fit" not in fh or "pred" not in fh["fit"]:
                    raise LandmarkFileError(f"{path}: no 'fit/pred' in the v7.3 file")
                refs = np.asarray(fh["fit/pred"]).ravel()
                return [as_points(np.asarray(fh[ref]), path) for ref in refs]
        from scipy.io import loadmat

        fit = loadmat(path, squeeze_me=True, struct_as_record=False)["fit"]
        return [as_points(p, path) for p in np.atleast_1d(fit.pred)]
    except LandmarkFileError:
        raise
    except Exception as exc:  # h5py/scipy raise many types for a broken file
        raise _open_error(path, exc) from exc


def read_bp4dplus_landmarks(path: str | Path) -> dict[int, np.ndarray | None]:
    """BP4D+ ``2DFeatures`` file -> ``{frame (1-based): 49x2 or None}``."""
    path = Path(path)
    try:
        if _is_hdf5(path):
            import h5py

            out: dict[int, np.ndarray | None] = {}
            with h5py.File(path, "r") as fh:
                frames = np.asarray(fh["fit/frame"]).ravel()
                pts = np.asarray(fh["fit/pts_2d"]).ravel()
                for fref, pref in zip(frames, pts):
                    frame = int(np.asarray(fh[fref]).ravel()[0])
                    out[frame] = as_points(np.asarray(fh[pref]), path)
            return out
        from scipy.io import loadmat

        fit = loadmat(path, squeeze_me=False, struct_as_record=True)
        if "fit" not in fit:
            raise LandmarkFileError(f"{path}: no struct 'fit' in the file")
        fit = fit["fit"].ravel()
        if fit.dtype.names is None or not {"frame", "pts_2d"} <= set(fit.dtype.names):
            raise LandmarkFileError(f"{path}: struct 'fit' lacks the fields 'frame', 'pts_2d'")
        out = {}
        for entry in fit:
            frame = np.asarray(entry["frame"]).ravel()
            if frame.size == 0:
                continue
            out[int(frame[0])] = as_points(entry["pts_2d"], path)
        return out
    except LandmarkFileError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc


def read_disfa_landmarks(path: str | Path) -> np.ndarray | None:
    """DISFA per-frame file (key ``pts``, 66x2) -> the 49 inner points, or None when empty."""
    path = Path(path)
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as fh:
                return as_points(np.asarray(fh["pts"]).T, path)
        from scipy.io import loadmat

        mat = loadmat(path)
        if "pts" not in mat:
            raise LandmarkFileError(f"{path}: no variable 'pts' in the file")
        return as_points(mat["pts"], path)
    except LandmarkFileError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc
