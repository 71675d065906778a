"""Experiments: a config in, trained models and tidy result rows out.

:func:`run` trains and evaluates one fold, :func:`cross_validate` the three subject-exclusive
folds (section 4.1). Results go to a :class:`renet_core.engine.store.ResultsStore`; a finished
config is skipped unless ``force=True``; an interrupted one resumes from its last checkpoint.
When no dataset ``root`` is given (and ``data="synthetic"``), the SynthAU twin of the dataset is
written into the cache folder once and used; its result rows say so in ``data_source``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from renet_core.engine.execute import RunResult, as_config, execute, finished
from renet_core.engine.splits import Splits
from renet_core.engine.standin import STANDIN, standin_backbone


def run(config, splits: Splits | None = None, on_epoch_end: Callable[[int, dict], None] | None = None,
        dataset_factory=None) -> RunResult:
    """Train and evaluate one fold of ``config`` (an ExperimentConfig or a dict of its fields);
    write checkpoints, predictions and result rows (:func:`renet_core.engine.execute.execute`).

    ``pretrained="standin"`` is resolved first: the offline stand-in for ImageNet weights, trained
    once and cached. ``splits`` and ``dataset_factory(frames, cfg, train)`` may be supplied to
    bypass the data layer (tests, notebooks with their own frames). A finished config is returned
    from the results store unless ``force``; an interrupted one resumes from ``last.pt``.
    """
    cfg = as_config(config)
    done = finished(cfg)
    if done is not None:
        return done
    pretrained = standin_backbone(cfg) if cfg.pretrained == STANDIN else cfg.pretrained
    return execute(cfg, splits, on_epoch_end, dataset_factory, pretrained=pretrained)


def cross_validate(config, folds: Sequence[int] = (1, 2, 3), **kwargs) -> pd.DataFrame:
    """Run the subject-exclusive folds and return all their rows (section 4.1)."""
    cfg = as_config(config)
    results = [run(cfg.replace(fold=int(f)), **kwargs) for f in folds]
    return pd.concat([r.rows for r in results], ignore_index=True)
