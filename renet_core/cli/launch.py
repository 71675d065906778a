"""Many runs at once, one per GPU: each config file becomes a ``python -m renet_core train``
process with its own ``CUDA_VISIBLE_DEVICES`` (the ``grid`` and ``cv --gpus`` commands)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence


def spread_runs(config_files: Sequence[str | os.PathLike], gpus: Sequence[int | str],
                extra_args: Sequence[str] = (), poll_s: float = 2.0, python: str = sys.executable) -> list[int]:
    """Run ``python -m renet_core train --config FILE`` for every file, one per GPU at a time.

    ``gpus`` are device ids for ``CUDA_VISIBLE_DEVICES`` (on a CPU-only machine pass e.g.
    ``["", ""]`` for two concurrent CPU runs). Returns the exit codes in the order of
    ``config_files``; a failed run does not stop the others. Logs go to ``<config>.log``.
    """
    pending = list(enumerate(config_files))
    running: dict[str, tuple[int, subprocess.Popen, object]] = {}
    codes: dict[int, int] = {}
    slots = [str(g) for g in gpus]
    if not slots:
        raise ValueError("spread_runs needs at least one GPU slot")
    free = list(range(len(slots)))
    while pending or running:
        while pending and free:
            slot = free.pop(0)
            index, cfg = pending.pop(0)
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=slots[slot])
            log = open(Path(cfg).with_suffix(".log"), "w")
            cmd = [python, "-m", "renet_core", "train", "--config", str(cfg), *extra_args]
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[str(slot)] = (index, proc, log)
        time.sleep(poll_s if running else 0)
        for key in list(running):
            index, proc, log = running[key]
            if proc.poll() is not None:
                codes[index] = proc.returncode
                log.close()
                del running[key]
                free.append(int(key))
    return [codes[i] for i in range(len(config_files))]
