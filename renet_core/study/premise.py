"""The premise experiment (issue 24, notebook 11): does RE-Net's relation help more when AUs
co-occur more?

RE-Net's argument (Eq. 4-5) is that the correlation between AUs carries information the
AU-conditioned BN can use. On real data the relations are whatever the subjects did; SynthAU can
set them. ``synth_coupling`` changes how strongly AUs co-occur with every AU's rate held at its
target (0: every AU independent, 1: the default, 2: stronger), and ``synth_setting="control"`` is
a positive control built so that the relation must help: AU2 and AU23 drawn at a quarter of their
pixel effect beside fully visible partners (docs/reproduction-notes.md, "The premise experiment").

For every setting x model x fold the run's config is built through the same engine as every
table (Table 7's rows: ResNet-18, RE-Net with Eq. 3 only, with the fixed PCC relation, optionally
the learnable one; at coupling 1 they are Table 1's and Table 7's runs, reused), what is missing
is run, and :func:`study` writes

* ``results/premise.csv``: one row per run (setting, coupling, model, fold, avg_f1, per-AU F1 in
  percent, the run's identity, steps and data source);
* ``results/premise_labels.csv``: per setting, the mean absolute PCC over the off-diagonal pairs
  of the 12 BP4D AUs, over all labelled frames (each a training frame in two of the three folds)
  and the mean over folds of each fold's training labels (the relation RE-Net is built from);
* ``results/premise_curves.csv`` and ``figures/premise_validation.png``: every run's validation F1
  after each epoch (is it the budget?);
* ``results/premise.md`` and ``figures/premise.png``: RE-Net minus Eq. 3 alone and RE-Net minus
  ResNet-18 per setting, each with its 95% interval over folds (:func:`paired_interval`), against
  mean |PCC|, on all 12 AUs and on the control's faint AUs (drawn and rendered by
  :mod:`renet_core.study.premise_analysis`).

    from renet_core.study import premise
    out = premise.study(profile="demo")     # 3 couplings + the control x 3 models x 3 folds
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore, load_splits, profile_setting
from renet_core.engine.profiles import get_profile
from renet_core.engine.splits import relation_from_training
from renet_core.study.board import best_validation, validation_history
from renet_core.study.configs import au_steps, run_configs, spec_configs, training_budget
from renet_core.study.figures import save_figure
from renet_core.study.preview import notice, source_mark
# The analysis (what is compared, the intervals, premise.md and the figures) lives in
# premise_analysis; its names are this module's too, as the notebook and the tests use them.
from renet_core.study.premise_analysis import (  # noqa: F401
                                               COMPARISONS,
                                               CONTROL_COUPLING,
                                               FAINT_AUS,
                                               MODEL_ROWS,
                                               control_check,
                                               curves_figure,
                                               differences,
                                               figure,
                                               paired_interval,
                                               render,
                                               trends,
                                               validation_gaps,
)
from renet_core.study.reproduce import Reproduced
from renet_core.study.tables import TABLES

#: The coupling levels run by default: mean |PCC| of the demo labels about 0.04, 0.15, 0.19. Three
#: levels, the fewest a trend can be read from; coupling 1 costs nothing (Table 1's and Table 7's runs),
#: each other level 9 runs (~35 min on 2 cores). Add 0.5 (about 0.07) with ``couplings=(0, 0.5, 1, 2)``.
DEFAULT_COUPLINGS = (0.0, 1.0, 2.0)
DEFAULT_MODELS = ("resnet18", "renet-none", "renet")
FOLDS = (1, 2, 3)


@dataclass(frozen=True)
class Setting:
    """One data setting of the experiment: a SynthAU coupling and named setting."""

    name: str
    coupling: float
    synth_setting: str = "default"


def settings(couplings: Sequence[float] | None = None, include_control: bool = True) -> list[Setting]:
    """The settings run: one per coupling (default :data:`DEFAULT_COUPLINGS`), then the control."""
    out = [Setting(f"coupling {float(c):g}", float(c)) for c in (DEFAULT_COUPLINGS if couplings is None else couplings)]
    if include_control:
        out.append(Setting("control", CONTROL_COUPLING, "control"))
    return out


def budget(profile: str, steps: int | None = None) -> dict:
    """The runs' training budget: the profile's table budget for BP4D detection (the parity
    budget, ``table_budgets``); ``steps`` (per run) overrides it, over as many epochs."""
    base = profile_setting(profile, "table_budgets", ("bp4d", "occurrence"), {}) or {}
    if steps is None:
        return dict(base)
    if int(steps) < 1:
        raise ValueError(f"steps={steps!r}; expected an integer >= 1 (training steps per run)")
    epochs = min(int(steps), int(base.get("epochs") or get_profile(profile).get("epochs", 1)))
    return {"epochs": epochs, "steps_per_epoch": max(1, int(round(int(steps) / epochs)))}


def setting_configs(setting: Setting, profile: str = "demo", folds: Sequence[int] = FOLDS,
                    models: Sequence[str] = DEFAULT_MODELS, steps: int | None = None, store_dir=None,
                    **changes) -> dict[str, list]:
    """``{model: [config of fold f, ...]}`` of one setting: Table 7's rows on the BP4D SynthAU twin
    with the setting's coupling and named setting, at :func:`budget`."""
    unknown = [m for m in models if m not in MODEL_ROWS]
    if unknown:
        raise ValueError(f"unknown premise models {unknown}; expected among {list(MODEL_ROWS)}")
    spec = dataclasses.replace(TABLES["table7"], rows=tuple(MODEL_ROWS[m] for m in models))
    return spec_configs(spec, profile, None, list(folds), store_dir, data="synthetic",
                        synth_coupling=setting.coupling, synth_setting=setting.synth_setting,
                        **{**budget(profile, steps), **changes})


def mean_abs_pcc(matrix) -> float:
    """Mean absolute correlation over the off-diagonal pairs of a relation matrix."""
    m = np.asarray(matrix, dtype=float)
    return float(np.abs(m[~np.eye(len(m), dtype=bool)]).mean())


def label_strength(setting: Setting, configs: dict[str, list]) -> dict:
    """The setting's label correlation (:data:`premise_labels.csv`'s row): the frames every run
    of a fold sees (:func:`renet_core.engine.load_splits`), their 12 BP4D AUs' PCC as RE-Net's
    relation is built (:func:`relation_from_training`: a fold's training and validation frames)."""
    per_fold, frames = [], None
    for cfg in next(iter(configs.values())):     # every model of a fold sees the same frames
        splits = load_splits(cfg)
        per_fold.append(mean_abs_pcc(relation_from_training(pd.concat([splits.train, splits.val]), cfg)))
        if frames is None:
            frames, first = pd.concat([splits.train, splits.val, splits.test]), cfg
    return {"setting": setting.name, "coupling": setting.coupling, "synth_setting": setting.synth_setting,
            "mean_abs_pcc": mean_abs_pcc(relation_from_training(frames, first)),
            "mean_abs_pcc_train": float(np.mean(per_fold)), "frames": len(frames), "folds": len(per_fold)}


def run_table(setting: Setting, configs: dict[str, list], rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a setting: avg and per-AU F1 in percent (``f1_AU<n>``)."""
    by_hash = {c.config_hash(): c for cfgs in configs.values() for c in cfgs}
    store = ResultsStore(next(iter(configs.values()))[0].results_dir)
    records = []
    for (model, fold), part in rows[rows["metric"] == "f1"].groupby(["entry", "fold"], sort=False):
        f1 = part.groupby("au")["value"].mean() * 100.0
        ident = str(part["config_hash"].iloc[0])
        records.append({"setting": setting.name, "coupling": setting.coupling,
                        "synth_setting": setting.synth_setting, "model": model, "fold": int(fold),
                        "avg_f1": float(f1.mean()), **{f"f1_AU{int(a)}": float(v) for a, v in f1.items()},
                        "steps": au_steps(by_hash[ident]) if ident in by_hash else None,
                        "best_val_f1": _percent(best_validation(store, by_hash[ident]) if ident in by_hash else None),
                        "config_hash": ident,
                        "data_source": str(part["data_source"].iloc[0])})
    return pd.DataFrame.from_records(records)


def _percent(score: float | None) -> float:
    return float("nan") if score is None else 100.0 * float(score)


def validation_curves(configs: dict) -> pd.DataFrame:
    """Is it the budget? The validation F1 (percent) of every finished run after each epoch, from
    its history (``done.json``): one row per setting, model, fold and epoch, with the training step
    it was measured at. ``configs``: ``{Setting: {model: [config per fold]}}`` as :func:`study`
    builds them."""
    records = []
    for setting, by_model in configs.items():
        for model, cfgs in by_model.items():
            for cfg in cfgs:
                for epoch, score in validation_history(ResultsStore(cfg.results_dir), cfg):
                    records.append({"setting": setting.name, "model": model, "fold": cfg.fold, "epoch": epoch,
                                    "step": epoch * int(cfg.steps_per_epoch or 0), "val_f1": 100.0 * score})
    return pd.DataFrame.from_records(records, columns=["setting", "model", "fold", "epoch", "step", "val_f1"])


def study(profile: str = "demo", folds: Sequence[int] | None = None, couplings: Sequence[float] | None = None,
          include_control: bool = True, models: Sequence[str] | None = None, *, steps: int | None = None,
          device: str | None = None, store_dir=None, tables_dir: str | os.PathLike = "results",
          figures_dir: str | os.PathLike = "figures", name: str = "premise", **changes) -> Reproduced:
    """Run the premise experiment (module docstring) and write its four outputs; returns them as a
    :class:`~renet_core.study.reproduce.Reproduced` (``table``: the runs; ``extra``: ``labels``,
    ``differences``, ``trends``, ``configs``). ``folds`` default all three, ``couplings``
    :data:`DEFAULT_COUPLINGS`, ``models`` :data:`DEFAULT_MODELS` (add ``"renet-learnable"`` for
    the learnable relation), ``steps`` per run the profile's parity budget (:func:`budget`);
    ``changes`` are ExperimentConfig fields for every run. Finished runs are reused."""
    folds = list(folds) if folds else list(FOLDS)
    models = list(models) if models else list(DEFAULT_MODELS)
    chosen = settings(couplings, include_control)
    configs, runs, labels = {}, [], []
    for setting in chosen:
        configs[setting] = setting_configs(setting, profile, folds, models, steps, store_dir, device=device,
                                           **changes)
        print(f"premise: {setting.name} (coupling {setting.coupling:g}, {setting.synth_setting})", flush=True)
        runs.append(run_table(setting, configs[setting], run_configs(configs[setting])))
        labels.append(label_strength(setting, configs[setting]))
    runs, labels = pd.concat(runs, ignore_index=True), pd.DataFrame.from_records(labels)
    runs.insert(3, "mean_abs_pcc", runs["setting"].map(labels.set_index("setting")["mean_abs_pcc"]))
    diffs, trend = differences(runs, labels), trends(runs, labels)
    first = next(iter(configs.values()))
    source = (f"SynthAU {next(iter(first.values()))[0].synth_size}, BP4D layout (synthetic): couplings "
              + ", ".join(f"{s.coupling:g}" for s in chosen if s.synth_setting == "default")
              + (" and the positive control" if include_control else ""))
    tables_dir, figures_dir = Path(tables_dir), Path(figures_dir)
    png = save_figure(figure(diffs, f"The premise experiment ({source})"), figures_dir / f"{name}.png")
    curves = validation_curves(configs)
    curves_png = save_figure(curves_figure(curves, f"Validation F1 per epoch ({source})"),
                             figures_dir / f"{name}_validation.png")
    curves_csv = to_csv_atomic(curves, tables_dir / f"{name}_curves.csv", index=False, float_format="%.4f")
    csv = to_csv_atomic(runs, tables_dir / f"{name}.csv", index=False, float_format="%.4f")
    labels_csv = to_csv_atomic(labels, tables_dir / f"{name}_labels.csv", index=False, float_format="%.4f")
    budget_text = training_budget({f"{s.name}: {m}": cfgs for s, by in configs.items() for m, cfgs in by.items()})
    text = render(runs, labels, diffs, trend, source, budget_text, os.path.relpath(png.resolve(), tables_dir.resolve()),
                  os.path.relpath(curves_png.resolve(), tables_dir.resolve()))
    if notice(profile):   # a preview says so under the title (renet_core.study.preview)
        title, _, rest = text.partition("\n\n")
        text = f"{title}\n\n{notice(profile)}\n\n{rest}"
    md = write_text_atomic(tables_dir / f"{name}.md", text)
    return Reproduced(name, text, source_mark(profile, source), [csv, labels_csv, Path(md), png, curves_csv, curves_png], table=runs, figure=png,
                      extra={"labels": labels, "differences": diffs, "trends": trend, "configs": configs,
                             "control_check": control_check(runs, labels), "curves": curves,
                             "curves_figure": curves_png})
