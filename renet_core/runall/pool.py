"""Training the planned runs ahead of the notebooks, several at a time.

Every table's runs are ordinary engine runs found by identity, so ``run_all`` may train them
before the notebooks start: the notebooks then find them finished and only build tables. With
``--train-jobs N`` the runs go to N worker processes. Each run trains with its own config's thread
count (``threads``, part of its identity; the engine sets it), exactly as a notebook would train
it, so a run trained ahead is bit-identical to the same run trained by its notebook (issue 31, case
5: the workers once took ``cores // N`` threads and so gave other numbers under the same identity).
On a CPU, N processes of the profile's threads share the cores: more processes than
cores // threads oversubscribe them, which this module says. First, in this process and one at a
time, what runs share: each dataset's SynthAU twin and prepared crops, and each stand-in backbone.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from typing import Callable

import psutil

from renet_core.base.device import available_cores
from renet_core.base.spawn import spawn_blocker
from renet_core.engine import load_splits, run
from renet_core.engine.standin import STANDIN, standin_backbone
from renet_core.runall.plan import Plan, progress_line


def _train(cfg) -> str:
    run(cfg)
    return cfg.config_hash()


def shared_inputs(plan: Plan, say: Callable[[str], None] = print) -> None:
    """Write the SynthAU twins, prepare the crops and train the stand-in backbones the missing runs
    need, one at a time, so worker processes never race to make them."""
    done = plan.done()
    todo = [cfg for key, cfg in plan.configs.items() if key not in done]
    seen_data, seen_standin = set(), set()
    for cfg in todo:
        data_key = (cfg.dataset, cfg.data_identity(), cfg.image_size, cfg.landmark_origin)
        if data_key not in seen_data:
            seen_data.add(data_key)
            load_splits(cfg)
        if cfg.pretrained == STANDIN:
            standin = standin_backbone(cfg)
            if standin not in seen_standin:
                seen_standin.add(standin)
                say(f"[runall] stand-in backbone ready: {standin.name}")


def train_ahead(plan: Plan, jobs: int, say: Callable[[str], None] = print) -> None:
    """Train every missing run of ``plan`` in ``jobs`` processes (each run with its own threads),
    the longest first, printing the progress line as each ends. A failing run is reported and
    left to its notebook, which then fails with the full error."""
    done = plan.done()
    todo = sorted((cfg for key, cfg in plan.configs.items() if key not in done),
                  key=lambda c: -(c.epochs * (c.steps_per_epoch or 1)))
    if not todo:
        return
    shared_inputs(plan, say)
    blocker = spawn_blocker()
    if blocker:   # worker processes could not start from this program: train here, one at a time
        say(f"[runall] training {len(todo)} runs ahead of the notebooks in this process: {blocker}")
        _collect_inline(todo, plan, say)
        return
    threads = max(cfg.resolved_threads() for cfg in todo)
    cores = available_cores()
    say(f"[runall] training {len(todo)} runs ahead of the notebooks: {jobs} processes of {threads} thread(s) "
        f"each (the runs' own thread count, part of their identity)"
        + (f"; {jobs * threads} threads on {cores} cores oversubscribe them, so this is no faster than "
           "--train-jobs 0" if jobs * threads > cores else ""))
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
    try:
        _collect(pool, {pool.submit(_train, cfg): cfg for cfg in todo}, plan, say)
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM: no run starts, the running ones stop (they resume later)
        pool.shutdown(wait=False, cancel_futures=True)
        for child in psutil.Process().children(recursive=True):
            child.terminate()
        raise
    pool.shutdown()


def _collect_inline(todo: list, plan: Plan, say) -> None:
    for cfg in todo:
        try:
            _train(cfg)
        except Exception as exc:  # noqa: BLE001 - the notebook that needs the run reports it in full
            say(f"[runall] run {cfg.config_hash()} ({cfg.method_name()}, {cfg.dataset}, fold {cfg.fold}) failed: "
                f"{type(exc).__name__}: {exc}")
        say(progress_line(plan))


def _collect(pool, futures: dict, plan: Plan, say) -> None:
    for future in cf.as_completed(futures):
        cfg = futures[future]
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - the notebook that needs the run reports it in full
            say(f"[runall] run {cfg.config_hash()} ({cfg.method_name()}, {cfg.dataset}, fold {cfg.fold}) failed: "
                f"{type(exc).__name__}: {exc}")
        say(progress_line(plan))
