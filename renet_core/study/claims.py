"""The paper's qualitative claims, each checked against this run's result rows (``results/README.md``).

Every claim is a difference between two table rows of ``renet_core.study`` (found by run
identity), measured as the paired difference of the rows' per-fold averages over the AUs the
claim is about, in the paper's units (F1 in percent, ICC, MAE). Its spread is the standard
deviation of that difference over folds when there are two or more folds, else the standard error
over the AUs' differences (one fold; said so); a one-fold, one-AU F1 claim (Table 6's unseen AUs)
takes the bootstrap standard deviation of its difference over resampled test frames, from the
runs' saved predictions (:func:`bootstrap_f1_spread`). The verdict:

* **holds**: the difference minus its spread is above zero (in the claimed direction),
* **does not hold**: the difference plus its spread is below zero (the opposite direction),
* **inconclusive**: the spread covers zero,

and, for the one claim of *no* difference (section 3.4's two training strategies), holds when
the whole interval lies within +-2 F1 points, does not hold when it lies outside, else
inconclusive. Claims on SynthAU data are labelled synthetic: they test this code on a synthetic
twin, never the paper's numbers. Nothing here is written by hand: :func:`scoreboard` recomputes
the table from the rows every time ``run_all`` writes the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from renet_core.base.metrics import f1_per_au
from renet_core.data.labels import RARE_AUS
from renet_core.study.report import METRICS, markdown_grid
from renet_core.study.tables import CHANCE_ENTRIES

#: Section 3.4's "no big difference": the equivalence margin of the strategies claim (F1 points).
EQUIVALENCE_MARGIN = 2.0
#: Resamples of the test frames for a one-fold, one-AU claim's spread (:func:`bootstrap_f1_spread`).
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Claim:
    """One claim: ``better`` - ``worse`` on table ``table`` (metric, AUs; ``lower`` when smaller
    is better, e.g. MAE; ``equivalent`` for a claim of no difference)."""

    text: str
    table: str
    better: str
    worse: str
    metric: str = "f1"
    aus: tuple[int, ...] | None = None
    lower: bool = False
    equivalent: bool = False
    where: str = ""


CLAIMS: tuple[Claim, ...] = (
    Claim("RE-Net beats ResNet-18 on BP4D (Table 1)", "table1", "renet", "resnet18"),
    Claim("RE-Net beats ResNet-18 on DISFA (Table 2)", "table2", "renet", "resnet18"),
    Claim("RE-Net beats ResNet-18 on BP4D+ (Table 3)", "table3", "renet", "resnet18"),
    Claim("RE-Net beats ResNet-18 on intensity, BP4D (Table 4, ICC)", "table4", "renet", "resnet18", "icc"),
    Claim("RE-Net beats ResNet-18 on intensity, BP4D (Table 4, MAE)", "table4", "renet", "resnet18", "mae",
          lower=True),
    Claim("RE-Net beats ResNet-18 on intensity, DISFA (Table 5, ICC)", "table5", "renet", "resnet18", "icc"),
    Claim("RE-Net beats ResNet-18 on intensity, DISFA (Table 5, MAE)", "table5", "renet", "resnet18", "mae",
          lower=True),
    Claim("An unseen AU23 is recognised above chance (Table 6)", "table6", "renet-unseenAU23", "always-positive",
          aus=(23,)),
    Claim("An unseen AU24 is recognised above chance (Table 6)", "table6", "renet-unseenAU24", "always-positive",
          aus=(24,)),
    Claim("The fixed PCC relation beats the learnable one (Table 7)", "table7", "renet", "renet-learnable"),
    Claim("The learnable relation beats no relation (Table 7)", "table7", "renet-learnable", "renet-none"),
    Claim("RE-Net beats ResNet-18 (Table 7)", "table7", "renet", "resnet18"),
    Claim("Duplication helps ResNet-18 on the rare AUs (Table 8)", "table8", "resnet18+DA", "resnet18",
          aus=RARE_AUS),
    Claim("Duplication helps RE-Net on the rare AUs (Table 8)", "table8", "renet+DA", "renet", aus=RARE_AUS),
    Claim("The two training strategies perform alike (section 3.4)", "strategies", "renet", "renet-all",
          equivalent=True),
)


def paired_difference(rows: pd.DataFrame, claim: Claim) -> dict | None:
    """The claim's difference (better - worse, sign flipped when lower is better), its spread and
    how the spread was measured; None when either side was not run."""
    sel = rows[(rows["metric"] == claim.metric) & rows["entry"].isin([claim.better, claim.worse])]
    if claim.aus:
        sel = sel[sel["au"].astype(int).isin(claim.aus)]
    if sel.empty:
        return None
    scale = METRICS[claim.metric][1] * (-1.0 if claim.lower else 1.0)
    per = sel.pivot_table(index=["fold", "au"], columns="entry", values="value", aggfunc="mean")
    if claim.better not in per or claim.worse not in per:
        return None
    diff = ((per[claim.better] - per[claim.worse]) * scale).dropna()
    if diff.empty:
        return None
    by_fold = diff.groupby(level="fold").mean()
    if len(by_fold) >= 2:
        spread, how = float(by_fold.std(ddof=1)), f"sd over {len(by_fold)} folds"
    else:
        n = len(diff)
        spread = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        how = f"1 fold: standard error over {n} AUs" if n > 1 else "1 fold, 1 AU: no spread"
    return {"difference": float(by_fold.mean()), "spread": spread, "spread_from": how, "folds": len(by_fold)}


def verdict(diff: float, spread: float, equivalent: bool = False) -> str:
    """"holds" / "does not hold" / "inconclusive" (module docstring)."""
    if np.isnan(spread):
        return "inconclusive"
    if equivalent:
        if abs(diff) + spread <= EQUIVALENCE_MARGIN:
            return "holds"
        if abs(diff) - spread > EQUIVALENCE_MARGIN:
            return "does not hold"
        return "inconclusive"
    if diff - spread > 0:
        return "holds"
    if diff + spread < 0:
        return "does not hold"
    return "inconclusive"


def bootstrap_f1_spread(y_true, better, worse, threshold: float = 0.5, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = 0) -> tuple[float, int]:
    """Spread of a one-AU F1 difference (in F1 points) when there is a single fold: the standard
    deviation over ``resamples`` bootstrap draws of the test frames of F1(``better``) -
    F1(``worse``), both scored on the same drawn frames. ``y_true`` [N] holds 1/0/NaN (NaN
    dropped); ``better`` and ``worse`` [N] are predicted probabilities, or the chance rows'
    names: "always-positive" (every frame positive) and "label-prior" (its expected F1, the
    drawn positive rate). Returns (spread, frames used)."""
    y = np.asarray(y_true, dtype=float)
    known = ~np.isnan(y)
    truth = y[known] > 0.5
    draws = np.random.default_rng(seed).integers(0, len(truth), size=(resamples, len(truth)))
    t = truth[draws].astype(float)

    def score(side):
        if isinstance(side, str):
            if side == "always-positive":
                return f1_per_au(t.T, np.ones(t.T.shape))
            if side == "label-prior":
                return t.mean(-1)
            raise ValueError(f"unknown chance row {side!r}; expected 'always-positive' or 'label-prior'")
        prob = np.asarray(side, dtype=float)
        if prob.shape != y.shape:
            raise ValueError(f"predictions of shape {prob.shape} do not match the labels' {y.shape}")
        return f1_per_au(t.T, prob[known][draws].T, threshold=threshold)

    diff = (score(better) - score(worse)) * 100.0
    return float(diff.std(ddof=1)), int(len(truth))


def _bootstrap(claim: Claim, predictions) -> dict | None:
    """A one-AU F1 claim's bootstrap spread from ``predictions(table, entry)`` (the fold-1 saved
    predictions of a table row, or None); None when they are not there."""
    better = predictions(claim.table, claim.better)
    if better is None or claim.aus[0] not in [int(a) for a in better["aus"]]:
        return None
    j = [int(a) for a in better["aus"]].index(claim.aus[0])
    y = better["y_true"][:, j]
    worse = claim.worse
    if worse not in CHANCE_ENTRIES:
        other = predictions(claim.table, worse)
        if other is None or not np.array_equal(other["y_true"][:, j], y, equal_nan=True):
            return None      # not the same test frames
        worse = other["scores"][:, j]
    spread, frames = bootstrap_f1_spread(y, better["scores"][:, j], worse)
    return {"spread": spread,
            "spread_from": f"1 fold, 1 AU: bootstrap sd over {frames} test frames ({BOOTSTRAP_RESAMPLES} resamples)"}


def scoreboard(rows_by_table: dict[str, pd.DataFrame], synthetic: dict[str, bool] | None = None,
               extra: Sequence[dict] = (), predictions=None) -> pd.DataFrame:
    """One row per claim: the measured difference, its spread, the verdict, and whether the data
    were synthetic. ``rows_by_table`` maps a table name to its rows with ``entry`` (as
    ``renet_core.study`` selects them); ``extra`` adds claims measured elsewhere (Fig. 3).
    ``predictions(table, entry)`` gives a row's saved fold-1 test predictions (or None): with it a
    one-fold, one-AU F1 claim gets a bootstrap spread (:func:`bootstrap_f1_spread`)."""
    synthetic = synthetic or {}
    records = []
    for claim in CLAIMS:
        rows = rows_by_table.get(claim.table)
        measured = paired_difference(rows, claim) if rows is not None and len(rows) else None
        if (measured is not None and predictions is not None and measured["folds"] == 1 and claim.metric == "f1"
                and claim.aus and len(claim.aus) == 1):
            measured.update(_bootstrap(claim, predictions) or {})
        record = {"claim": claim.text, "table": claim.table, "metric": claim.metric.upper()}
        if measured is None:
            record.update(difference=np.nan, spread=np.nan, spread_from="", folds=0, verdict="not run")
        else:
            record.update(measured, verdict=verdict(measured["difference"], measured["spread"], claim.equivalent))
        record["data"] = "" if measured is None else ("synthetic" if synthetic.get(claim.table) else "real")
        records.append(record)
    records.extend(extra)
    return pd.DataFrame.from_records(records)


def silhouette_claim(inputs: dict, show_aus: Sequence[int] | None = None) -> dict:
    """Fig. 3's claim as a number: the silhouette score of present vs absent frames in each AU's
    RE-Net feature minus that in ResNet-18's feature, averaged over the AUs (spread: standard error
    over AUs). ``inputs`` is :func:`renet_core.study.reproduce.tsne_inputs`' result."""
    from sklearn.metrics import silhouette_score  # lazy: heavy, Fig. 3's claim only

    aus = list(show_aus or inputs["aus"])
    diffs = []
    for au in aus:
        j = inputs["aus"].index(au)
        labels = inputs["labels"][:, j]
        keep = ~np.isnan(labels)
        y = labels[keep] > 0
        if y.all() or not y.any():
            continue
        ours = silhouette_score(inputs["renet"][keep, j, :], y)
        base = silhouette_score(inputs["resnet18"][keep], y)
        diffs.append(ours - base)
    diffs = np.asarray(diffs)
    spread = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")
    diff = float(diffs.mean()) if len(diffs) else float("nan")
    return {"claim": "RE-Net's per-AU features separate present from absent frames better than ResNet-18's "
                     "(Fig. 3, silhouette)", "table": "fig3", "metric": "silhouette",
            "difference": diff, "spread": spread, "spread_from": f"1 fold: standard error over {len(diffs)} AUs",
            "folds": 1, "verdict": verdict(diff, spread) if len(diffs) else "not run"}


def render(board: pd.DataFrame) -> str:
    """The scoreboard as markdown (results/README.md)."""
    budgets = "renet_steps" in board
    body = []
    for r in board.to_dict("records"):
        if r["verdict"] == "not run":
            measured = ""
        else:
            digits = 1 if r["metric"] == "F1" else 3
            measured = f"{r['difference']:+.{digits}f} ± {r['spread']:.{digits}f}" if r["spread"] == r["spread"] \
                else f"{r['difference']:+.{digits}f}"
        verdict_cell = f"**{r['verdict']}**"
        if budgets and r.get("under_trained") and r["verdict"] != "not run":
            verdict_cell += " (RE-Net under-trained)"
        line = [r["claim"], r["metric"], measured, r["spread_from"], verdict_cell, r["data"]]
        if budgets:
            steps = r.get("renet_steps")
            line.insert(4, "" if pd.isna(steps) else f"{int(steps)}")
        body.append(line)
    header = ["claim", "metric", "difference", "spread from", "verdict", "data"]
    budget_text = ""
    if budgets:
        header.insert(4, "RE-Net steps")
        parity = board.attrs.get("parity_steps")
        budget_text = (" RE-Net steps: the training of the claim's RE-Net runs in batches of one AU (empty: "
                       "not capped, early stopping).")
        if parity:
            budget_text += (f" RE-Net needs about {parity} such steps to come near ResNet-18 "
                            "(notebook 09's curves, the profile's `parity_steps`); a claim whose RE-Net runs got fewer "
                            "is marked *RE-Net under-trained*: its verdict measures the budget, not the method.")
    lines = ["## Claims scoreboard", "",
             "Computed from this run's result rows (`renet_core.study.claims`), not written by hand. Difference: "
             "the claimed-better row minus the other, in the paper's units (F1 points; ICC; MAE with the sign "
             "flipped so that positive favours the claim), per fold over the claim's AUs, then averaged over "
             "folds; ± its spread (sd over folds; with one fold the standard error over AUs; with one fold and "
             "one AU the bootstrap sd over the test frames). A claim holds "
             "when the interval is above zero, does not hold when below, and is inconclusive when it covers "
             f"zero; section 3.4's 'no big difference' holds when the interval lies within ±{EQUIVALENCE_MARGIN:g} "
             "F1 points." + budget_text + " **Synthetic verdicts test this code on SynthAU, not the paper's "
             "claims on real faces.**",
             "", markdown_grid(header, body), ""]
    return "\n".join(lines)
