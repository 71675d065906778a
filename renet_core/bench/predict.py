"""``python -m renet_core.bench predict``: frames per second of ``predict``'s three stages, each
measured alone on the machine it runs on (issue 34):

* **detection**: the default detector (dlib HOG + 68-point shape predictor) on the registry
  photograph (scikit-image's astronaut, 512x512) and on a 640x480 frame made from it;
* **alignment**: the training crop of one face (similarity transform, warp, JPEG q95 round trip)
  at the crop side of each input size (256 px for 224, 55 px for the demo's 48);
* **model**: the all-AU pass of RE-Net and ResNet-18 (12 AUs, random weights: speed does not depend
  on them) on batches of crops at each input size.

The anchors' published figures are not measured here; nothing is asserted. Figures measured on a
loaded machine are not comparable: run it alone.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from renet_core.base.device import pick_device
from renet_core.data.dataset import normalise, resize_size
from renet_core.model import build_model
from renet_core.predict.align import aligned_crop
from renet_core.predict.demo import registry_photograph
from renet_core.predict.detect import DlibDetector, points49

AUS12 = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="for the model: cpu, cuda, mps, auto [cpu]")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[224, 48],
                        help="network input sizes [224,48: the paper's and the demo's]")
    parser.add_argument("--batch", type=int, default=32, help="model batch [32]")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per measurement at most [5]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def per_second(work, budget: float, items: int = 1, minimum: int = 2) -> float:
    """Items per second of ``work()`` (one warm-up call, then calls until ``budget`` seconds or
    ``minimum`` calls, whichever is later)."""
    work()
    calls, started = 0, time.perf_counter()
    while calls < minimum or time.perf_counter() - started < budget:
        work()
        calls += 1
    return calls * items / (time.perf_counter() - started)


def detection_fps(budget: float) -> dict[str, float]:
    detector = DlibDetector()
    photo = registry_photograph()
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 64:576] = cv2.resize(photo, (512, 480))
    return {f"{img.shape[1]}x{img.shape[0]}": per_second(lambda img=img: detector.detect(img), budget)
            for img in (photo, frame)}


def alignment_fps(sizes, budget: float) -> dict[int, float]:
    photo = registry_photograph()
    faces = DlibDetector().detect(photo)
    points = points49(faces[0].landmarks)
    bgr = np.ascontiguousarray(photo[:, :, ::-1])
    return {size: per_second(lambda side=resize_size(size): aligned_crop(bgr, points, side), budget)
            for size in sizes}


@torch.no_grad()
def model_fps(sizes, batch: int, device, budget: float) -> dict[tuple[str, int], float]:
    out = {}
    for kind in ("renet", "resnet18"):
        relation = np.eye(len(AUS12)) if kind == "renet" else None
        model = build_model(kind, AUS12, relation=relation).to(device).eval()
        for size in sizes:
            images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)

            def work(images=images):
                model.classify(model.features(normalise(images)))
                if device.type == "cuda":
                    torch.cuda.synchronize()
            out[(kind, size)] = per_second(work, budget, items=batch)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(f"predict's stages, frames (or faces) per second, each alone; model on {device}, "
          f"{torch.get_num_threads()} torch threads")
    for shape, fps in detection_fps(args.budget).items():
        print(f"  detection  dlib HOG + 68 landmarks, {shape} frame: {fps:8.1f} frames/s")
    for size, fps in alignment_fps(args.sizes, args.budget).items():
        print(f"  alignment  {resize_size(size)} px crop (input {size}): {fps:8.1f} faces/s")
    for (kind, size), fps in model_fps(args.sizes, args.batch, device, args.budget).items():
        print(f"  model      {kind:8s} {size} px, 12 AUs, batch {args.batch}: {fps:8.1f} faces/s")
    return 0
