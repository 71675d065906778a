"""``python -m renet_core ...``: the command line (:mod:`renet_core.cli.main`)."""

import sys

from renet_core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
