"""Speed levers on whole training runs, side by side (issue 33, "Pay less for it").

One run of the study (a variant's config on one dataset, task and fold, at a budget of one-AU
steps: :func:`renet_core.study.budgets.at_budget`, as ``tools/convergence_curves.py`` builds its
ladder) is trained from scratch once as the **baseline** (the profile's settings as they are:
float32 on the CPU) and once per **lever**, each a setting of the run's config:

  a. bf16 autocast on the CPU, float32 memory layout (``amp="bf16"``, ``channels_last=False``);
  b. bf16 autocast with channels_last batches and weights (``amp="bf16"``, ``channels_last=True``;
     ``renet_core/engine/precision.py``);
  c. Adam's foreach implementation (``adam_impl="foreach"``);
  d. Adam's fused implementation (``adam_impl="fused"``);
  e. a cheaper evaluation: a larger evaluation batch (``eval_batch_size``, ``--eval-batch-size``).

``f`` (``--train-jobs``, several runs in parallel processes) is a lever of the study, not of a
run: it cannot be measured on one run and is skipped here (the page says so).

Each run trains into a scratch results folder (``--store``, default a temporary one, removed at
the end), never the study's store, with ``force=True`` so it is really trained and timed. Its data
and, for the demo, its stand-in backbone (:mod:`renet_core.engine.standin`, trained under the
run's ``amp``, so the bf16 levers start from a bf16-trained one) are prepared first, untimed.
Per run: the wall seconds of the whole run (training, validation passes and the test evaluation:
``time.perf_counter`` around :func:`renet_core.engine.run`), the run's own recorded seconds, the
steps it trained (early stopping can end a lever's run sooner than the baseline's), the best
validation score, the test score (mean F1 over AUs, or ICC(3,1) for intensity) and the time
relative to the baseline. The page names the processor and whether it has avx512_bf16 and AMX,
and says whether the machine was idle (``--idle``: the user says so) or not (then it is not a timing).

    RENET_CACHE=<cache> python tools/levers.py --variant resnet18 --steps 365 --levers a,b,c,d,e --idle
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch

from renet_core.base.environment import cpu_info, read_environment
from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore, load_splits, run
from renet_core.engine.standin import STANDIN, standin_backbone
from renet_core.study.board import best_validation
from renet_core.study.budgets import at_budget, au_steps, evaluations
from renet_core.study.variants import variant_configs

#: The processor features that make bf16 arithmetic native (x86 /proc/cpuinfo names).
BF16_FLAGS = ("avx512_bf16", "amx_tile", "amx_bf16")
IDLE = "measured with nothing else running"
LOADED = "measured under load: not a timing"


class Lever(NamedTuple):
    """One speed lever: its letter, a short name and the config fields it sets."""

    key: str
    name: str
    settings: dict


def levers(eval_batch_size: int = 128) -> dict[str, Lever]:
    """The run-level levers by letter (issue 33); ``f`` (``--train-jobs``) is study-level, not here."""
    return {lever.key: lever for lever in (
        Lever("a", "bf16 autocast", {"amp": "bf16", "channels_last": False}),
        Lever("b", "bf16 autocast + channels_last", {"amp": "bf16", "channels_last": True}),
        Lever("c", "Adam foreach", {"adam_impl": "foreach"}),
        Lever("d", "Adam fused", {"adam_impl": "fused"}),
        Lever("e", f"evaluation batch {eval_batch_size}", {"eval_batch_size": int(eval_batch_size)}),
    )}


STUDY_LEVEL = {"f": "--train-jobs (several runs in parallel processes) is a lever of the study, not of one run: "
                    "skipped here; measure it with run_all's --train-jobs on the machine idle"}


def parse_levers(text: str, known: dict) -> tuple[list[str], list[str]]:
    """``(run-level letters in order, study-level letters skipped)`` from "a,b,d"; an unknown
    letter is an error naming the valid ones."""
    keys = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in known and k not in STUDY_LEVEL]
    if unknown or not keys:
        raise ValueError(f"--levers {text!r}: unknown {unknown or 'empty list'}; expected letters among "
                         f"{', '.join([*known, *STUDY_LEVEL])} separated by commas, e.g. a,b,d")
    keys = list(dict.fromkeys(keys))
    return [k for k in keys if k in known], [k for k in keys if k in STUDY_LEVEL]


def baseline_config(profile: str, dataset: str, task: str, variant: str, fold: int, steps: int | None,
                    store: Path, progress: bool = True):
    """The study's config of ``variant`` on (dataset, task, fold), at ``steps`` one-AU steps when
    given (in the profile's evaluations per run), training into ``store`` and forced to train."""
    cfg = variant_configs(profile, dataset, task, variant, [fold])[0]
    if steps:
        cfg = at_budget(cfg, steps, evaluations(profile, dataset, task))
    return cfg.replace(results_dir=str(store), force=True, progress=progress)


def prepare(cfg) -> None:
    """What a run needs before it trains, made untimed: the data (SynthAU written, crops cached)
    and the stand-in backbone of the demo (trained once per amp, cached under the cache root)."""
    load_splits(cfg)
    if cfg.pretrained == STANDIN:
        standin_backbone(cfg)


def measure(name: str, cfg, repeat: int) -> dict:
    """Train ``cfg`` once, timed, and read what the run recorded."""
    started = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - started
    store = ResultsStore(cfg.results_dir)
    summary = store.done_summary(result.config_hash)
    metric = "f1" if cfg.task == "occurrence" else "icc"
    test = result.rows.loc[result.rows["metric"] == metric, "value"].astype(float)
    environment = read_environment(result.run_dir) or {}
    best = best_validation(store, cfg)
    return {"lever": name, "repeat": repeat, "wall_seconds": round(wall, 2),
            "run_seconds": summary.get("seconds"), "steps_trained": summary.get("steps"),
            "best_val": math.nan if best is None else best, f"test_{metric}": float(test.mean()),
            "precision": environment.get("precision"), "amp": cfg.amp, "channels_last": cfg.channels_last,
            "adam_impl": cfg.adam_impl, "eval_batch_size": cfg.eval_batch_size or cfg.batch_size,
            "config_hash": result.config_hash}


def processor_line() -> str:
    """The processor's name and its bf16 features: "<model> (<cpu id>); avx512_bf16 yes, ..."."""
    model, cpu_id, flags = cpu_info()
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in BF16_FLAGS)
    return f"{model}" + (f" ({cpu_id})" if cpu_id else "") + f"; {have}"


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per lever: median wall seconds over repeats (min-max), the rest of its first run
    and the wall time relative to the baseline's median."""
    metric = next(c for c in rows.columns if c.startswith("test_"))
    out = []
    for name, group in rows.groupby("lever", sort=False):
        first = group.iloc[0]
        out.append({"lever": name, "wall_seconds": group["wall_seconds"].median(),
                    "wall_min": group["wall_seconds"].min(), "wall_max": group["wall_seconds"].max(),
                    "runs": len(group), "run_seconds": group["run_seconds"].median(),
                    "steps_trained": first["steps_trained"], "best_val": first["best_val"],
                    metric: first[metric], "precision": first["precision"], "config_hash": first["config_hash"]})
    table = pd.DataFrame(out)
    base = float(table.loc[table["lever"] == "baseline", "wall_seconds"].iloc[0])
    table["relative"] = table["wall_seconds"] / base
    return table


def _seconds(value) -> str:
    """A recorded number of seconds to one decimal; blank when the run recorded none."""
    return "" if value is None or pd.isna(value) else f"{float(value):.1f}"


def render(rows: pd.DataFrame, cfg, settings: dict[str, str], idle: bool, command: str) -> str:
    """The Markdown page: conditions, processor, one row per lever, what was skipped and why."""
    table = summarise(rows)
    metric = next(c for c in table.columns if c.startswith("test_"))
    unit = "F1" if cfg.task == "occurrence" else "ICC"
    lines = [f"# Speed levers on whole runs: {cfg.method_name()} on {cfg.dataset} ({cfg.task}), fold {cfg.fold}", "",
             f"**{IDLE.capitalize() if idle else LOADED.capitalize()}.**", "",
             f"- Processor: {processor_line()}; torch {torch.__version__}, {cfg.resolved_threads()} threads.",
             f"- Run: profile {cfg.profile}, {au_steps(cfg)} one-AU steps planned ({cfg.epochs} epochs of "
             f"{cfg.steps_per_epoch}, one validation pass each), batch {cfg.batch_size}, {cfg.image_size} px; "
             "each lever is this run with the settings shown, trained from scratch in a scratch store.",
             "- Wall: seconds of the whole run (training, validation passes, test evaluation), median over "
             "repeats (min-max); run: the run's own recorded seconds; steps: steps it trained (early stopping "
             "may end a run sooner, so compare seconds per step too); relative: wall / baseline wall.",
             f"- Best validation {unit} and test {unit} (mean over AUs) are single runs: a difference smaller "
             "than the folds' spread in the convergence curves is not a difference.", "",
             f"| lever | settings | precision | wall s | run s | steps | s/step | relative | best val {unit} | "
             f"test {unit} | identity |", "|---" * 11 + "|"]
    for _, r in table.iterrows():
        spread = f" ({r['wall_min']:.1f}-{r['wall_max']:.1f})" if r["runs"] > 1 else ""
        per_step = r["wall_seconds"] / r["steps_trained"] if r["steps_trained"] else math.nan
        lines.append(f"| {r['lever']} | {settings[r['lever']]} | {r['precision']} | {r['wall_seconds']:.1f}{spread} | "
                     f"{_seconds(r['run_seconds'])} | {r['steps_trained']} | {per_step:.3f} | {r['relative']:.2f}x | "
                     f"{r['best_val']:.3f} | {r[metric]:.3f} | `{r['config_hash']}` |")
    lines += ["", "Not measured here: " + "; ".join(f"{k}: {v}" for k, v in STUDY_LEVEL.items()) + ".",
              "", "The bf16 levers' stand-in backbone is itself trained under bf16 autocast (the engine trains "
              "the demo's stand-in with the run's amp); it is prepared before timing, as every lever's data.",
              "", f"Made by `python tools/levers.py {command}`; every run: the CSV beside this page."]
    return "\n".join(lines) + "\n"


def run_levers(base, chosen: list[Lever], repeats: int = 1) -> pd.DataFrame:
    """The baseline and every lever, ``repeats`` rounds (each round: baseline, then the levers in
    order), one record per run; their inputs prepared first, untimed."""
    plan = [("baseline", base)] + [(lever.key, base.replace(**lever.settings)) for lever in chosen]
    for name, cfg in plan:
        if name != "baseline" and cfg.config_hash() == base.config_hash():
            raise ValueError(f"lever {name} ({cfg.amp=}, {cfg.channels_last=}, {cfg.adam_impl=}, "
                             f"{cfg.eval_batch_size=}) is the baseline's run {base.config_hash()}: "
                             "the profile already uses it; drop it from --levers")
    print(f"preparing data and initial weights for {len(plan)} configs (untimed)", flush=True)
    for _, cfg in plan:
        prepare(cfg)
    records, total = [], len(plan) * repeats
    for repeat in range(1, repeats + 1):
        for name, cfg in plan:
            print(f"[{len(records) + 1}/{total}] {name}: {cfg.method_name()} {au_steps(cfg)} steps, amp={cfg.amp}, "
                  f"channels_last={cfg.channels_last}, adam_impl={cfg.adam_impl}, "
                  f"eval_batch_size={cfg.eval_batch_size or cfg.batch_size} [run {cfg.config_hash()}]", flush=True)
            record = measure(name, cfg, repeat)
            records.append(record)
            print(f"    {record['wall_seconds']:.1f} s wall, {record['steps_trained']} steps, best val "
                  f"{record['best_val']:.3f}", flush=True)
    return pd.DataFrame.from_records(records)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="demo")
    p.add_argument("--dataset", default="bp4d", choices=("bp4d", "disfa", "bp4dplus"))
    p.add_argument("--task", default="occurrence", choices=("occurrence", "intensity"))
    p.add_argument("--variant", default="resnet18", help="a table row's method name: resnet18, renet, ...")
    p.add_argument("--fold", type=int, default=1, choices=(1, 2, 3))
    p.add_argument("--steps", type=int, default=None, help="one-AU steps (default: the profile's own budget)")
    p.add_argument("--levers", default="a,b,c,d,e", help="letters a-e (f is study-level, skipped)")
    p.add_argument("--eval-batch-size", type=int, default=128, help="lever e's evaluation batch")
    p.add_argument("--repeats", type=int, default=1, help="rounds of baseline + levers (median wall time)")
    p.add_argument("--store", default=None, help="scratch results folder, kept (default: a temporary one, removed)")
    p.add_argument("--idle", action="store_true", help="the machine ran nothing else: the page says it is a timing")
    p.add_argument("--quiet", action="store_true", help="no per-step progress bars")
    p.add_argument("--out", default="results/speed_levers.md")
    a = p.parse_args(argv)
    if a.repeats < 1 or (a.steps is not None and a.steps < 1) or a.eval_batch_size < 1:
        p.error("--repeats, --steps and --eval-batch-size must be positive integers")
    known = levers(a.eval_batch_size)
    try:
        keys, skipped = parse_levers(a.levers, known)
    except ValueError as exc:
        p.error(str(exc))
    for key in skipped:
        print(f"lever {key} skipped: {STUDY_LEVEL[key]}", flush=True)
    store = Path(a.store) if a.store else Path(tempfile.mkdtemp(prefix="renet-levers-"))
    try:
        base = baseline_config(a.profile, a.dataset, a.task, a.variant, a.fold, a.steps, store, not a.quiet)
        rows = run_levers(base, [known[k] for k in keys], a.repeats)
    finally:
        if not a.store:
            shutil.rmtree(store, ignore_errors=True)
    settings = {"baseline": f"the {a.profile} profile's (amp={base.amp}, Adam default)"}
    settings.update({k: known[k].name for k in keys})
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    to_csv_atomic(rows.assign(idle=a.idle, processor=processor_line()), out.with_suffix(".csv"), index=False)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    page = render(rows, base, settings, a.idle, command)
    write_text_atomic(out, page)
    print(page, flush=True)


if __name__ == "__main__":
    main()
