"""The paper's qualitative claims, each checked against this run's result rows (``results/README.md``).

Every claim is a difference between two table rows of :mod:`renet_core.study.tables` (found by
run identity), measured per fold as the paired difference of the rows' averages over the AUs the
claim is about, in the paper's units (F1 in percent, ICC, MAE with the sign flipped so that
positive favours the claim). Each fold trains both rows afresh on its own subjects, so the
per-fold differences vary by retraining and by test sampling together; the verdict follows their
**95% paired t-interval over folds** (:mod:`renet_core.study.intervals`):

* **holds**: the interval lies above zero (in the claimed direction),
* **does not hold**: the interval lies below zero,
* **inconclusive**: the interval covers zero (one fold: always, since one run says nothing about
  retraining),

and, for the one claim of *no* difference (section 3.4's two training strategies), holds when the
whole interval lies within +-:data:`EQUIVALENCE_MARGIN` F1 points, does not hold when it lies
wholly outside, else inconclusive. Beside it, where the runs' saved predictions allow, the
standard error that test sampling alone would give (a bootstrap over test subjects), so a reader
sees which variation dominates. On real data a column says whether the paper's own printed
difference lies inside the interval; on SynthAU it stays empty (synthetic magnitudes are not the
paper's). Nothing here is written by hand: :func:`scoreboard` recomputes the table from the rows
every time ``run_all`` writes the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from renet_core.base.metrics import always_positive_f1, f1_per_au, icc3_1_formula
from renet_core.data.labels import RARE_AUS
from renet_core.study import intervals
from renet_core.study.convergence import rule_text
from renet_core.study.paper import paper_values
from renet_core.study.report import METRICS, markdown_grid
from renet_core.study.tables import CHANCE_ENTRIES, TABLES

#: Section 3.4's "no big difference": the equivalence margin of the strategies claim, in F1
#: points. The paper counts ResNet18's +1.3 from duplication (Table 8) as a gain and RE-Net's
#: +0.1 as none, and its smallest claimed win over ResNet18 is +4.0 (BP4D+, Table 3); a
#: difference within 2 points is below everything it calls a gain but the 1.3.
EQUIVALENCE_MARGIN = 2.0
#: Subject-bootstrap resamples for the test-sampling standard error.
BOOTSTRAP_RESAMPLES = 1000
#: Fig. 3's claim, measured from Table 1's runs' features (:func:`silhouette_claim`).
SILHOUETTE_CLAIM = ("RE-Net's per-AU features separate present from absent frames better than ResNet-18's "
                    "(Fig. 3, silhouette)")


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



def per_fold_differences(rows: pd.DataFrame, claim: Claim) -> pd.Series | None:
    """The claim's difference per fold (better - worse, mean over the claim's AUs, paper units,
    sign flipped when lower is better); None when either side was not run."""
    sel = rows[(rows["metric"] == claim.metric) & rows["entry"].isin([claim.better, claim.worse])]
    if claim.aus:
        sel = sel[sel["au"].astype(int).isin(claim.aus)]
    if sel.empty:
        return None
    per = sel.pivot_table(index=["fold", "au"], columns="entry", values="value", aggfunc="mean")
    if claim.better not in per or claim.worse not in per:
        return None
    diff = ((per[claim.better] - per[claim.worse]) * _scale(claim)).dropna()
    return None if diff.empty else diff.groupby(level="fold").mean()


def _scale(claim: Claim) -> float:
    return METRICS[claim.metric][1] * (-1.0 if claim.lower else 1.0)


def measure(by_fold: pd.Series, equivalent: bool = False) -> dict:
    """Difference, 95% interval, its method, the sd over folds and the verdict of per-fold
    differences ``by_fold`` (:func:`renet_core.study.intervals.paired_t_interval`)."""
    mean, low, high = intervals.paired_t_interval(by_fold.to_numpy())
    n = len(by_fold)
    return {"difference": mean, "ci_low": low, "ci_high": high, "ci_method": intervals.T_METHOD,
            "sd_over_folds": float(by_fold.std(ddof=1)) if n > 1 else float("nan"), "folds": n,
            "verdict": intervals.verdict(low, high, EQUIVALENCE_MARGIN if equivalent else None)}


def paper_difference(claim: Claim) -> float:
    """The paper's own printed difference for the claim (its Avg rows, claim units), or NaN where
    the paper prints no such pair (chance rows, per-AU claims, rows the text source lost)."""
    if claim.aus or claim.table not in TABLES:
        return float("nan")
    spec = TABLES[claim.table]
    labels = [r.paper for r in spec.rows if r.key in (claim.better, claim.worse)]
    keys = [r.key for r in spec.rows if r.key in (claim.better, claim.worse)]
    if len(labels) != 2 or None in labels:
        return float("nan")
    values = {}
    for key, label in zip(keys, labels):
        sel = paper_values(spec.paper_table)
        sel = sel[(sel["method"] == label) & (sel["metric"] == METRICS[claim.metric][0]) & (sel["au"] == "Avg")]
        values[key] = float(sel["value"].iloc[0]) if len(sel) else float("nan")
    sign = -1.0 if claim.lower else 1.0
    return sign * (values[claim.better] - values[claim.worse])


def test_sampling_se(claim: Claim, predictions: Callable, resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """The standard error of the claim's mean difference that test sampling alone gives: a
    bootstrap over the test subjects of each fold, folds combined
    (:func:`renet_core.study.intervals.subject_bootstrap`), from the runs' saved predictions
    (``predictions(table, entry) -> {fold: arrays}``); NaN where they are missing."""
    better = predictions(claim.table, claim.better) or {}
    worse = {} if claim.worse in CHANCE_ENTRIES else (predictions(claim.table, claim.worse) or {})
    folds = []
    for fold, ours in sorted(better.items()):
        other = claim.worse if claim.worse in CHANCE_ENTRIES else worse.get(fold)
        if other is None or "subject" not in ours:
            return float("nan")
        folds.append((ours["subject"], _fold_score(claim, ours, other)))
    if not folds:
        return float("nan")
    return intervals.subject_bootstrap(folds, resamples=resamples)[0]


def _fold_score(claim: Claim, ours: dict, other) -> Callable[[np.ndarray], float]:
    """``score(frame indices) -> the claim's difference on those test frames`` for one fold."""
    aus = [int(a) for a in ours["aus"]]
    cols = [aus.index(a) for a in (claim.aus or aus) if a in aus]
    truth = np.asarray(ours["y_true"], dtype=float)[:, cols]

    def metric(pred: dict | str, idx: np.ndarray) -> float:
        t = truth[idx]
        if claim.metric == "f1":
            if pred == "always-positive":
                return float(np.nanmean(always_positive_f1(t)))
            if pred == "label-prior":
                return float(np.nanmean([np.nanmean(c[c == c] > 0) for c in t.T]))
            return float(np.nanmean(f1_per_au(t, pred["scores"][idx][:, cols])))
        p = np.asarray(pred["y_pred"], dtype=float)[idx][:, cols]
        if claim.metric == "mae":
            return float(np.nanmean(np.abs(t - p)))
        known = [~np.isnan(t[:, c]) for c in range(t.shape[1])]
        return float(np.nanmean([icc3_1_formula(np.stack([t[k, c], p[k, c]], 1)) for c, k in enumerate(known)]))

    return lambda idx: (metric(ours, idx) - metric(other, idx)) * _scale(claim)


def scoreboard(rows_by_table: dict[str, pd.DataFrame], synthetic: dict[str, bool] | None = None,
               extra: Sequence[dict] = (), predictions: Callable | None = None) -> pd.DataFrame:
    """One row per claim: the measured difference, its 95% interval and method, the sd over
    folds, the test-sampling standard error (with ``predictions(table, entry) -> {fold: arrays}``),
    the verdict, the paper's printed difference and, on real data, whether it lies inside the
    interval. ``rows_by_table`` maps a table name to its rows with ``entry`` (as
    :func:`renet_core.study.configs.select_rows` selects them); ``extra`` adds claims measured
    elsewhere (Fig. 3)."""
    synthetic = synthetic or {}
    records = []
    for claim in CLAIMS:
        rows = rows_by_table.get(claim.table)
        by_fold = per_fold_differences(rows, claim) if rows is not None and len(rows) else None
        record = {"claim": claim.text, "table": claim.table, "metric": claim.metric.upper()}
        if by_fold is None:
            record.update(difference=np.nan, ci_low=np.nan, ci_high=np.nan, ci_method="", sd_over_folds=np.nan,
                          folds=0, verdict="not run")
        else:
            record.update(measure(by_fold, claim.equivalent))
        record["se_test_sampling"] = (test_sampling_se(claim, predictions) if by_fold is not None and predictions
                                      else np.nan)
        record["data"] = "" if by_fold is None else ("synthetic" if synthetic.get(claim.table) else "real")
        record["paper_difference"] = paper_difference(claim)
        records.append(record)
    records.extend(extra)
    board = pd.DataFrame.from_records(records)
    inside = (board["ci_low"] <= board["paper_difference"]) & (board["paper_difference"] <= board["ci_high"])
    board["paper_inside"] = [bool(v) if d == "real" and p == p else None
                             for v, d, p in zip(inside, board["data"], board["paper_difference"])]
    return board


def silhouette_difference(inputs: dict, show_aus: Sequence[int] | None = None) -> float:
    """Fig. 3's claim on one fold: the silhouette score of present vs absent frames in each AU's
    RE-Net feature minus that in ResNet-18's feature, averaged over the AUs. ``inputs`` is
    :func:`renet_core.study.figures.feature_inputs`' result."""
    from sklearn.metrics import silhouette_score  # lazy: heavy, Fig. 3's claim only

    diffs = []
    for au in list(show_aus or inputs["aus"]):
        j = inputs["aus"].index(au)
        labels = inputs["labels"][:, j]
        keep = ~np.isnan(labels)
        y = labels[keep] > 0
        if y.all() or not y.any():
            continue
        diffs.append(silhouette_score(inputs["renet"][keep, j, :], y) - silhouette_score(inputs["resnet18"][keep], y))
    return float(np.mean(diffs)) if diffs else float("nan")


def silhouette_claim(per_fold: dict[int, dict], show_aus: Sequence[int] | None = None) -> dict:
    """Fig. 3's claim as a number over folds: :func:`silhouette_difference` per fold (``per_fold``:
    ``{fold: feature inputs}``), decided by the same 95% interval."""
    by_fold = pd.Series({fold: silhouette_difference(inputs, show_aus) for fold, inputs in per_fold.items()}).dropna()
    record = {"claim": SILHOUETTE_CLAIM, "table": "fig3", "metric": "silhouette", "se_test_sampling": np.nan,
              "paper_difference": np.nan}
    if by_fold.empty:
        return dict(record, difference=np.nan, ci_low=np.nan, ci_high=np.nan, ci_method="", sd_over_folds=np.nan,
                    folds=0, verdict="not run")
    return dict(record, **measure(by_fold))


def _fmt(value, digits: int, signed: bool = False) -> str:
    if value is None or value != value:
        return ""
    if np.isinf(value):
        return "-inf" if value < 0 else "+inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def render(board: pd.DataFrame) -> str:
    """The scoreboard as markdown (results/README.md): per claim the difference, its 95% interval,
    the folds, the test-sampling standard error, and where the study adds them (``converged``,
    :mod:`renet_core.study.board`) the validation gap (information only) and whether the claim is
    converged (issue 33's rule, stated once in the header), then the verdict, marked *not
    converged* where it is not (the mark never changes the verdict), and the data. A board whose
    ``attrs["notice"]`` is set (a preview's: :mod:`renet_core.study.board`) says so above the table."""
    marked = "converged" in board
    real = (board["data"] == "real").any()
    body = []
    for r in board.to_dict("records"):
        digits = 1 if r["metric"] == "F1" else 3
        run = r["verdict"] != "not run"
        line = [r["claim"], r["metric"], _fmt(r["difference"], digits, True) if run else "",
                f"[{_fmt(r['ci_low'], digits, True)}, {_fmt(r['ci_high'], digits, True)}]" if run else "",
                str(r["folds"]) if run else "", _fmt(r.get("se_test_sampling"), digits) if run else ""]
        converged = bool(r.get("converged")) and str(r.get("converged")).lower() not in ("false", "0", "nan")
        if marked:
            gap = r.get("val_gap")
            # the gap is in the runs' early-stopping score: ICC for intensity, else F1 (Fig. 3's
            # silhouette claim reads Table 1's detection runs), shown in F1 points
            intensity = r["metric"] in ("ICC", "MAE")
            line.append("" if gap is None or pd.isna(gap)
                        else _fmt(gap * (1 if intensity else 100), 3 if intensity else 1, True))
            why = r.get("convergence")
            line.append("" if not run else "yes" if converged else
                        "no" + (f": {why}" if isinstance(why, str) and why and why != "yes" else ""))
        verdict_cell = f"**{r['verdict']}**"
        if marked and run and not converged:
            verdict_cell += " (not converged)"
        line += [verdict_cell, r["data"]]
        if real:
            inside = r.get("paper_inside")
            line += [_fmt(r.get("paper_difference"), digits, True),
                     "" if inside is None else ("yes" if inside else "no")]
        body.append(line)
    header = ["claim", "metric", "difference", "95% interval", "folds", "test-sampling se"]
    if marked:
        header += ["validation gap (information)", "converged"]
    header += ["verdict", "data"] + (["paper's difference", "paper inside"] if real else [])
    lines = ["## Claims scoreboard", "",
             "Computed from the result rows (`renet_core.study.claims`), not written by hand. **Difference**: the "
             "claimed-better row minus the other, in the paper's units (F1 points; ICC; MAE with the sign flipped "
             "so that positive favours the claim), per fold over the claim's AUs, then averaged over folds. "
             f"**95% interval**: {intervals.T_METHOD}, i.e. mean ± t(0.975, folds - 1) · sd / √folds over the "
             "per-fold differences; each fold retrains both models on other subjects and tests them on other "
             "subjects, so the interval covers retraining and test sampling together "
             "(`renet_core.study.intervals`; why: docs/reproduction-notes.md). A claim **holds** when the interval "
             "lies above zero, **does not hold** when below, and is **inconclusive** when it covers zero; section "
             f"3.4's 'no big difference' holds when the whole interval lies within ±{EQUIVALENCE_MARGIN:g} F1 points. "
             "**Test-sampling se**: the standard error of the difference that resampling the test subjects alone "
             "gives (bootstrap within folds): when it is close to sd/√folds, test sampling dominates; when much "
             "smaller, retraining does."]
    if marked:
        lines[-1] += (" " + rule_text() + " **Validation gap** (information only; it decides no mark): RE-Net's "
                      "best validation score minus ResNet-18's on the runs of the claim's dataset and task "
                      "(Tables 1-5; F1 points or ICC; mean over folds; validation data only).")
    if real:
        lines[-1] += (" **Paper inside**: whether the paper's own printed difference lies inside the interval "
                      "(consistent with the paper's effect).")
    lines[-1] += " **Synthetic verdicts test this code on SynthAU, not the paper's claims on real faces.**"
    if board.attrs.get("notice"):   # a preview's line (renet_core.study.preview.notice), above the table
        lines += ["", str(board.attrs["notice"])]
    lines += ["", markdown_grid(header, body), ""]
    return "\n".join(lines)
