"""The worker processes of :func:`renet_core.data.cache.prepare`: a pool of ``spawn`` processes
when the program can start them safely, else the jobs in this process.

A ``spawn`` worker starts by importing the program's main module again (as ``__mp_main__``). A
plain script without an ``if __name__ == "__main__":`` guard (the README's Python API example
saved as a file) would then run its own top level in every worker: the worker dies, the pool
starts another, for ever. So a pool is used only where the main module is guarded, or is not a
file (a notebook, ``python -c``, an interactive session); otherwise the jobs run in this process,
and one line says how to get the workers back.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import os
import sys
from pathlib import Path

from renet_core.base.progress import bar
from renet_core.data.crops import run_job


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test)
    return "__name__" in test and "__main__" in test


def main_is_guarded(main=None) -> bool:
    """Whether ``spawn`` workers can import the main module without running the program again:
    it is not a file, or its top level holds an ``if __name__ == "__main__":`` block."""
    main = sys.modules.get("__main__") if main is None else main
    path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return True
    try:
        tree = ast.parse(Path(path).read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return True   # not Python source (a frozen or compiled program): spawn copes
    return any(_is_main_guard(node) for node in tree.body)


def run_jobs(jobs: list, workers: int | None, progress: bool, total: int, say=print):
    """Yield each job's outcome (:func:`renet_core.data.crops.run_job`) as it finishes:
    ``workers`` processes (default: CPU count; 0 or 1: this process)."""
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = max(0, min(workers, len(jobs)))
    if workers > 1 and not main_is_guarded():
        main = getattr(sys.modules.get("__main__"), "__file__", "the main script")
        say(f"prepare: {main} has no 'if __name__ == \"__main__\":' block, so worker processes "
            "would run it again; aligning in this process instead (put the script's code under "
            f"that block to use {workers} workers)")
        workers = 0
    frames = bar(total=total, unit="frame", desc="prepare", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                out = run_job(job)
                frames.update(len(out["frames"]))
                yield out
            return
        with mp.get_context("spawn").Pool(workers) as pool:
            for out in pool.imap_unordered(run_job, jobs):
                frames.update(len(out["frames"]))
                yield out
    finally:
        frames.close()
