"""MATLAB landmark files in the shapes the real datasets use, marked synthetic in their headers.

* :func:`write_mat73_fit` -- BP4D ``2DFeatures/<S>_<T>.mat``: MATLAB v7.3 (HDF5) with a struct
  ``fit`` whose ``pred`` is a 1xN cell of 49x2 double arrays (stored as N references to 2x49
  HDF5 datasets, MATLAB's column-major order) and ``pose.rot`` a 1xN cell of 3x3 rotations;
  frames the tracker lost are MATLAB empties (a size-2 uint64 dataset with ``MATLAB_empty=1``).
* :func:`write_mat5_fit` -- BP4D+ ``2DFeatures/<S>_<T>.mat``: MATLAB v5, 1xN struct ``fit`` with
  ``frame``, ``pts_2d`` (49x2, empty when lost) and ``headPose`` (3x1 radians).
* :func:`mat5_bytes` -- any dict as MATLAB v5 bytes (DISFA's per-frame ``pts``).

The 116-byte MATLAB text header carries a fixed text saying the file is synthetic instead of a
creation time, so the same data give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import scipy.io

HEADER_V5 = b"MATLAB 5.0 MAT-file, written by renet_core.synth: SYNTHETIC SynthAU data, not a real recording"
HEADER_V73 = (b"MATLAB 7.3 MAT-file, written by renet_core.synth: SYNTHETIC SynthAU data. "
              b"HDF5 schema 1.00 .")


def _text_header(text: bytes) -> bytes:
    return text.ljust(116, b" ")[:116]


def mat5_bytes(data: dict) -> bytes:
    """MATLAB v5 file bytes of ``data`` (scipy.io.savemat) with the synthetic header."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, format="5", do_compression=False, oned_as="column")
    raw = bytearray(buf.getvalue())
    raw[:116] = _text_header(HEADER_V5)
    return bytes(raw)


def write_mat5_fit(path: Path, frames: np.ndarray, pts49: list[np.ndarray | None],
                   head_pose: np.ndarray) -> None:
    """BP4D+ v5 ``fit`` struct array (``pts49[i] is None`` = frame lost by the tracker)."""
    dt = [("frame", "O"), ("pts_2d", "O"), ("headPose", "O")]
    fit = np.empty((1, len(frames)), dtype=dt)
    for i, f in enumerate(frames):
        fit[0, i]["frame"] = np.array([[float(f)]])
        fit[0, i]["pts_2d"] = np.zeros((0, 0)) if pts49[i] is None else np.asarray(pts49[i], float)
        fit[0, i]["headPose"] = np.asarray(head_pose[i], float).reshape(3, 1)
    path.write_bytes(mat5_bytes({"fit": fit}))


def _matlab_double(group: h5py.Group, name: str, value: np.ndarray | None) -> h5py.Dataset:
    if value is None:
        ds = group.create_dataset(name, data=np.zeros(2, dtype=np.uint64))
        ds.attrs["MATLAB_empty"] = np.uint8(1)
    else:
        ds = group.create_dataset(name, data=np.ascontiguousarray(np.asarray(value, float).T))
    ds.attrs["MATLAB_class"] = np.bytes_("double")
    return ds


def write_mat73_fit(path: Path, pts49: list[np.ndarray | None], rotations: np.ndarray) -> None:
    """BP4D v7.3 ``fit`` struct: ``fit/pred`` and ``fit/pose/rot`` cells of per-frame references."""
    with h5py.File(path, "w", userblock_size=512, track_order=False) as f:
        refs = f.create_group("#refs#")
        fit = f.create_group("fit")
        fit.attrs["MATLAB_class"] = np.bytes_("struct")
        pose = fit.create_group("pose")
        pose.attrs["MATLAB_class"] = np.bytes_("struct")
        pred_refs, rot_refs = [], []
        for i, pts in enumerate(pts49):
            pred_refs.append(_matlab_double(refs, f"p{i:05d}", pts).ref)
            rot_refs.append(_matlab_double(refs, f"r{i:05d}", rotations[i]).ref)
        for grp, name, lst in ((fit, "pred", pred_refs), (pose, "rot", rot_refs)):
            ds = grp.create_dataset(name, data=np.array(lst, dtype=h5py.ref_dtype).reshape(-1, 1))
            ds.attrs["MATLAB_class"] = np.bytes_("cell")
    with open(path, "r+b") as fh:  # MATLAB's 128-byte text header inside the HDF5 user block
        fh.write(_text_header(HEADER_V73) + b"\x00" * 8 + b"\x00\x02" + b"IM")
