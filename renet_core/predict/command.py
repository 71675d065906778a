"""``python -m renet_core predict INPUT... --run RUN_DIR | --checkpoint FILE [--out CSV]``: the
command line of :func:`renet_core.predict.predict` (issue 34).

Writes the table as CSV (atomically; default ``predictions.csv``), optionally the AU time-series
plot (``--plot PNG``), and prints a summary: frames, faces found, damage found in the inputs
(each naming its file; exit code 1 when there was any) and, for a run trained on SynthAU, that
its outputs on real faces mean nothing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from renet_core.base.io import atomic_path, to_csv_atomic
from renet_core.predict.api import SYNTHETIC_NOTE, predict
from renet_core.predict.detect import DlibDetector
from renet_core.predict.frames import PredictInputError
from renet_core.predict.landmarks import LandmarkFileError
from renet_core.predict.plot import plot_au_series


def add_parser(sub) -> None:
    """The ``predict`` subcommand's arguments."""
    p = sub.add_parser("predict", help="AU occurrence or intensity per frame of your own images and videos")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, video files")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a finished run's folder (config.json and best.pt)")
    which.add_argument("--checkpoint", help="a checkpoint file (best.pt or last.pt, with the config it carries)")
    p.add_argument("--out", default="predictions.csv", help="the CSV to write [predictions.csv]")
    p.add_argument("--landmarks", nargs="+", metavar="FILE",
                   help="OpenFace 2.0 CSV(s) with x_0..x_67, y_0..y_67, one per input, instead of the detector")
    p.add_argument("--plot", metavar="PNG", help="also write the first input's AU time series")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto [cpu]")
    p.add_argument("--upsample", type=int, default=1, help="detector: times the image is doubled [1]")
    p.add_argument("--min-confidence", type=float, default=0.0, help="detector: lowest score kept [0]")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    """Run ``predict`` for parsed arguments; 0 on success, 1 when an input was damaged."""
    detector = None if args.landmarks else DlibDetector(args.upsample, args.min_confidence)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = predict(args.inputs, run=args.run, checkpoint=args.checkpoint, landmarks=args.landmarks,
                            detector=detector, batch_size=args.batch_size, device=args.device,
                            progress=not args.no_progress)
    except (PredictInputError, LandmarkFileError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"predict: {exc}") from None
    to_csv_atomic(table, args.out, index=False)
    faces = int(table["success"].sum())
    frames = len(table.drop_duplicates(["input", "frame"]))
    print(f"{args.out}: {len(table)} rows, {frames} frames, {faces} faces aligned "
          f"({frames - len(table[table.success == 1].drop_duplicates(['input', 'frame']))} frames without a face); "
          f"detector: {table.attrs['detector']}")
    if args.plot and faces:
        figure = plot_au_series(table)
        with atomic_path(Path(args.plot), suffix=".png") as tmp:
            figure.savefig(tmp, dpi=120, format="png")
    if table.attrs["synthetic_training"]:
        print(f"note: {SYNTHETIC_NOTE}")
    for problem in table.attrs["problems"]:
        print(f"damaged input: {problem}")
    for warning in caught:
        if str(warning.message) not in table.attrs["problems"] and str(warning.message) != SYNTHETIC_NOTE:
            print(f"warning: {warning.message}")
    return 1 if table.attrs["problems"] else 0
