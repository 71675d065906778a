"""What a ``run_all`` costs: the training runs behind the selected notebooks, which of them are
already in the store, and the minutes still to go, estimated from the step costs recorded by
finished runs (``done.json``: steps, seconds, per-epoch history). Printed as run_all goes, and
per notebook in ``results/README.md`` (what ``--only NAME`` costs on a fresh cache)."""

from __future__ import annotations

import datetime as dt
import statistics
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from renet_core.base.io import TIME_FORMAT
from renet_core.engine import ResultsStore, archive
from renet_core.study import TABLE_OF, spec_configs
from renet_core.study.board import feature_configs
from renet_core.study.tables import TABLES

#: The tables each notebook job reproduces (the ``study.reproduce`` calls of the notebooks;
#: ``tests/entry/test_notebooks.py`` checks them against the notebooks' code). Fig. 3 uses Table 1's
#: runs, the strategies table section 3.4's.
JOB_TABLES = {
    **{f"01_detection_{ds}": (TABLE_OF[("occurrence", ds)],) for ds in ("bp4d", "disfa", "bp4dplus")},
    **{f"02_intensity_{ds}": (TABLE_OF[("intensity", ds)],) for ds in ("bp4d", "disfa")},
    "03_new_au": ("table6",), "04_relation_ablation": ("table7",), "05_augmentation_ablation": ("table8",),
    "07_tsne": ("table1",), "10_training_strategies": ("strategies",),
}


#: The opt-in premise experiment's notebook: its runs are planned from its default settings.
PREMISE_JOB = "11_relation_premise"
#: The opt-in predict notebook: Table 2's RE-Net run of fold 1 (renet_core.predict.showcase's defaults).
PREDICT_JOB = "12_predict"


#: The notebook that reads runs' saved test features (Fig. 3 and its silhouette claim).
FEATURE_JOB = "07_tsne"


def reopen_featureless(job_names: Sequence[str], profile: str, store_dir=None, roots: dict | None = None,
                       folds: Sequence[int] | None = None, say: Callable[[str], None] = print) -> list[str]:
    """Reopen Fig. 3's runs (:func:`renet_core.study.board.feature_configs`) whose finished record
    lacks the test features their config saves (imported from an archive without them,
    :func:`renet_core.engine.archive.featureless`), when the jobs include :data:`FEATURE_JOB`: their
    ``done.json`` goes, so they are trained again before any notebook reads them and Table 1, Fig. 3
    and the scoreboard all read the one new record (never a table from one record and the figure
    from another of the same identity). Their old rows stay in results.csv, unserved, until the run
    is done again. Returns the identities reopened."""
    if FEATURE_JOB not in job_names:
        return []
    reopened = []
    for cfg in feature_configs(profile, store_dir, (roots or {}).get("bp4d"), folds):
        store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
        if archive.featureless(store, key):
            (store.run_dir(key) / archive.DONE).unlink()
            reopened.append(key)
            say(f"[runall] run {key} ({cfg.method_name()}, fold {cfg.fold}) was imported without its test features, "
                f"which Fig. 3 reads: it is trained again now, and Table 1 reads the new record too")
    return reopened


@dataclass
class Plan:
    """The runs behind a set of notebook jobs: ``configs`` by run identity, ``by_job`` the
    identities each job needs (a run shared by two jobs is listed under both)."""

    configs: dict = field(default_factory=dict)
    by_job: dict[str, list[str]] = field(default_factory=dict)

    def done(self) -> set[str]:
        return {key for key, cfg in self.configs.items() if ResultsStore(cfg.results_dir).is_done(key)}


def make_plan(job_names: Sequence[str], profile: str, store_dir=None, roots: dict | None = None,
              folds: Sequence[int] | None = None) -> Plan:
    """The runs of the tables the jobs reproduce, under ``profile`` (its folds unless ``folds``)."""
    plan, roots = Plan(), roots or {}
    for job in job_names:
        keys = []
        if job == PREMISE_JOB:              # notebook 11 at its defaults (renet_core.study.premise)
            from renet_core.study import premise   # lazy: premise imports the study layer, needed by job 11 only

            for setting in premise.settings():
                by_model = premise.setting_configs(setting, profile, folds or premise.FOLDS, store_dir=store_dir)
                for cfg in (c for cfgs in by_model.values() for c in cfgs):
                    plan.configs.setdefault(cfg.config_hash(), cfg)
                    keys.append(cfg.config_hash())
        if job == PREDICT_JOB:
            spec = TABLES[TABLE_OF[("occurrence", "disfa")]]
            cfg = spec_configs(spec, profile, None, [1], store_dir)["renet"][0]
            plan.configs.setdefault(cfg.config_hash(), cfg)
            keys.append(cfg.config_hash())
        for table in JOB_TABLES.get(job, ()):
            spec = TABLES[table]
            for cfgs in spec_configs(spec, profile, roots.get(spec.dataset), folds, store_dir).values():
                for cfg in cfgs:
                    plan.configs.setdefault(cfg.config_hash(), cfg)
                    keys.append(cfg.config_hash())
        plan.by_job[job] = list(dict.fromkeys(keys))
    return plan


def _steps(cfg) -> int | None:
    return cfg.epochs * cfg.steps_per_epoch if cfg.steps_per_epoch else None


def step_costs(plan: Plan) -> dict[str, float]:
    """Seconds per training step by model ("renet", "resnet18", "renet-all" for strategy 1), the
    median over the plan's finished runs of (run seconds / steps): data, evaluation and test
    included, so an estimate is of wall time."""
    costs: dict[str, list[float]] = {}
    for key in plan.done():
        cfg = plan.configs[key]
        record = ResultsStore(cfg.results_dir).done_summary(key)
        if record.get("seconds") and record.get("steps"):
            costs.setdefault(_kind(cfg), []).append(float(record["seconds"]) / float(record["steps"]))
    return {kind: statistics.median(values) for kind, values in costs.items()}


def _kind(cfg) -> str:
    return f"{cfg.model}-all" if cfg.strategy == "all" else cfg.model


def run_seconds(cfg, key: str, costs: dict[str, float]) -> float | None:
    """A run's wall seconds: recorded when it is done, else its steps times the recorded cost of
    its kind of step (None when neither is known)."""
    store = ResultsStore(cfg.results_dir)
    if store.is_done(key):
        seconds = store.done_summary(key).get("seconds")
        if seconds:
            return float(seconds)
    steps = _steps(cfg)
    cost = costs.get(_kind(cfg))
    return steps * cost if steps and cost else None


def time_to_go(plan: Plan, keys: Sequence[str] | None = None) -> tuple[int, int, float, dict[str, int]]:
    """``(runs done, runs in all, estimated minutes of the runs still to do whose kind of step has
    a recorded cost, {kind: runs still to do without one})`` of ``keys`` (default: every run of
    the plan). A kind is timed once one of its runs is done (:func:`step_costs`)."""
    keys = list(plan.configs) if keys is None else list(keys)
    done, costs = plan.done(), step_costs(plan)
    todo = [k for k in keys if k not in done]
    seconds, untimed = 0.0, {}
    for k in todo:
        estimate = run_seconds(plan.configs[k], k, costs)
        if estimate is None:
            untimed[_kind(plan.configs[k])] = untimed.get(_kind(plan.configs[k]), 0) + 1
        else:
            seconds += estimate
    return len(keys) - len(todo), len(keys), seconds / 60.0, untimed


def minutes_to_go(plan: Plan, keys: Sequence[str] | None = None) -> tuple[int, int, float | None]:
    """``(runs done, runs in all, estimated minutes for the rest or None)`` of ``keys`` (default:
    every run of the plan); None while a run still to do is of a kind not yet timed."""
    done, total, minutes, untimed = time_to_go(plan, keys)
    return done, total, None if untimed else minutes


def progress_line(plan: Plan) -> str:
    """The line run_all prints as runs finish: runs done of all, and the minutes to go from the
    recorded step costs; runs of a kind not yet timed (say the strategies table's all-AU runs,
    which come last) are counted apart instead of hiding the estimate for the others."""
    done, total, minutes, untimed = time_to_go(plan)
    if done >= total:
        return f"[runall] training runs: all {total} done"
    n_untimed = sum(untimed.values())
    if n_untimed == total - done:
        left = "time to go known after the first run of each kind"
    else:
        left = "about %.0f min to go (recorded step costs)" % minutes
        if n_untimed:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(untimed.items()))
            left += f", plus {n_untimed} run{'s' if n_untimed > 1 else ''} of a kind not yet timed ({kinds})"
    return f"[runall] training runs: {done} of {total} done; {left}"


def fresh_cache_seconds(plan: Plan, job: str) -> float | None:
    """What ``--only job`` costs on a fresh cache: the recorded (or estimated) seconds of every run
    its tables need, shared ones included; None when one is unknown."""
    costs = step_costs(plan)
    values = [run_seconds(plan.configs[k], k, costs) for k in plan.by_job.get(job, [])]
    return None if any(v is None for v in values) else float(sum(values))


class Reporter(threading.Thread):
    """Prints :func:`progress_line` whenever a planned run finishes (polls the store), so a
    notebook that trains for an hour still shows progress at the terminal."""

    def __init__(self, plan: Plan, every: float = 20.0, say: Callable[[str], None] = print):
        super().__init__(daemon=True)
        self.plan, self.every, self.say = plan, every, say
        self.stopped = threading.Event()

    def run(self) -> None:
        seen = len(self.plan.done())
        while not self.stopped.wait(self.every):
            now = len(self.plan.done())
            if now != seen:
                seen = now
                self.say(progress_line(self.plan))

    def stop(self) -> None:
        self.stopped.set()


def job_overhead(status: dict, plan: Plan) -> float:
    """A job's own seconds beyond the runs it trained (kernel start, tables, figures, SynthAU
    writing where the job did it): its wall time less the recorded seconds of the planned runs
    that finished inside its time window (``status``: a job's ``records/<job>.status.json``)."""
    try:
        end = dt.datetime.strptime(status["finished"], TIME_FORMAT)
        start = end - dt.timedelta(seconds=float(status["seconds"]))
    except (KeyError, ValueError):
        return 0.0
    trained = 0.0
    for key in plan.done():
        record = ResultsStore(plan.configs[key].results_dir).done_summary(key)
        try:
            finished = dt.datetime.strptime(record["finished"], TIME_FORMAT)
        except (KeyError, ValueError):
            continue
        if start <= finished <= end and record.get("seconds"):
            trained += float(record["seconds"])
    return max(0.0, float(status["seconds"]) - trained)
