"""Issue 21 (reliability round 3), the data layer: no crop is made from stale files or used
damaged, BP4D landmark entries are never matched to a neighbour's frame, two processes never
break one cache, and the README's API example works from a plain script.

* case 1: an edited landmark file re-aligns the frames it affects (same cache);
* case 2: a deleted image: landmark entries matched by frame number, a count mismatch skips the
  sequence naming it, and a kept cache drops the frame;
* case 6: a cut crop is an error naming it at read time, and prepare makes it again;
* case 8: a second prepare of one cache waits for the first and deletes none of its files;
* case 9: ``prepare`` with workers from a script without a ``__main__`` guard ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from renet_core.base.io import locked
from renet_core.data import load_manifest, prepare
from renet_core.data.dataset import read_crop
from renet_core.data.fixtures import draw_face, face_landmarks, write_bp4d_mat, write_jpeg
from renet_core.data.landmarks import LANDMARK_COUNT_MISMATCH, bp4d_entry_keys
from renet_core.data.workers import main_is_guarded

W, H = 160, 200
HEADER = ",".join(str(i) for i in range(100))
REPO = Path(__file__).resolve().parents[2]


def _points(k):
    return face_landmarks(W, H, 40 + 2 * k, angle_deg=3 * k, centre=(80 + k, 80))


def _bp4d(root, frames=(1, 2, 3, 4, 5, 6), entries=None):
    """BP4D F001/T1: every frame's image drawn from its own landmarks; one entry per frame."""
    root = Path(root)
    (root / "AUCoding/AU_OCC").mkdir(parents=True, exist_ok=True)
    rows = [",".join([str(f)] + ["0"] * 99) for f in frames]
    (root / "AUCoding/AU_OCC/F001_T1.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    images = {f: write_jpeg(root / "BP4D-training/F001/T1" / f"{f:04d}.jpg",
                            draw_face(_points(f), W, H, f)) for f in frames}
    write_bp4d_mat(root / "2DFeatures/F001_T1.mat",
                   entries if entries is not None else [_points(f) for f in frames])
    return root, images


def _prepare(root, cache, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = prepare("bp4d", root, cache, size=64, workers=1, progress=False, **kwargs)
    return out, [str(w.message) for w in caught]


def _crops(out):
    return {int(f): cv2.imread(c) for f, c in zip(out["frame"], out["crop"])}


# ----------------------------------------------------------------------------- case 1

def test_an_edited_landmark_file_realigns_the_frames_it_affects(tmp_path):
    root, _ = _bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    before = _crops(_prepare(root, cache)[0])
    mat = root / "2DFeatures/F001_T1.mat"
    moved = [_points(f) + (6.0 if f == 2 else 0.0) for f in range(1, 7)]   # frame 2 fixed by hand
    write_bp4d_mat(mat, moved)
    os.utime(mat, ns=(time.time_ns(), time.time_ns() + 10**9))
    kept = _crops(_prepare(root, cache)[0])
    fresh = _crops(_prepare(root, tmp_path / "fresh")[0])
    assert np.abs(kept[2].astype(int) - before[2]).mean() > 1      # re-aligned ...
    for f in range(1, 7):                                          # ... as a fresh cache aligns it
        np.testing.assert_array_equal(kept[f], fresh[f])


# ----------------------------------------------------------------------------- case 2

def test_landmark_entries_follow_frame_numbers_when_an_image_is_deleted(tmp_path):
    root, images = _bp4d(tmp_path / "bp4d")
    images[3].unlink()                                    # 6 entries for frames 1..6, 5 images
    out, _ = _prepare(root, tmp_path / "cache")
    crops = _crops(out)
    assert sorted(crops) == [1, 2, 4, 5, 6]
    intact, _ = _bp4d(tmp_path / "intact")                # the same frames, nothing deleted
    reference = _crops(_prepare(intact, tmp_path / "cache2")[0])
    for f in (4, 5, 6):                                   # each frame keeps its own landmarks
        np.testing.assert_array_equal(crops[f], reference[f])
    assert bp4d_entry_keys([4, 5], [2, 3], [1, 2, 4, 5, 6], 6) == [3, 4]
    assert bp4d_entry_keys([4, 5], [0, 1], [4, 5], 2) == [0, 1]          # coded frames only
    assert bp4d_entry_keys([4, 5], [0, 1], [4, 5, 6], 2) is None         # more images than entries


@pytest.mark.parametrize("frames, entries, deleted", [((3, 4, 5, 6), 4, 4), ((13, 14, 15, 16), 7, None)])
def test_a_count_mismatch_skips_the_sequence_and_names_it(tmp_path, frames, entries, deleted):
    # a folder of coded frames only: 4 entries for its 4 images until one is deleted (fewer
    # images than entries), or 7 entries for 4 images numbered beyond 7 (more entries): neither
    # one entry per image nor one per frame number from 1, so no frame can be matched
    root, _ = _bp4d(tmp_path / "bp4d", frames=frames, entries=[_points(k) for k in range(entries)])
    if deleted:
        (root / f"BP4D-training/F001/T1/{deleted:04d}.jpg").unlink()
    out, messages = _prepare(root, tmp_path / "cache")
    assert len(out) == 0
    assert set(load_manifest(tmp_path / "cache", all_rows=True)["status"]) >= {LANDMARK_COUNT_MISMATCH}
    named = [m for m in messages if "sequence F001 T1 is not aligned" in m]
    assert len(named) == 1 and "F001_T1.mat" in named[0] and "landmark entries for" in named[0]


def test_a_deleted_image_is_not_used_from_a_kept_cache(tmp_path):
    root, images = _bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    first, _ = _prepare(root, cache)
    assert 3 in set(first["frame"])
    images[3].unlink()
    out, _ = _prepare(root, cache)
    assert sorted(out["frame"]) == [1, 2, 4, 5, 6]
    assert load_manifest(cache, all_rows=True).set_index("frame").loc[3, "status"] == "skipped: no image"


# ----------------------------------------------------------------------------- case 6

@pytest.mark.parametrize("keep", [0.6, 0.05])
def test_a_damaged_crop_is_an_error_and_prepare_makes_it_again(tmp_path, keep):
    root, _ = _bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    out, _ = _prepare(root, cache)
    crop = Path(out["crop"].iloc[1])
    whole = crop.read_bytes()
    crop.write_bytes(whole[: int(len(whole) * keep)])     # cut mid-file, or to a few bytes
    with pytest.raises(ValueError, match=rf"{crop.name}: cached crop damaged.*makes it again"):
        read_crop(str(crop), 64)
    out, _ = _prepare(root, cache)
    assert crop.read_bytes() == whole and len(out) == 6
    assert read_crop(str(crop), 64).shape == (64, 64, 3)
    crop.unlink()
    with pytest.raises(FileNotFoundError, match="cached crop missing"):
        read_crop(str(crop), 64)


# ----------------------------------------------------------------------------- case 8

def test_a_second_prepare_waits_and_deletes_no_live_writers_file(tmp_path):
    root, _ = _bp4d(tmp_path / "bp4d")
    cache = tmp_path / "cache"
    _prepare(root, cache)
    live = cache / "crops/F001/T1/.000002.jpg.1a2b3c4d.tmp"   # another process writing a crop
    live.write_bytes(b"half")
    done = []
    with locked(cache / ".prepare.lock"):                      # ... while holding the cache
        worker = threading.Thread(target=lambda: done.append(_prepare(root, cache)[0]))
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and live.exists()             # waits; the file is untouched
    worker.join(60)
    assert len(done[0]) == 6 and not live.exists()             # then: its leftovers go, work reused


# ----------------------------------------------------------------------------- case 9

@pytest.mark.parametrize("how", ["script", "stdin"])
def test_prepare_with_workers_from_an_unguarded_script_ends(tmp_path, how):
    """Round 3 case 9, and round 4 case 6: the same program read from standard input
    (``python - <<EOF``), whose main file ``<stdin>`` no spawn worker can read again."""
    root, _ = _bp4d(tmp_path / "bp4d")
    import shutil  # a second sequence: two jobs, so a pool
    shutil.copy(root / "AUCoding/AU_OCC/F001_T1.csv", root / "AUCoding/AU_OCC/F002_T1.csv")
    shutil.copytree(root / "BP4D-training/F001", root / "BP4D-training/F002")
    shutil.copy(root / "2DFeatures/F001_T1.mat", root / "2DFeatures/F002_T1.mat")
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(f"""
        from renet_core.data import prepare
        out = prepare("bp4d", {str(root)!r}, {str(tmp_path / 'cache')!r}, size=64, workers=2,
                      progress=False)
        print("aligned", len(out))
    """))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args, stdin = ([sys.executable, str(script)], None) if how == "script" else ([sys.executable, "-"], script.read_text())
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        text, _ = proc.communicate(stdin, timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("prepare() from a plain script did not end (spawn workers re-running the script)")
    assert proc.returncode == 0, text
    assert "aligned 12" in text
    assert ("no 'if __name__" in text) if how == "script" else ("standard input" in text)
    assert main_is_guarded(type("M", (), {"__file__": str(script)})) is False
    guarded = tmp_path / "guarded.py"
    guarded.write_text("def main():\n    pass\n\nif __name__ == '__main__':\n    main()\n")
    assert main_is_guarded(type("M", (), {"__file__": str(guarded)})) is True
    assert main_is_guarded(type("M", (), {})) is True                     # a notebook, python -c
    assert main_is_guarded(type("M", (), {"__file__": "<stdin>"})) is False   # python -, a pipe
