"""Training dynamics of RE-Net against ResNet-18 (notebook 09, docs/training-dynamics.md).

RE-Net trains one AU per batch (section 3.4, strategy 2): each AU's own parameters (gamma_c,
beta_c of every BN layer, Eq. 3) are trained in ~1/C of the steps, and with a shared output layer
every AU starts as the same network. This module measures what that does to learning: per-AU
training loss and validation F1 against steps and against training wall time, for the baseline
and RE-Net variants (strategy, AU-specific learning rate, head, relation, initialisation, BN
statistics). Every variant is an ordinary :class:`renet_core.engine.ExperimentConfig` run
(same engine, same data, same seed); an "epoch" here is an evaluation interval of ``eval_every``
steps, early stopping is off, and the curves come from the run's per-epoch history.

Validation F1 is measured on the held-out *training* subjects; the test F1 column is the test
score of the weights picked by validation (as every table does), never used to choose anything.

    from renet_core.study import dynamics
    table = dynamics.study(profile="demo", steps=600, eval_every=100)
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from renet_core.base.io import write_bytes_atomic, write_text_atomic
from renet_core.base.metrics import always_positive_f1
from renet_core.engine import ResultsStore, label_columns, load_splits, profile_setting, run
from renet_core.engine.evaluate import score_predictions
from renet_core.study.configs import config
from renet_core.study.figures import pyplot
from renet_core.study.preview import notice, source_mark


@dataclass(frozen=True)
class Variant:
    """One curve: a display label and the config overrides that make it."""

    name: str
    label: str
    overrides: dict = field(default_factory=dict)
    step_cost: float = 1.0     # steps are divided by this (strategy "all" costs ~C per step)


#: What every variant starts from, whatever the profile says: the paper's training (one lr for
#: all parameters, constant, shared head, fixed PCC relation, one AU per batch). Curves are read
#: at a constant lr, so that a point does not depend on the planned length of the run.
PLAIN = {"au_lr_scale": 1.0, "lr_schedule": "constant", "head": "shared", "relation_mode": "fixed",
         "strategy": "one"}

#: The variants of the study, in display order (``au_lr_scale="C"``: the number of trained AUs).
VARIANTS: tuple[Variant, ...] = (
    Variant("resnet18", "ResNet-18", {"model": "resnet18"}),
    Variant("renet", "RE-Net (paper: fixed PCC, one AU/batch, shared head, one lr)", {"model": "renet"}),
    Variant("renet-all", "RE-Net, strategy all (every AU every batch; 1/4 of the steps)",
            {"model": "renet", "strategy": "all"}, step_cost=4.0),
    Variant("renet-lrC", "RE-Net, AU-specific lr x C", {"model": "renet", "au_lr_scale": "C"}),
    Variant("renet-perau", "RE-Net, per-AU head", {"model": "renet", "head": "per_au"}),
    Variant("renet-perau-lrC", "RE-Net, per-AU head, AU-specific lr x C",
            {"model": "renet", "head": "per_au", "au_lr_scale": "C"}),
    Variant("renet-none-lrC", "RE-Net, no relation (Eq. 3), AU-specific lr x C",
            {"model": "renet", "relation_mode": "none", "au_lr_scale": "C"}),
    Variant("renet-learnable-lrC", "RE-Net, learnable relation, AU-specific lr x C",
            {"model": "renet", "relation_mode": "learnable", "au_lr_scale": "C"}),
    Variant("resnet18-cosine", "ResNet-18, cosine lr", {"model": "resnet18", "lr_schedule": "cosine"}),
    Variant("renet-lrC-cosine", "RE-Net, AU-specific lr x C, cosine lr (the demo profile)",
            {"model": "renet", "au_lr_scale": "C", "lr_schedule": "cosine"}),
    Variant("renet-nowarm", "RE-Net, plain BN statistics (no warm start, no refresh)",
            {"model": "renet", "bn_warm_start": False, "bn_refresh_batches": 0}),
)


def variant_config(base, variant: Variant, steps: int, eval_every: int, keep: Sequence[str] = ()):
    """The config of one curve: ``base`` with :data:`PLAIN` (except the fields named in ``keep``,
    which the user set) and the variant's overrides, ``steps // step_cost`` training steps in
    evaluation intervals of ``eval_every`` steps, early stopping off."""
    over = {**{k: v for k, v in PLAIN.items() if k not in keep}, **variant.overrides}
    total = max(1, int(round(steps / variant.step_cost)))
    epochs = max(1, int(round(total / max(1, int(eval_every)))))
    every = max(1, int(round(total / epochs)))
    return base.replace(**over, epochs=epochs, steps_per_epoch=every, patience=epochs + 1,
                        method=f"dynamics-{variant.name}")


def curve_rows(variant: Variant, cfg, history: list[dict], aus: Sequence[int]) -> pd.DataFrame:
    """Tidy curve rows: one per (variant, evaluation point)."""
    records, wall = [], 0.0
    for h in history:
        wall += float(h.get("train_seconds", h.get("seconds", 0.0)))
        loss_au = np.asarray(h.get("loss_per_au") or [np.nan] * len(aus), dtype=float)
        val_au = np.asarray(h.get("val_per_au") or [np.nan] * len(aus), dtype=float)
        record = {"variant": variant.name, "label": variant.label, "step": h["epoch"] * cfg.steps_per_epoch,
                  "train_seconds": round(wall, 2), "loss_au": float(np.nanmean(loss_au)),
                  "val_f1": float(h["val"])}
        record.update({f"loss_AU{a}": float(v) for a, v in zip(aus, loss_au)})
        record.update({f"val_AU{a}": float(v) for a, v in zip(aus, val_au)})
        records.append(record)
    return pd.DataFrame.from_records(records)


def summary(curves: pd.DataFrame, tests: pd.DataFrame, aus: Sequence[int]) -> pd.DataFrame:
    """One row per variant: steps, wall time, first/last per-AU training loss, best and last
    validation F1, validation AUs at F1 0, and the test F1 of the validation-picked weights."""
    rows = []
    for name, c in curves.groupby("variant", sort=False):
        c = c.sort_values("step")
        best = c.loc[c["val_f1"].idxmax()]
        last = c.iloc[-1]
        val_cols = [f"val_AU{a}" for a in aus]
        row = {"variant": name, "label": c["label"].iloc[0], "steps": int(last["step"]),
               "train_min": round(last["train_seconds"] / 60, 1),
               "loss_first": round(c["loss_au"].iloc[0], 3), "loss_last": round(last["loss_au"], 3),
               "val_f1_best": round(best["val_f1"], 3), "best_step": int(best["step"]),
               "val_f1_last": round(last["val_f1"], 3),
               "val_aus_f1_0": int((last[val_cols].astype(float) <= 0).sum())}
        t = tests[tests["variant"] == name]
        if len(t):
            row["test_f1"] = round(float(t["test_f1"].iloc[0]), 3)
            row["test_aus_f1_0"] = int(t["test_aus_f1_0"].iloc[0])
            row["test_aus_above_all_pos"] = int(t["test_aus_above_all_pos"].iloc[0])
        rows.append(row)
    table = pd.DataFrame(rows)
    table["parity_step"] = [parity_step(curves, name) for name in table["variant"]]
    return table


#: RE-Net is "at parity" where its validation score comes within this much of ResNet-18's best
#: (2 F1 points; 0.02 ICC for intensity): the definition behind the profiles' ``parity_steps``.
PARITY_GAP = 0.02


def parity_step(curves: pd.DataFrame, variant: str, reference: str = "resnet18") -> float:
    """The first evaluated step at which ``variant``'s validation score is within
    :data:`PARITY_GAP` of ``reference``'s best over its whole curve; NaN when it never is, or
    when either curve is missing (validation only: test scores never choose a budget)."""
    ref = curves.loc[curves["variant"] == reference, "val_f1"]
    own = curves[curves["variant"] == variant].sort_values("step")
    if ref.empty or own.empty or variant == reference:
        return float("nan")
    reached = own.loc[own["val_f1"] >= ref.max() - PARITY_GAP, "step"]
    return float(reached.iloc[0]) if len(reached) else float("nan")


def study(profile: str = "demo", steps: int | None = None, eval_every: int | None = None,
          variants: Sequence[str] | None = None, dataset: str = "bp4d", fold: int = 1, root: str | None = None,
          store_dir=None, out_dir: str | Path = "results", fig_dir: str | Path = "figures",
          name: str = "training_dynamics", **changes) -> dict:
    """Run the curves and write ``<out_dir>/<name>.csv|md`` (summary), ``<name>_curves.csv`` and
    ``<fig_dir>/<name>.png``. Returns ``{"summary", "curves", "figure", "markdown", "table_path",
    "source", "config"}``.

    ``steps``, ``eval_every``, ``variants`` (names from :data:`VARIANTS`): None takes the
    profile's ``dynamics`` setting (:mod:`renet_core.engine.profiles`). ``changes`` override the profile for every curve (e.g.
    ``lr=1e-4``, ``pretrained="standin"``, ``device="cuda"``); None values are ignored. Finished
    runs are reused (their identity covers every override), so a rerun only trains what is missing.
    """
    budget = profile_setting(profile, "dynamics")
    if budget["variants"] == "all":
        budget["variants"] = tuple(v.name for v in VARIANTS)
    steps = int(steps or budget["steps"])
    eval_every = int(eval_every or budget["eval_every"])
    variants = list(variants) if variants is not None else list(budget["variants"])
    chosen = [v for v in VARIANTS if v.name in variants]
    unknown = sorted(set(variants or []) - {v.name for v in VARIANTS})
    if unknown:
        raise ValueError(f"unknown variants {unknown}; expected some of {[v.name for v in VARIANTS]}")
    base = config(profile, dataset, root=root, store_dir=store_dir, fold=fold, **changes)
    aus = base.resolved_aus()
    splits = load_splits(base)
    label_cols = label_columns(base)
    # the chance level: always-positive F1 per AU; ICC for intensity, where a constant predictor has 0
    all_pos = (always_positive_f1(splits.test[label_cols].to_numpy(dtype=float)) if base.task == "occurrence"
               else np.zeros(len(aus)))
    curves, tests = [], []
    for variant in chosen:
        cfg = variant_config(base, variant, steps, eval_every, keep=[k for k, v in changes.items() if v is not None])
        start = time.time()
        result = run(cfg, splits=splits)
        history = result.history or _stored_history(cfg)
        curves.append(curve_rows(variant, cfg, history, aus))
        f1 = test_set_score(cfg, result.config_hash)
        tests.append({"variant": variant.name, "test_f1": float(np.nanmean(f1)),
                      "test_aus_f1_0": int((f1 <= 0).sum()),
                      "test_aus_above_all_pos": int((f1 > all_pos).sum())})
        print(f"{variant.name}: {cfg.epochs * cfg.steps_per_epoch} steps, test F1 {np.nanmean(f1):.3f} "
              f"({time.time() - start:.0f} s{' , reused' if result.skipped else ''})")
    curves = pd.concat(curves, ignore_index=True)
    table = summary(curves, pd.DataFrame(tests), aus)
    out_dir, fig_dir = Path(out_dir), Path(fig_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    source = splits.source
    write_text_atomic(out_dir / f"{name}_curves.csv", curves.to_csv(index=False))
    write_text_atomic(out_dir / f"{name}.csv", table.to_csv(index=False))
    markdown = render_markdown(table, base, steps, eval_every, source, all_pos, aus, changes, name)
    write_text_atomic(out_dir / f"{name}.md", markdown)
    figure = plot_curves(curves, fig_dir / f"{name}.png", title=f"{source}, fold {fold}",
                         chance=float(np.mean(all_pos)))
    return {"summary": table, "curves": curves, "figure": figure, "markdown": markdown,
            "table_path": out_dir / f"{name}.md", "source": source_mark(profile, source), "config": base}


def test_set_score(cfg, key: str) -> np.ndarray:
    """Per-AU test F1 (ICC(3,1) for intensity) of a run, recomputed from its saved predictions
    (not from the results table, whose rows are keyed by method label)."""
    pred = ResultsStore(cfg.results_dir).load_predictions(key)
    return score_predictions(pred, cfg)["f1" if cfg.task == "occurrence" else "icc"]


def _stored_history(cfg) -> list[dict]:
    """The history of a finished run, from its run record (a reused run)."""
    store, key = ResultsStore(cfg.results_dir), cfg.config_hash()
    return store.done_summary(key).get("history", []) if store.is_done(key) else []


def render_markdown(table: pd.DataFrame, base, steps: int, eval_every: int, source: str,
                    all_pos: np.ndarray, aus: Sequence[int], changes: dict | None = None,
                    name: str = "training_dynamics") -> str:
    lines = [f"# Training dynamics: RE-Net against ResNet-18 ({source})", ""]
    if notice(base.profile):   # a preview says so (renet_core.study.preview)
        lines += [notice(base.profile), ""]
    lines += [f"Data: **{source}**, fold {base.fold}, {base.image_size} px, batch {base.batch_size}, "
             f"Adam lr {base.lr:g}, init {'from ' + str(base.pretrained) if base.pretrained else 'random (from scratch)'}, "
             f"BN refresh {base.bn_refresh_batches} batches, seed {base.seed}, profile {base.profile}. "
             f"{steps} training steps per curve (strategy all: fewer, see `steps`), validation every "
             f"{eval_every} steps on held-out training subjects; test F1 is that of the weights "
             f"picked by validation F1. Made by `renet_core.study.dynamics.study` (notebook 09); rerun: "
             f"`{rerun_command(base, steps, eval_every, table['variant'], changes, name)}`.", "",
             f"Always-positive test F1 per AU: " + ", ".join(f"AU{a} {v:.2f}" for a, v in zip(aus, all_pos))
             + f" (mean {np.mean(all_pos):.3f}).", "",
             "loss = mean over AUs of each AU's training BCE over the last evaluation interval "
             "(first / last interval).", ""]
    cols = list(table.columns)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def rerun_command(base, steps: int, eval_every: int, variants, changes: dict | None = None,
                  name: str = "training_dynamics") -> str:
    """The command line that remakes a table (finished runs in the store are reused): the task,
    the name and every override (``--set``) included, so a curve made at another setting
    (``image_size=32``) is remade at that setting."""
    sets = {k: v for k, v in (changes or {}).items() if v is not None and k not in ("pretrained", "device")}
    if base.pretrained:
        sets["pretrained"] = base.pretrained
    named = f" --name {name}" if name != "training_dynamics" else ""
    return (f"python -m renet_core dynamics --profile {base.profile} --dataset {base.dataset} --task {base.task} "
            f"--fold {base.fold} --steps {steps} --eval-every {eval_every} --variants {','.join(variants)}{named}"
            + "".join(f" --set {k}={v}" for k, v in sets.items()))


def plot_curves(curves: pd.DataFrame, path: Path, title: str = "", chance: float | None = None) -> Path:
    """Four panels: per-AU training loss and validation F1, against steps and wall time;
    ``chance`` (the always-positive mean F1 of the test fold) is drawn as a dotted line."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharey="row")
    for name, c in curves.groupby("variant", sort=False):
        c = c.sort_values("step")
        style = {"lw": 2.4, "color": "black"} if name == "resnet18" else {"lw": 1.4}
        for col, x in ((0, "step"), (1, "train_seconds")):
            axes[0, col].plot(c[x], c["loss_au"], marker=".", label=name, **style)
            axes[1, col].plot(c[x], c["val_f1"], marker=".", label=name, **style)
    if chance is not None:
        for ax in axes[1]:
            ax.axhline(chance, ls=":", color="grey", lw=1.2, label="always positive (test)")
    axes[0, 0].set_ylabel("training loss per AU (BCE)")
    axes[1, 0].set_ylabel("validation mean F1")
    axes[1, 0].set_xlabel("training steps")
    axes[1, 1].set_xlabel("training wall time (s)")
    axes[0, 1].legend(fontsize=8, loc="upper right")
    axes[1, 1].legend(fontsize=8, loc="lower right")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Training dynamics: RE-Net variants against ResNet-18 -- {title}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)
