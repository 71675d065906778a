"""Measure a model variant's converged budget (issue 33; docs/reproduction-notes.md, "The
convergence rule").

For one (dataset, task, model variant) of the study and its folds, trains a ladder of budgets
(:func:`renet_core.study.budgets.ladder`: each at least 1.5x the one before, around the profile's
own budget), each budget a whole run of its own cosine schedule, exactly the run the study makes
at that budget (same config, same identity: the demo's 1250-step runs are the ladder's 1250).
After each budget on every fold it applies the rule (:func:`renet_core.study.convergence.converged_budget`)
to the curve of best validation scores and stops at the first converged budget (``--all`` trains
the whole ladder). Validation decides; no test score is read. Runs are ordinary engine runs in
the profile's store, found by identity: a rerun reuses them, a run cut short resumes from its
checkpoint, so the measurement can be spread over sittings.

Writes ``results/convergence_<dataset>_<task>_<variant>.csv`` (one row per run),
``.md`` (the curve per fold and its mean, the budget per fold and of the mean) and
``figures/convergence_<dataset>_<task>_<variant>.png``. ``--record`` writes the budget into
``renet_core/resources/converged_budgets.csv`` (the profile data the scoreboard reads).

    RENET_CACHE=<cache> python tools/convergence_curves.py --dataset bp4d --task occurrence --variant renet
    python tools/convergence_curves.py --list            # every variant behind a claim, what is done
    python tools/convergence_curves.py ... --plan        # the ladder, its runs and what is done; trains nothing
    python tools/convergence_curves.py ... --from-store  # the page from the finished runs only; trains nothing
    python tools/convergence_curves.py ... --anchor 4225 --check   # one candidate budget: 4225 and 14265 only
    python tools/convergence_curves.py ... --check-from bp4d:renet  # the candidate: another variant's recorded budget
    python tools/convergence_curves.py ... --archive results/archive/demo  # each finished run's record kept in git
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from renet_core.base.environment import read_environment
from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore, archive, run
from renet_core.study import convergence
from renet_core.study.board import best_validation, validation_history
from renet_core.study.budgets import at_budget, au_steps, evaluations, ladder, record_budget, recorded_budget
from renet_core.study.figures import pyplot, save_figure
from renet_core.study.provenance import run_environments, table_environments
from renet_core.study.variants import claim_variants, variant_configs


def point(cfg) -> dict:
    """One run of the ladder: its budget, its best validation score, what it trained and the key
    of the environment that made it (NaN score and no environment when the run is not finished)."""
    store = ResultsStore(cfg.results_dir)
    key = cfg.config_hash()
    done = store.is_done(key)
    summary = store.done_summary(key) if done else {}
    history = validation_history(store, cfg) if done else []
    best = best_validation(store, cfg) if done else None
    env = read_environment(store.run_dir(key)) if done else None
    return {"dataset": cfg.dataset, "task": cfg.task, "variant": cfg.method_name(), "fold": cfg.fold,
            "steps": au_steps(cfg), "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
            "best_val": math.nan if best is None else best,
            "best_epoch": next((e for e, v in history if v == best), None) if best is not None else None,
            "steps_trained": summary.get("steps"), "seconds": summary.get("seconds"), "done": done,
            "config_hash": key, "environment": (env or {}).get("key", "not recorded" if done else "")}


def check_rungs(cfg, evals: int, anchor: int) -> list[int]:
    """``--check``'s two budgets: ``anchor`` and the first rung of its ladder at or beyond
    :data:`convergence.HORIZON` x it (the rule's horizon: 4225 -> 14265). The rule reads the two
    points as it reads a whole ladder (``anchor`` is accepted when within the margin of the
    longer run); the rungs between them are not trained."""
    rungs = ladder(cfg, evals, anchor, below=0, above=math.ceil(math.log(convergence.HORIZON) / math.log(convergence.LONGER)))
    top = next(r for r in rungs if r >= convergence.HORIZON * rungs[0] - 1e-9)
    return [rungs[0], top]


def ladder_runs(profile: str, dataset: str, task: str, variant: str, folds=(1, 2, 3), below: int = 3,
                above: int = 5, anchor: int | None = None, check: bool = False, roots=None):
    """``(rungs, [[config of each fold] per rung], evaluations)``: the ladder's runs, each exactly
    the study's run at that budget (:func:`renet_core.study.budgets.at_budget`)."""
    cfgs = variant_configs(profile, dataset, task, variant, folds, roots)
    evals = evaluations(profile, dataset, task)
    start = anchor or au_steps(cfgs[0]) or evals
    rungs = check_rungs(cfgs[0], evals, start) if check else ladder(cfgs[0], evals, start, below, above)
    return rungs, [[at_budget(cfg, steps, evals) for cfg in cfgs] for steps in rungs], evals


def measure(profile: str, dataset: str, task: str, variant: str, folds=(1, 2, 3), below: int = 3,
            above: int = 5, anchor: int | None = None, every: bool = False, train: bool = True, roots=None,
            on_rung=None, check: bool = False, after_run=None):
    """Train (or reuse) the ladder rung by rung until the rule finds a budget (every rung with
    ``every``; nothing with ``train=False``); return ``(points frame, Budget of the mean, ladder)``.
    ``on_rung(points, budget, rungs)`` is called after each rung (the page so far: a long ladder
    cut by a session's end leaves its curve up to the last finished rung); ``after_run(cfg)`` after
    each run is trained (``--archive``: its record is kept at once). With ``check`` the
    ladder is :func:`check_rungs`: one candidate budget and its horizon, ``below``/``above`` unused."""
    rungs, runs, _ = ladder_runs(profile, dataset, task, variant, folds, below, above, anchor, check, roots)
    margin = convergence.margin_for(task)
    records, budget = [], None
    for i, (steps, configs) in enumerate(zip(rungs, runs)):
        for at in configs:
            if train:
                print(f"{variant} on {dataset} ({task}), fold {at.fold}, {steps} steps [run {at.config_hash()}]",
                      flush=True)
                run(at)
                if after_run is not None:
                    after_run(at)
            records.append(point(at))
        budget = convergence.converged_budget(curves(pd.DataFrame(records)), margin, min_folds=convergence.MIN_FOLDS)
        if on_rung is not None:
            on_rung(*page_so_far(records, runs[i + 1:], budget, margin), rungs)
        if train and budget.converged and not every:
            break
    return pd.DataFrame.from_records(records), budget, rungs


def page_so_far(records: list[dict], later, budget, margin: float):
    """``(points, budget)`` of a page written mid-ladder: the rungs climbed so far, and every later
    rung with a run already finished (a fold trained in an earlier sitting, or on another machine),
    all its folds listed so that the unfinished ones are named as gaps; the budget is the rule's on
    what the page shows. Without this, a page rewritten as the climb reaches a rung half done would
    lose that rung's finished folds until the whole rung is done."""
    ahead = [[point(at) for at in configs] for configs in later]
    ahead = [p for rung in ahead if any(p["done"] for p in rung) for p in rung]
    if not ahead:
        return pd.DataFrame.from_records(records), budget
    shown = pd.DataFrame.from_records(records + ahead)
    return shown, convergence.converged_budget(curves(shown), margin, min_folds=convergence.MIN_FOLDS)


def curves(points: pd.DataFrame) -> dict[int, list[tuple[int, float]]]:
    """``{fold: [(steps, best validation), ...]}`` of the ladder's runs (NaN where not finished)."""
    return {int(f): list(zip(g["steps"].astype(int), g["best_val"].astype(float))) for f, g in points.groupby("fold")}


def environments(points: pd.DataFrame, results_dir) -> str:
    """The page's paragraph on what made the ladder's finished runs (their ``environment.json``
    in the store under ``results_dir``): processor, ISA flags, torch, threads, precision, the run
    count of each, "mixes N environments" when they differ (a ladder whose rungs were trained on two
    processors is not one measurement), and the dates the records were written. Empty when no run
    is finished."""
    store = ResultsStore(results_dir)
    done = points[points["done"].astype(bool)]
    records = run_environments({h: store.run_dir(h) for h in done["config_hash"]})
    _, text = table_environments(records, subject="ladder", parts="rungs")
    dates = sorted(r["recorded"][:10] for r in records.values() if r and r.get("recorded"))
    if text and dates:
        text += (f"\n\nRecorded {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") +
                 ". Whether anything ran beside a run is not recorded; the timings' conditions are in docs/findings.md.")
    return text


def gaps_text(points: pd.DataFrame, margin: float) -> str:
    """The page's sentence on rungs not finished on every fold (a ladder in progress, or a page
    written ``--from-store`` from the runs one machine kept): the mean and the rule leave them out."""
    done = points.groupby("steps")["done"].apply(lambda d: bool(d.astype(bool).all()))
    gaps = [int(s) for s, ok in done.items() if not ok]
    if not gaps:
        return ""
    return (f"**Rungs not finished on every fold: {', '.join(map(str, gaps))}.** The mean and the rule leave them "
            f"out and judge only the rungs finished on every fold (the smallest within {margin:g} of their maximum): "
            "an unfinished rung below the budget might qualify too (the budget is then longer than needed, never "
            "shorter), and a peak at an unfinished rung is not seen.")


def render(points: pd.DataFrame, budget, profile: str, dataset: str, task: str, variant: str, rungs, name: str,
           command: str = "", check: bool = False, made_in: str = "") -> str:
    """The Markdown page: the curve per fold and its mean, the budget of the mean (the one that
    decides) and of each fold (information); ``made_in``: :func:`environments`' paragraph."""
    unit = "F1" if task == "occurrence" else "ICC"
    folds = sorted(points["fold"].unique())
    per_fold = convergence.fold_budgets(curves(points), budget.margin)
    mean = dict(budget.curve)
    gaps = gaps_text(points, budget.margin)
    cfg = points.iloc[0]
    lines = [f"# Converged budget: {variant} on {dataset} ({task})", "",
             f"Data: the {profile} profile's data for {dataset} (SynthAU twin unless a root is configured; see each "
             f"run's data source). Each budget is a run of its own: its one-AU steps in {int(cfg['epochs'])} "
             "epochs (one validation pass each), the profile's cosine schedule over exactly those steps, early "
             "stopping as in the study; the score is the run's best validation "
             f"{unit} (what early stopping picks). Validation decides; no test score is read. "
             f"Made by `python tools/convergence_curves.py {command or f'--profile {profile} --dataset {dataset} --task {task} --variant {variant}'}`"
             f" (ladder {', '.join(str(r) for r in rungs)}).", "",
             *([made_in, ""] if made_in else []),
             f"**The rule** (issue 33): the smallest budget at which the mean over {convergence.MIN_FOLDS} folds comes "
             f"within {budget.margin:g} {unit} of its maximum, the curve reaching at least {convergence.HORIZON:g}x "
             f"that budget (three rungs of a ladder spaced {convergence.LONGER:g}x); none: not converged, budget unknown.", "",
             *([f"**A check of one candidate budget** (`--check`): only {rungs[0]} and its horizon {rungs[-1]} are "
                "trained, not the rungs between. The rule reads the two points as written ({rungs[0]} is accepted when "
                f"within {budget.margin:g} of the better of the two); what it cannot see is a peak between them. "
                "Rejected, the candidate says the variant needs a longer budget: run the ladder without `--check` "
                "(these runs are reused).", ""] if check else []),
             *([gaps, ""] if gaps else []),
             f"**Budget: {budget.steps if budget.converged else 'unknown'}** ({budget.status}: {budget.reason}).", "",
             "| steps | " + " | ".join(f"fold {f}" for f in folds) + " | mean |", "|---" * (len(folds) + 2) + "|"]
    for steps, group in points.groupby("steps"):
        vals = {int(r["fold"]): r["best_val"] for _, r in group.iterrows()}
        cells = ["" if pd.isna(vals.get(f)) else f"{vals[f]:.3f}" for f in folds]
        m = mean.get(int(steps))
        lines.append(f"| {int(steps)} | " + " | ".join(cells) + f" | {'' if m is None else f'{m:.3f}'} |")
    lines += ["", "Per fold (information; the mean decides): " + "; ".join(
        f"fold {f}: {b.steps if b.converged else 'not converged'}" for f, b in per_fold.items()) + ".", "",
              f"Every run: `{name}.csv` beside this file (identities, steps trained, seconds); the figure "
              f"`figures/{name}.png`."]
    return "\n".join(lines) + "\n"


def figure(points: pd.DataFrame, budget, title: str, path: Path) -> Path:
    """Best validation against budget per fold (thin) and their mean (thick), the maximum's
    margin band and the budget."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for fold, pts in curves(points).items():
        ax.plot(*zip(*pts), marker=".", lw=0.8, alpha=0.6, label=f"fold {fold}")
    if budget.curve and budget.peak is not None:
        mean = dict(budget.curve)   # NaN at rungs not finished on every fold: the line breaks there
        steps = sorted(int(x) for x in points["steps"].unique())
        ax.plot(steps, [mean.get(x, math.nan) for x in steps], marker="o", lw=2.2, color="black", label="mean over folds")
        ax.axhspan(budget.peak - budget.margin, budget.peak, color="grey", alpha=0.2, label=f"within {budget.margin:g}")
    if budget.converged:
        ax.axvline(budget.steps, color="tab:red", ls="--", label=f"budget {budget.steps}")
    ax.set_xscale("log")
    steps = sorted(int(x) for x in points["steps"].unique())
    ax.set_xticks(steps, [str(x) for x in steps], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("budget (one-AU steps; each point its own run)")
    ax.set_ylabel("best validation score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def candidate(profile: str, task: str, source: str) -> int:
    """``--check-from``'s candidate: the budget recorded for ``source`` ("dataset:variant") on
    ``task``; a clear exit when it is malformed or not measured yet."""
    dataset, _, variant = source.partition(":")
    if not dataset or not variant:
        raise SystemExit(f"--check-from {source!r}: expected DATASET:VARIANT, e.g. bp4d:renet")
    cfg = variant_configs(profile, dataset, task, variant, [1])[0]
    steps = recorded_budget(profile, cfg)
    if steps is None:
        raise SystemExit(f"--check-from {source}: no budget recorded for {variant} on {dataset} ({task}) in the "
                         f"{profile} profile's converged budgets (renet_core/resources/converged_budgets.csv); "
                         "measure that variant's ladder first")
    return steps


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="demo")
    p.add_argument("--dataset", default="bp4d", choices=("bp4d", "disfa", "bp4dplus"))
    p.add_argument("--task", default="occurrence", choices=("occurrence", "intensity"))
    p.add_argument("--variant", default="renet", help="a table row's method name, e.g. renet-learnable (--list)")
    p.add_argument("--folds", default="1,2,3")
    p.add_argument("--below", type=int, default=3, help="ladder budgets below the anchor")
    p.add_argument("--above", type=int, default=5, help="ladder budgets above the anchor")
    p.add_argument("--anchor", type=int, default=None, help="default: the profile's own budget of the variant")
    p.add_argument("--all", action="store_true", help="train every budget of the ladder, not up to the first converged")
    p.add_argument("--check", action="store_true",
                   help="check one candidate budget (--anchor): train it and its horizon rung only, not the ladder")
    p.add_argument("--check-from", metavar="DATASET:VARIANT", default=None,
                   help="--check with the budget recorded for another variant of the same task as the candidate")
    p.add_argument("--plan", action="store_true", help="say what is done and what would train; train nothing")
    p.add_argument("--from-store", action="store_true",
                   help="write the page from the finished runs only (rungs not trained are named and left out); "
                        "train nothing")
    p.add_argument("--list", action="store_true", help="list the variants behind the claims and exit")
    p.add_argument("--record", action="store_true", help="write a converged budget to the budgets file")
    p.add_argument("--results", default="results")
    p.add_argument("--figures", default="figures")
    p.add_argument("--archive", default=None, metavar="FOLDER",
                   help="export each finished run's record here (renet_core.engine.archive), e.g. results/archive/demo")
    a = p.parse_args(argv)
    if a.list:
        for d, t, v in claim_variants(a.profile):
            print(f"--dataset {d} --task {t} --variant {v}")
        return
    folds = [int(f) for f in a.folds.split(",")]
    if a.check_from:
        a.anchor, a.check = candidate(a.profile, a.task, a.check_from), True
    name = f"convergence_{a.dataset}_{a.task}_{a.variant}"
    command = " ".join(sys.argv[1:] if argv is None else argv)

    base = variant_configs(a.profile, a.dataset, a.task, a.variant, folds[:1])[0]   # its store; the budget's key
    train = not (a.plan or a.from_store)

    def write(points, budget, rungs) -> str:
        results, figures = Path(a.results), Path(a.figures)
        results.mkdir(parents=True, exist_ok=True)
        figures.mkdir(parents=True, exist_ok=True)
        to_csv_atomic(points, results / f"{name}.csv", index=False)
        made_in = environments(points, base.results_dir)
        page = render(points, budget, a.profile, a.dataset, a.task, a.variant, rungs, name, command, a.check, made_in)
        write_text_atomic(results / f"{name}.md", page)
        figure(points, budget, f"{a.variant}, {a.dataset} {a.task}: {budget.status}", figures / f"{name}.png")
        return page

    def keep(cfg) -> None:
        archive.export_runs(ResultsStore(cfg.results_dir), a.archive, [cfg.config_hash()])

    points, budget, rungs = measure(a.profile, a.dataset, a.task, a.variant, folds, a.below, a.above, a.anchor,
                                    a.all, train=train, on_rung=write if train else None, check=a.check,
                                    after_run=keep if a.archive else None)
    if a.plan:
        todo = points[~points["done"]]
        print(points[["fold", "steps", "done", "best_val", "config_hash"]].to_string(index=False))
        print(f"ladder {rungs}; {len(todo)} of {len(points)} runs to train, {int(todo['steps'].sum())} one-AU steps "
              f"for the whole ladder (the climb stops at the first converged budget); on what is done: "
              f"{budget.status} ({budget.reason})")
        return
    print(write(points, budget, rungs))
    if a.record and budget.converged:
        print(f"recorded in {record_budget(a.profile, base, budget.steps, f'results/{name}.md')}")


if __name__ == "__main__":
    main()
