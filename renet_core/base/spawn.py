"""Whether ``spawn`` worker processes can start from this program.

A ``spawn`` worker starts by importing the program's main module again (as ``__mp_main__``). That
goes wrong two ways, and each makes a process pool restart dying workers without end:

* a plain script without an ``if __name__ == "__main__":`` guard (the README's Python API example
  saved as a file) runs its own top level again in every worker;
* a program read from standard input (``python - <<EOF``, ``cat script.py | python``) has the main
  file ``<stdin>``, which no worker can read back.

Every pool of the project asks :func:`spawn_blocker` first and works in its own process (saying
why) when spawn workers could not start. A main module without a file (a notebook, ``python -c``,
an interactive session, ``python -m``'s guarded modules) is fine.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test)
    return "__name__" in test and "__main__" in test


def spawn_blocker(main=None) -> str | None:
    """Why ``spawn`` workers cannot import the main module ``main`` (default: this program's),
    in words, or None when they can."""
    main = sys.modules.get("__main__") if main is None else main
    path = getattr(main, "__file__", None)
    if not path:
        return None          # a notebook, python -c, an interactive session
    if not os.path.isfile(path):
        return (f"the program was read from {path} (standard input), which worker processes cannot "
                "read again; save it as a file with an 'if __name__ == \"__main__\":' block to use workers")
    try:
        tree = ast.parse(Path(path).read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None          # not Python source (a frozen or compiled program): spawn copes
    if any(_is_main_guard(node) for node in tree.body):
        return None
    return (f"{path} has no 'if __name__ == \"__main__\":' block, so worker processes would run it "
            "again; put the script's code under that block to use workers")


def main_is_guarded(main=None) -> bool:
    """Whether ``spawn`` workers can import the main module without running the program again
    (:func:`spawn_blocker` finds nothing against it)."""
    return spawn_blocker(main) is None
