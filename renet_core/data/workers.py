"""The worker processes of :func:`renet_core.data.cache.prepare`: a pool of ``spawn`` processes
when the program can start them safely (:func:`renet_core.base.spawn.spawn_blocker`), else the
jobs in this process, with one line saying why and how to get the workers back.
"""

from __future__ import annotations

import multiprocessing as mp
import os

from renet_core.base.progress import bar
from renet_core.base.spawn import main_is_guarded, spawn_blocker
from renet_core.data.crops import run_job

__all__ = ["main_is_guarded", "run_jobs"]


def run_jobs(jobs: list, workers: int | None, progress: bool, total: int, say=print):
    """Yield each job's outcome (:func:`renet_core.data.crops.run_job`) as it finishes:
    ``workers`` processes (default: CPU count; 0 or 1: this process)."""
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = max(0, min(workers, len(jobs)))
    blocker = spawn_blocker() if workers > 1 else None
    if blocker:
        say(f"prepare: aligning in this process instead of {workers} workers: {blocker}")
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
