"""CLI: ``python -m renet_core.synth LAYOUT ROOT [--size smoke|demo] [--seed N] [--coupling C]
[--setting default|control]`` (synthetic data)."""

from __future__ import annotations

import argparse
import json
import time

from . import LAYOUTS, SETTINGS, read_marker, setting_knobs, write_dataset
from .plans import SIZES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m renet_core.synth",
                                     description="Write a SynthAU dataset (SYNTHETIC faces and "
                                                 "labels) in the real BP4D / DISFA / BP4D+ layout.")
    parser.add_argument("layout", choices=LAYOUTS)
    parser.add_argument("root")
    parser.add_argument("--size", choices=SIZES, default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--coupling", type=float, default=1.0,
                        help="AU co-occurrence: 0 independent, 1 the default prototypes, above 1 stronger")
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="default",
                        help="a named setting; 'control': the premise experiment's positive control")
    for knob, typ in (("subtlety", float), ("noise", float), ("pose", float),
                      ("identity_spread", float), ("blur", float), ("jpeg_quality", int)):
        parser.add_argument("--" + knob.replace("_", "-"), dest=knob, type=typ, default=None)
    args = parser.parse_args(argv)
    knobs = {k: v for k, v in vars(args).items()
             if k in ("subtlety", "noise", "pose", "identity_spread", "blur", "jpeg_quality")
             and v is not None}
    knobs.update(setting_knobs(args.setting, args.coupling))
    t0 = time.time()
    root = write_dataset(args.layout, args.root, size=args.size, seed=args.seed,
                         workers=args.workers, overwrite=args.overwrite, progress=True, **knobs)
    counts = (read_marker(root) or {}).get("counts", {})
    print(f"SynthAU (synthetic) {args.layout} {args.size} seed {args.seed} -> {root} "
          f"in {time.time() - t0:.1f} s: {json.dumps(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
