"""``predict``: a trained RE-Net or ResNet-18 on a user's images and videos, one row per frame
and face in OpenFace 2.0's CSV conventions (issue 34).

Columns: ``input`` (the video or image file), ``frame`` (1-based within its video or folder),
``face_id`` (0-based, faces in decreasing detector confidence), ``timestamp`` (seconds),
``confidence`` (the detector's score; the landmark file's confidence with ``landmarks``),
``success`` (1: a face was found and aligned; 0: none, the AU columns empty), then per AU of the
run ``AUxx_c`` (0/1 at the run's threshold) and ``AUxx_p`` (probability) for an occurrence run,
or ``AUxx_r`` (intensity 0-5, the run's decoding rule) for an intensity run.

A frame without a face gets a row with ``success`` 0, never a silent skip. The returned table's
``attrs`` hold ``problems`` (damage found in the inputs, each naming its file), ``seconds`` (time
spent decoding, detecting, aligning and in the model), ``synthetic_training`` and ``run``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from renet_core.base.progress import bar
from renet_core.data.align import AlignmentError
from renet_core.predict.align import aligned_crop, crop_side, network_input, reduction_for
from renet_core.predict.detect import DlibDetector, FaceDetector, points49
from renet_core.predict.frames import DEFAULT_FPS, check_inputs, count_frames, iter_frames
from renet_core.predict.landmarks import read_openface_csv
from renet_core.predict.model import LoadedRun, load_run, score

ID_COLUMNS = ["input", "frame", "face_id", "timestamp", "confidence", "success"]
SYNTHETIC_NOTE = ("the model was trained on SynthAU (synthetic drawn faces): its AU outputs on real faces "
                  "mean nothing; train on licensed BP4D or DISFA (the paper profile) for real AU codes")


def au_columns(run: LoadedRun) -> list[str]:
    """The AU columns of the run's table, in order."""
    names = run.au_names()
    if run.task == "occurrence":
        return [f"{n}_c" for n in names] + [f"{n}_p" for n in names]
    return [f"{n}_r" for n in names]


def _landmark_tables(landmarks, n_sources: int) -> list[dict] | None:
    if landmarks is None:
        return None
    files = [landmarks] if isinstance(landmarks, (str, Path)) else list(landmarks)
    if len(files) != n_sources:
        raise ValueError(f"{len(files)} landmark file(s) for {n_sources} input(s); give one landmark file per "
                         "input (video, folder or image), in the same order")
    return [read_openface_csv(f) for f in files]


class _Batcher:
    """Crops waiting for the model; their AU values are written into ``rows`` in batches."""

    def __init__(self, run: LoadedRun, rows: list[dict], batch_size: int, seconds: dict):
        self.run, self.rows, self.batch_size, self.seconds = run, rows, int(batch_size), seconds
        self.crops: list[np.ndarray] = []
        self.targets: list[int] = []

    def add(self, crop: np.ndarray, row: int) -> None:
        self.crops.append(crop)
        self.targets.append(row)
        if len(self.crops) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.crops:
            return
        started = time.perf_counter()
        values = score(self.run, network_input(self.crops, self.run.image_size))
        self.seconds["model"] += time.perf_counter() - started
        names = self.run.au_names()
        for row, v in zip(self.targets, values):
            if self.run.task == "occurrence":
                self.rows[row].update({f"{n}_p": float(p) for n, p in zip(names, v)})
                self.rows[row].update({f"{n}_c": int(p >= self.run.threshold) for n, p in zip(names, v)})
            else:
                self.rows[row].update({f"{n}_r": float(r) for n, r in zip(names, v)})
        self.crops, self.targets = [], []


def predict(inputs, run=None, checkpoint=None, landmarks=None, detector: FaceDetector | None = None,
            batch_size: int = 32, device: str = "cpu", fps: float = DEFAULT_FPS, progress: bool = True,
            keep_crops: bool = False) -> pd.DataFrame:
    """AU occurrence or intensity per frame and face of ``inputs`` (image files, folders of
    images, video files) from a run folder ``run`` (``best.pt`` + ``config.json``) or a
    ``checkpoint`` file. ``landmarks``: an OpenFace 2.0 CSV per input (a path for one input),
    used instead of ``detector`` (default :class:`renet_core.predict.detect.DlibDetector`).
    ``keep_crops``: the aligned crops (RGB, the run's crop size) in ``attrs["crops"]``, one per
    row (None where ``success`` is 0). Faces are aligned as the run's training crops were
    (:mod:`renet_core.predict.align`)."""
    sources = check_inputs(inputs)
    tables = _landmark_tables(landmarks, len(sources))
    loaded = load_run(run, checkpoint, device)
    if detector is None and tables is None:
        detector = DlibDetector()
    if loaded.synthetic:
        warnings.warn(SYNTHETIC_NOTE, stacklevel=2)
    size = crop_side(loaded.image_size)
    rows: list[dict] = []
    crops: list[np.ndarray | None] = []
    problems: list = []
    seconds = {"decode": 0.0, "detect": 0.0, "align": 0.0, "model": 0.0}
    batcher = _Batcher(loaded, rows, batch_size, seconds)
    counts = [count_frames(s) for s in sources]
    total = None if None in counts else sum(counts)
    progress_bar = bar(total=total, unit="frame", desc="predict", disable=not progress)
    try:
        for k, source in enumerate(sources):
            frames = iter_frames(source, problems, fps)
            while True:
                started = time.perf_counter()
                frame = next(frames, None)
                seconds["decode"] += time.perf_counter() - started
                if frame is None:
                    break
                _frame_rows(frame, tables[k] if tables else None, detector, loaded, size, rows, crops,
                            batcher, seconds, keep_crops)
                progress_bar.update(1)
        batcher.flush()
    finally:
        progress_bar.close()
    for problem in problems:
        warnings.warn(problem.message, stacklevel=2)
    table = pd.DataFrame(rows, columns=ID_COLUMNS + au_columns(loaded))
    for column in [c for c in table.columns if c.endswith("_c")]:   # 0/1, empty without a face
        table[column] = table[column].astype("Int64")
    table.attrs.update(problems=[p.message for p in problems], seconds=seconds, run=str(loaded.checkpoint),
                       synthetic_training=loaded.synthetic, task=loaded.task, aus=loaded.aus,
                       detector=getattr(detector, "name", "landmark file") if tables is None else "landmark file")
    if keep_crops:
        table.attrs["crops"] = crops
    return table


def _frame_rows(frame, table, detector, loaded, size, rows, crops, batcher, seconds, keep_crops) -> None:
    """The rows of one frame: one per aligned face, or one with ``success`` 0."""
    base = {"input": frame.input, "frame": frame.frame, "timestamp": round(frame.timestamp, 6)}
    faces = []
    if frame.image is not None:
        started = time.perf_counter()
        if table is not None:
            faces = table.get(frame.frame, [])
        else:
            faces = detector.detect(np.ascontiguousarray(frame.image[:, :, ::-1]))   # BGR -> RGB
        seconds["detect"] += time.perf_counter() - started
    face_id = 0
    for face in faces:
        started = time.perf_counter()
        try:
            pts = points49(face.landmarks)
            crop = aligned_crop(frame.image, pts, size, reduction_for(loaded.dataset, pts, size), frame.jpeg)
        except AlignmentError:
            continue   # degenerate landmarks: not a face the alignment can place
        finally:
            seconds["align"] += time.perf_counter() - started
        rows.append({**base, "face_id": face_id, "confidence": round(face.confidence, 4), "success": 1})
        crops.append(crop if keep_crops else None)
        batcher.add(crop, len(rows) - 1)
        face_id += 1
    if face_id == 0:
        rows.append({**base, "face_id": 0, "confidence": 0.0, "success": 0})
        crops.append(None)
