"""Dispatch ``python -m renet_core.bench NAME ...`` to ``renet_core.bench.NAME.main``."""

import importlib
import sys

from renet_core.bench import BENCHMARKS


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m renet_core.bench {%s} [options]" % ",".join(BENCHMARKS))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
