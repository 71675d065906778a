"""Command line: ``python -m renet_core train|evaluate|cv|grid ...``.

Examples::

    python -m renet_core train --profile demo --dataset bp4d --model renet --fold 1
    python -m renet_core train --config run.yaml --set lr=3e-4 --set holdout_aus=[23]
    python -m renet_core evaluate --config run.yaml [--checkpoint path/to/best.pt]
    python -m renet_core cv --profile smoke --dataset disfa --model resnet18 [--gpus 0,1,2]
    python -m renet_core grid a.yaml b.yaml c.yaml --gpus 0,1          # one run per GPU
    torchrun --nproc_per_node=4 -m renet_core train --config run.yaml  # one run on 4 GPUs

A config is built from: the defaults of ExperimentConfig < ``--profile`` < ``--config`` YAML <
the shortcut flags < ``--set key=value`` (values parsed as YAML: ``[1, 2]``, ``1e-4``, ``null``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

SHORTCUTS = ("dataset", "task", "model", "fold", "strategy", "relation_mode", "root", "device",
             "results_dir", "seed", "epochs")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m renet_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("train", "train and test one fold"), ("evaluate", "re-test a trained run"),
                       ("cv", "the three subject-exclusive folds")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="YAML file of ExperimentConfig fields")
        p.add_argument("--profile", choices=("smoke", "demo", "paper"))
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--force", action="store_true", help="retrain even if the run finished")
        p.add_argument("--no-progress", action="store_true")
        for field in SHORTCUTS:
            p.add_argument("--" + field.replace("_", "-"), dest=field)
        if name == "evaluate":
            p.add_argument("--checkpoint", help="default: the run's best.pt")
        if name == "cv":
            p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3])
            p.add_argument("--gpus", help="spread the folds one per GPU, e.g. 0,1,2")
    g = sub.add_parser("grid", help="run many config files, one per GPU at a time")
    g.add_argument("configs", nargs="+")
    g.add_argument("--gpus", required=True, help="e.g. 0,1,2,3 (empty entries: CPU slots)")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    from .experiment import ExperimentConfig
    from .profiles import get_profile

    values: dict = {}
    if args.profile:
        values.update(get_profile(args.profile))
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"{args.config}: expected a YAML mapping of ExperimentConfig fields")
        if "profile" in loaded and not args.profile:
            values.update(get_profile(loaded["profile"]))
        values.update(loaded)
    for field in SHORTCUTS:
        value = getattr(args, field)
        if value is not None:
            values[field] = yaml.safe_load(value) if field not in ("root", "results_dir") else value
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(value)
    if args.force:
        values["force"] = True
    if args.no_progress:
        values["progress"] = False
    try:
        return ExperimentConfig.from_dict(values)
    except ValueError as exc:
        raise SystemExit(f"bad config: {exc}") from exc


def _print_rows(rows) -> None:
    if rows is None or len(rows) == 0:
        return
    from .results import summary_table

    for (dataset, task), part in rows.groupby(["dataset", "task"]):
        for metric in sorted(part["metric"].unique()):
            print(f"\n{dataset} {task} {metric}:")
            print(summary_table(part, metric).round(3).to_string())


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "grid":
        from .ddp import spread_runs

        codes = spread_runs(args.configs, args.gpus.split(","))
        for cfg, code in zip(args.configs, codes):
            print(f"{'ok    ' if code == 0 else 'FAILED'} {cfg} (exit {code})")
        return int(any(codes))
    from . import experiment

    cfg = build_config(args)
    if args.command == "train":
        result = experiment.run(cfg)
        if result.skipped:
            print(f"run {result.config_hash} already finished (use --force to retrain)")
        _print_rows(result.rows)
    elif args.command == "evaluate":
        _print_rows(experiment.evaluate(cfg, checkpoint=args.checkpoint))
    elif args.command == "cv" and args.gpus:
        from .ddp import spread_runs

        folder = Path(tempfile.mkdtemp(prefix="renet_cv_"))
        files = []
        for fold in args.folds:
            path = folder / f"fold{fold}.yaml"
            path.write_text(yaml.safe_dump(cfg.replace(fold=fold).to_dict()))
            files.append(path)
        codes = spread_runs(files, args.gpus.split(","))
        print(f"fold runs finished with exit codes {codes}; logs in {folder}")
        from .results import ResultsStore

        rows = ResultsStore(cfg.results_dir).load()
        _print_rows(rows[rows["method"] == cfg.method_name()])
        return int(any(codes))
    else:
        _print_rows(experiment.cross_validate(cfg, folds=args.folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
