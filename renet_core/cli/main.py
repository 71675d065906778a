"""Command line: ``python -m renet_core train|evaluate|cv|grid|dynamics|predict|compare|archive ...``.

Examples::

    python -m renet_core train --profile demo --dataset bp4d --model renet --fold 1
    python -m renet_core train --config run.yaml --set lr=3e-4 --set holdout_aus=[23]
    python -m renet_core train --profile paper --dry-run   # its code path at its shapes, on SynthAU
    python -m renet_core evaluate --config run.yaml [--checkpoint path/to/best.pt]
    python -m renet_core cv --profile smoke --dataset disfa --model resnet18 [--gpus 0,1,2]
    python -m renet_core grid a.yaml b.yaml c.yaml --gpus 0,1          # one run per GPU
    torchrun --nproc_per_node=4 -m renet_core train --config run.yaml  # one run on 4 GPUs
    python -m renet_core dynamics --profile demo --steps 1500 --eval-every 250  # notebook 09's curves
    python -m renet_core predict clip.mp4 photos/ --run RUN_DIR --out aus.csv  # your own faces
    python -m renet_core compare results/ rerun/results/  # a rerun against the committed results
    python -m renet_core archive export --profile demo    # finished runs' records into results/archive/demo
                                                          # (Fig. 3's runs with their test features)
    python -m renet_core archive import --profile demo    # ... and into this machine's cache

A config is built by ``ExperimentConfig.build`` from: the defaults of ExperimentConfig <
``--profile`` < ``--config`` YAML < the shortcut flags < ``--set key=value`` (values parsed as
YAML: ``[1, 2]``, ``1e-4``, ``null``), and typed and checked before any data is prepared. The data:
``--root``, else ``$RENET_<DATASET>`` when set (as ``run_all``), else the SynthAU twin;
``--set data=synthetic`` forces SynthAU. Without ``--results-dir`` runs go to the cache,
``$RENET_CACHE/runs/<profile>`` (default ``~/.cache/renet_core``), never into the repository.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from renet_core.base.io import write_text_atomic
from renet_core.cli.launch import spread_runs
from renet_core.engine import archive
from renet_core.engine import (
    PROFILE_NAMES,
    ExperimentConfig,
    ResultsStore,
    cross_validate,
    evaluate,
    run,
    summary_table,
)
from renet_core.engine.dryrun import dry_run
from renet_core.engine.dryrun import summary as dry_run_summary
from renet_core.model.pretrained import WeightsUnavailableError
from renet_core.predict import command as predict_command
from renet_core.study import board
from renet_core.study import compare as compare_results
from renet_core.study import dynamics

SHORTCUTS = ("dataset", "task", "model", "fold", "strategy", "relation_mode", "root", "device",
             "results_dir", "seed", "epochs")
#: How a command-line user sets any config field; named in every "bad config" message.
SET_HINT = "set any config field with --set KEY=VALUE (e.g. --set denominator=abs, --set pretrained=null)"


def parse_set(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as ``{key: value}``, each value parsed as YAML (``[1, 2]``,
    ``1e-4``, ``null``); an item without "=" is a usage error."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m renet_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("train", "train and test one fold"), ("evaluate", "re-test a trained run"),
                       ("cv", "the three subject-exclusive folds")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="YAML file of ExperimentConfig fields")
        p.add_argument("--profile", choices=PROFILE_NAMES)
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--force", action="store_true", help="retrain even if the run finished")
        p.add_argument("--no-progress", action="store_true")
        for field in SHORTCUTS:
            p.add_argument("--" + field.replace("_", "-"), dest=field)
        if name == "train":
            p.add_argument("--dry-run", action="store_true",
                           help="the profile's code path at its shapes on SynthAU: a few steps of each model "
                                "and strategy, a validation and a test batch, a checkpoint and a resume; "
                                "prints s/step and peak memory (renet_core.engine.dryrun)")
            p.add_argument("--dry-run-steps", type=int, default=2, help="training steps per model [2]")
        if name == "evaluate":
            p.add_argument("--checkpoint", help="default: the run's best.pt")
            p.add_argument("--allow-other-run", action="store_true",
                           help="score a checkpoint trained under another run identity (e.g. another fold) "
                                "on this config's test fold, without filing the rows under any run")
            p.add_argument("--no-file", action="store_true",
                           help="print the scores only: file no rows and leave the run's record as it is "
                                "(e.g. a run whose training is not finished)")
        if name == "cv":
            p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3])
            p.add_argument("--gpus", help="spread the folds one per GPU, e.g. 0,1,2")
    g = sub.add_parser("grid", help="run many config files, one per GPU at a time")
    g.add_argument("configs", nargs="+")
    g.add_argument("--gpus", required=True, help="e.g. 0,1,2,3 (empty entries: CPU slots)")
    _dynamics_parser(sub)
    predict_command.add_parser(sub)
    c = sub.add_parser("compare", help="compare two results folders (./run_all.sh's results/): tables' Avg, "
                                       "claims against the committed 95%% intervals, environments, runs")
    c.add_argument("committed", help="the reference results folder, e.g. results")
    c.add_argument("rerun", help="the results folder of a rerun (another machine, a fresh clone)")
    c.add_argument("--profile", help="compare this profile's runs only (default: every <profile>_runs.csv)")
    c.add_argument("--out", help="also write the comparison (Markdown) to this file")
    a = sub.add_parser("archive", help="finished runs' records (no checkpoints) between the cache and a folder "
                                       "git keeps (renet_core.engine.archive)")
    a.add_argument("action", choices=("export", "import"))
    a.add_argument("--profile", choices=PROFILE_NAMES, default="demo")
    a.add_argument("--archive", help="the records' folder (default: results/archive/<profile>)")
    a.add_argument("--results-dir", help="the store (default: $RENET_CACHE/runs/<profile>)")
    a.add_argument("--features", action="store_true",
                   help="export: keep every run's test features (~3 MB a RE-Net run; default: Fig. 3's runs only, "
                        "Table 1's RE-Net and ResNet-18, so that Fig. 3 is drawn from the records elsewhere)")
    return parser.parse_args(argv)


def fig3_runs(profile: str) -> list[str]:
    """The identities of Fig. 3's runs under ``profile`` (Table 1's RE-Net and ResNet-18, every fold,
    BP4D from ``$RENET_BP4D`` or its SynthAU twin): the runs whose features an export keeps."""
    return [cfg.config_hash() for cfg in board.feature_configs(profile)]


def _archive(args) -> int:
    """``archive export|import``: :func:`renet_core.engine.archive.export_runs` / ``import_runs``."""
    store = ResultsStore(args.results_dir or ExperimentConfig.build(profile=args.profile).results_dir)
    folder = Path(args.archive or Path("results") / "archive" / args.profile)
    try:
        if args.action == "export":
            written = archive.export_runs(store, folder, features=args.features or fig3_runs(args.profile))
            print(f"{len(written)} run record(s) written to {folder} ({len(archive.finished_runs(store))} "
                  f"finished in {store.root})")
        else:
            imported, skipped = archive.import_runs(folder, store)
            print(f"{len(imported)} run record(s) imported into {store.root}; {len(skipped)} left out")
            return int(bool(skipped))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"archive {args.action}: {exc}") from None
    return 0


def _dynamics_parser(sub) -> None:
    d = sub.add_parser("dynamics", help="training curves of RE-Net variants against ResNet-18 (notebook 09)")
    d.add_argument("--profile", default="demo", choices=PROFILE_NAMES)
    d.add_argument("--dataset", default="bp4d")
    d.add_argument("--task", default="occurrence")
    d.add_argument("--fold", type=int, default=1)
    d.add_argument("--root", default=None)
    d.add_argument("--steps", type=int, default=None)
    d.add_argument("--eval-every", type=int, default=None)
    d.add_argument("--variants", default=None,
                   help="comma-separated names: " + ", ".join(v.name for v in dynamics.VARIANTS))
    d.add_argument("--name", default="training_dynamics")
    d.add_argument("--results", default="results")
    d.add_argument("--figures", default="figures")
    d.add_argument("--store", default=None, help="runs folder (default $RENET_CACHE/runs/<profile>)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="ExperimentConfig field for every curve (YAML value), e.g. pretrained=standin")


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    """The run's config: :meth:`ExperimentConfig.build` (profile < ``--config`` YAML < shortcut
    flags < ``--set``; the data decided as everywhere else: ``--root``, else ``$RENET_<DATASET>``,
    else the SynthAU twin; ``--set data=synthetic`` forces SynthAU). ``--set key=null`` sets a
    field to None (e.g. ``pretrained=null``: train from scratch)."""
    overrides: dict = {}
    for field in SHORTCUTS:
        value = getattr(args, field)
        if value is not None and field != "root":
            overrides[field] = value if field == "results_dir" else yaml.safe_load(value)
    given = parse_set(args.set)
    overrides.update(given)
    nulls = {k: None for k, v in given.items() if v is None and k not in ("root", "data")}
    if args.force:
        overrides["force"] = True
    if args.no_progress:
        overrides["progress"] = False
    try:
        cfg = ExperimentConfig.build(profile=args.profile, yaml=args.config, root=args.root, **overrides)
        if nulls:  # build() ignores None values (unset parameters); an explicit --set key=null is meant
            ExperimentConfig.check_keys(nulls)
            cfg = cfg.replace(**nulls)
        return cfg
    except ValueError as exc:
        raise SystemExit(f"bad config: {exc}\n({SET_HINT})") from exc


def _print_rows(rows) -> None:
    """Print each metric's table, headed by the data that produced it (``data_source``)."""
    if rows is None or len(rows) == 0:
        return
    for (dataset, task), part in rows.groupby(["dataset", "task"]):
        sources = sorted(part["data_source"].astype(str).unique()) if "data_source" in part else ["not recorded"]
        synthetic = "synthetic" in part and part["synthetic"].astype(bool).any()
        for metric in sorted(part["metric"].unique()):
            print(f"\n{dataset} {task} {metric}:")
            print(f"data: {'; '.join(sources)}"
                  + (" -- SynthAU, not a reproduction of the paper's numbers" if synthetic else ""))
            print(summary_table(part, metric).round(3).to_string())


def _cv_on_gpus(cfg: ExperimentConfig, folds, gpus: str) -> int:
    folder = Path(tempfile.mkdtemp(prefix="renet_cv_"))
    files = []
    for fold in folds:
        path = folder / f"fold{fold}.yaml"
        path.write_text(yaml.safe_dump(cfg.replace(fold=fold).to_dict()))
        files.append(path)
    codes = spread_runs(files, gpus.split(","))
    print(f"fold runs finished with exit codes {codes}; logs in {folder}")
    rows = ResultsStore(cfg.results_dir).done_rows()
    _print_rows(rows[rows["method"] == cfg.method_name()])
    return int(any(codes))


def _dynamics(args) -> int:
    out = dynamics.study(profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                         variants=args.variants.split(",") if args.variants else None, dataset=args.dataset,
                         fold=args.fold, root=args.root, store_dir=args.store, out_dir=args.results,
                         fig_dir=args.figures, name=args.name, task=args.task, **parse_set(args.set))
    print(out["markdown"])
    return 0


def _compare(args) -> int:
    """``compare A B``: :func:`renet_core.study.compare.compare`, printed (and written to ``--out``)."""
    try:
        text = compare_results.compare(args.committed, args.rerun, profile=args.profile)
    except ValueError as exc:   # not a results folder, or a file in it that is not what run_all writes
        raise SystemExit(f"compare: {exc}") from None
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0


def _dry_run(args) -> int:
    """``train --dry-run``: on SynthAU (``--root`` does not apply), into a temporary run folder."""
    if args.root:
        raise SystemExit("--dry-run runs on SynthAU; drop --root (a real run uses it)")
    args.set = ["data=synthetic", *args.set]
    report = dry_run(build_config(args), steps=args.dry_run_steps)
    print(dry_run_summary(report))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "grid":
        codes = spread_runs(args.configs, args.gpus.split(","))
        for cfg, code in zip(args.configs, codes):
            print(f"{'ok    ' if code == 0 else 'FAILED'} {cfg} (exit {code})")
        return int(any(codes))
    if args.command == "dynamics":
        return _dynamics(args)
    if args.command == "predict":
        return predict_command.run(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "archive":
        return _archive(args)
    if args.command == "train" and args.dry_run:
        return _dry_run(args)
    cfg = build_config(args)
    try:
        if args.command == "train":
            result = run(cfg)
            if result.skipped:
                print(f"run {result.config_hash} already finished (use --force to retrain)")
            _print_rows(result.rows)
        elif args.command == "evaluate":
            _print_rows(evaluate(cfg, checkpoint=args.checkpoint, allow_other_run=args.allow_other_run,
                                 file=not args.no_file))
        elif args.command == "cv" and args.gpus:
            return _cv_on_gpus(cfg, args.folds, args.gpus)
        else:
            _print_rows(cross_validate(cfg, folds=args.folds))
    except WeightsUnavailableError as exc:   # no network for ImageNet weights: say what to do
        raise SystemExit(str(exc)) from exc
    except ValueError as exc:
        if "config" in str(exc) or "denominator" in str(exc):
            raise SystemExit(f"{exc}\n({SET_HINT})") from exc
        if args.command == "evaluate":   # a file that is not this run's checkpoint: the message says why
            raise SystemExit(str(exc)) from None
        raise
    return 0
