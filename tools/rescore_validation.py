"""Is a validation gap an artefact of the validation subset? (docs/training-dynamics.md, "Issue 23")

For the RE-Net and ResNet-18 runs of Tables 1-5, score each run's kept weights (``best.pt``, the
epoch early stopping picked) on the fold's whole validation split, on the evenly spaced subset the
run validated on (``val_max_frames``; this must equal the recorded best validation score), and on
the test split, and print RE-Net minus ResNet-18 on each, per fold. Reads finished runs only;
trains nothing and writes nothing.

    RENET_CACHE=<the cache the runs are in> python tools/rescore_validation.py --profile demo
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from renet_core.engine import ResultsStore, load_splits
from renet_core.engine.evaluate import predict, score_predictions
from renet_core.engine.precision import eval_loader
from renet_core.engine.splits import make_dataset
from renet_core.model.checkpoint import load_checkpoint
from renet_core.study.configs import table_configs


def rescore(cfg) -> dict[str, float]:
    """The run's mean F1 (occurrence) or ICC (intensity) on the validation subset, the whole
    validation split and the test split; its recorded best validation score."""
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    path = store.run_dir(key) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run {key} ({cfg.dataset} fold {cfg.fold}, {cfg.method_name()}) is not "
                                "finished in this cache; set RENET_CACHE to the cache that trained it")
    model, _ = load_checkpoint(path, aus=cfg.resolved_aus(), map_location="cpu")
    metric = "f1" if cfg.task == "occurrence" else "icc"
    subset, whole = load_splits(cfg), load_splits(dataclasses.replace(cfg, val_max_frames=None))
    out = {}
    for name, frames in (("val_subset", subset.val), ("val_whole", whole.val), ("test", subset.test)):
        pred = predict(model, eval_loader(make_dataset(frames, cfg, False), cfg, False), torch.device("cpu"), cfg, name)
        out[name] = float(np.nanmean(score_predictions(pred, cfg)[metric]))
        out[f"n_{name}"] = len(frames)
    history = store.done_summary(key).get("history", [])
    out["recorded_best"] = max(float(e["val"]) for e in history if e.get("val") is not None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--tables", default="table1,table2,table3,table4,table5")
    args = parser.parse_args()
    configs = table_configs(args.profile)
    for table in args.tables.split(","):
        for renet, resnet in zip(configs[table]["renet"], configs[table]["resnet18"]):
            a, b = rescore(renet), rescore(resnet)
            gaps = "; ".join(f"{k} {100 * (a[k] - b[k]):+.1f}" for k in ("val_subset", "val_whole", "test"))
            print(f"{table} fold {renet.fold}: frames val {a['n_val_subset']} / {a['n_val_whole']}, test {a['n_test']}; "
                  f"RE-Net - ResNet-18 (x100): {gaps}; recorded best val {b['recorded_best']:.3f} / "
                  f"{a['recorded_best']:.3f}, rescored {b['val_subset']:.3f} / {a['val_subset']:.3f}", flush=True)


if __name__ == "__main__":
    main()
