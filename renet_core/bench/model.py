"""``python -m renet_core.bench model``: inference and training speed of RE-Net vs ResNet-18.

Prints, for the machine it runs on (section 4.7 reports 5.4 ms/image for 12 AUs on a 2080Ti):
* 12-AU inference as the paper does it (a loop of C conditioned passes) and as this project does
  it (one batched pass), at each batch size, plus the ResNet-18 baseline's single pass;
* one training step of RE-Net (one random AU per batch, strategy 2) over the baseline's step.
Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import sys

import torch

from renet_core.base.device import pick_device
from renet_core.model.speed import PAPER_MS_PER_IMAGE, dtype_problem, inference_times, training_step_times


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m renet_core.bench model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.add_argument("--size", type=int, default=224, help="input resolution (paper: 224)")
    parser.add_argument("--aus", type=int, default=12, help="number of AUs (paper: 12)")
    parser.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per measurement at most")
    parser.add_argument("--dtype", choices=["float32", "bf16"], default=None,
                        help="default: bf16 on CUDA, float32 elsewhere")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="default: on for CUDA")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-training", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    asked = args.dtype
    if args.dtype is None:
        args.dtype = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    problem = dtype_problem(device, args.dtype)
    if problem and asked:
        print(f"--dtype {args.dtype} cannot run on {device} here (autocast check of RE-Net and ResNet-18 "
              f"failed in the {problem}); rerun with --dtype float32", file=sys.stderr)
        return 2
    if problem:
        print(f"note: {args.dtype} autocast fails on {device} ({problem}); measuring float32 instead")
        args.dtype = "float32"
    if args.channels_last is None:
        args.channels_last = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device: {device} ({name}); input {args.size}x{args.size}; {args.aus} AUs; dtype {args.dtype}; "
          f"channels_last {args.channels_last}; torch {torch.__version__}")
    print(f"paper (section 4.7): {PAPER_MS_PER_IMAGE} ms/image for 12 AUs on a 2080Ti "
          f"({1000 / PAPER_MS_PER_IMAGE:.0f} images/s)\n")

    rows = inference_times(device, args.size, args.batches, args.aus, args.dtype, args.channels_last, args.repeats,
                           args.budget)
    print(f"{'inference':<36}{'batch':>6}{'ms/batch':>11}{'ms/image':>10}{'images/s':>11}")
    for label, batch, seconds in rows:
        print(f"{label:<36}{batch:>6}{1000 * seconds:>11.1f}{1000 * seconds / batch:>10.2f}{batch / seconds:>11.1f}")
    by_key = {(label, batch): s for label, batch, s in rows}
    for batch in args.batches:
        loop = by_key[("RE-Net, loop of C passes (paper)", batch)]
        batched = by_key[("RE-Net, one batched pass", batch)]
        print(f"batch {batch}: batched pass is {loop / batched:.2f}x the loop's speed")

    if not args.skip_training:
        steps = training_step_times(device, args.size, args.train_batch, args.aus, args.dtype, args.channels_last,
                                    args.repeats, args.budget)
        print(f"\ntraining step, batch {args.train_batch}: ResNet-18 {1000 * steps['resnet18']:.1f} ms, "
              f"RE-Net (one AU per batch) {1000 * steps['renet']:.1f} ms, "
              f"ratio {steps['renet'] / steps['resnet18']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
