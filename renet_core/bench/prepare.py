"""``python -m renet_core.bench prepare``: frames/s of :func:`renet_core.data.prepare`.

Writes a BP4D-layout copy of BP4D-sized frames (1040x1392 JPEG, one face with known landmarks;
a few distinct frames repeated under different names) to a temporary folder, then times
``prepare`` (decode, align to 256x256, encode, atomic write) on it. Aim (issue 4): 150 frames/s
on 2 cores, so the real BP4D (146,847 frames) is prepared in under 20 minutes. Prints figures
for this machine; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import cv2

from renet_core.data import prepare
from renet_core.data.fixtures import draw_face, face_landmarks, write_bp4d_mat

WIDTH, HEIGHT = 1040, 1392
BP4D_FRAMES = 146_847


def write_bp4d_like(root: Path, frames: int, distinct: int = 6) -> None:
    """A BP4D layout with ``frames`` labelled 1040x1392 frames in sequences of 250."""
    faces = []
    for k in range(distinct):
        points = face_landmarks(WIDTH, HEIGHT, eye_distance=190 + 10 * k, angle_deg=4 * k - 10,
                                centre=(WIDTH / 2 + 8 * k, HEIGHT * 0.42))
        data = cv2.imencode(".jpg", draw_face(points, WIDTH, HEIGHT, k),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        faces.append((points, data))
    header = ",".join(str(i) for i in range(100))
    per_sequence = 250
    subjects = [f"F{i:03d}" for i in range(1, 24)] + [f"M{i:03d}" for i in range(1, 19)]
    done, s = 0, 0
    while done < frames:
        subject, task = subjects[s % len(subjects)], f"T{s // len(subjects) + 1}"
        n = min(per_sequence, frames - done)
        folder = root / "BP4D-training" / subject / task
        folder.mkdir(parents=True)
        rows, points = [header], []
        for f in range(1, n + 1):
            p, data = faces[(f + s) % distinct]
            (folder / f"{f:04d}.jpg").write_bytes(data)
            points.append(p)
            rows.append(",".join([str(f)] + ["0"] * 99))
        label = root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(rows) + "\n")
        write_bp4d_mat(root / "2DFeatures" / f"{subject}_{task}.mat", points)
        done, s = done + n, s + 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench prepare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames to prepare [600]")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="prepare worker processes [CPU count]")
    parser.add_argument("--size", type=int, default=256, help="crop size [256]")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="renet_bench_prepare_") as tmp:
        root = Path(tmp) / "bp4d"
        start = time.perf_counter()
        write_bp4d_like(root, args.frames)
        print(f"wrote {args.frames} frames of {WIDTH}x{HEIGHT} JPEG in "
              f"{time.perf_counter() - start:.1f} s ({root})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no intensity files: reported, irrelevant here
            start = time.perf_counter()
            out = prepare("bp4d", root, Path(tmp) / "cache", size=args.size,
                          workers=args.workers, progress=False, intensity_aus=[])
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            prepare("bp4d", root, Path(tmp) / "cache", size=args.size, workers=args.workers,
                    progress=False, intensity_aus=[])
            resume = time.perf_counter() - start
            start = time.perf_counter()
            prepare("bp4d", root, Path(tmp) / "cache1", size=args.size, workers=1,
                    progress=False, intensity_aus=[])
            single = len(out) / (time.perf_counter() - start)
    rate = len(out) / seconds
    print(f"prepare: {len(out)} frames aligned to {args.size}x{args.size} with {args.workers} "
          f"worker(s) on {os.cpu_count()} CPU(s) in {seconds:.2f} s = {rate:.1f} frames/s "
          f"(including pool start-up)")
    print(f"  real BP4D ({BP4D_FRAMES:,} frames) at this rate: {BP4D_FRAMES / rate / 60:.1f} min "
          f"(aim: 150 frames/s, under 20 min)")
    print(f"  one process, no pool: {single:.1f} frames/s (the per-core rate; a long run with "
          f"{args.workers} workers approaches {args.workers} x this)")
    print(f"  second run (resume, nothing to do): {resume:.2f} s")
    return 0
