"""The premise experiment's analysis (issue 24, notebook 11): what is compared, the intervals,
``results/premise.md`` and the figures, all computed from the run rows that
:mod:`renet_core.study.premise` collects (one row per setting, model and fold; F1 in percent).

Every interval goes through :func:`paired_interval`, the claims scoreboard's paired t-interval
over folds, so a premise verdict and a scoreboard verdict read alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from renet_core.study import intervals
from renet_core.study.board import PARITY_TOLERANCE
from renet_core.study.figures import pyplot
from renet_core.study.report import markdown_grid
from renet_core.study.tables import TABLES
from renet_core.synth import SETTINGS

#: The positive control's coupling: its labels are exactly those of the coupling-2 setting, so the
#: two differ only in the faint AUs' pixels.
CONTROL_COUPLING = 2.0
#: The compared models: Table 7's rows, by key.
MODEL_ROWS = {row.key: row for row in TABLES["table7"].rows}
#: ``(model, minus model, label)``: the differences drawn and tabulated (when both were run).
COMPARISONS = (("renet", "renet-none", "RE-Net (fixed PCC) minus Eq. 3 alone"),
               ("renet", "resnet18", "RE-Net (fixed PCC) minus ResNet-18"),
               ("renet-learnable", "renet-none", "RE-Net (learnable) minus Eq. 3 alone"))
#: The control's faint AUs (SynthAU's ``control`` setting).
FAINT_AUS = tuple(SETTINGS["control"]["faint_aus"])


def paired_interval(differences: Sequence[float]) -> tuple[float, float, float, str]:
    """``(mean, low, high, method)`` of per-fold paired differences: the claims scoreboard's 95%
    interval (:func:`renet_core.study.intervals.paired_t_interval`); every interval of this module
    (table, figure, trend) goes through here. One fold: the mean and no interval."""
    d = [x for x in differences if np.isfinite(x)]
    if not d:
        return float("nan"), float("nan"), float("nan"), "not run"
    mean, low, high = intervals.paired_t_interval(d)
    if len(d) < 2:
        return mean, float("nan"), float("nan"), "1 fold: no interval"
    return mean, low, high, f"{intervals.T_METHOD}, {len(d)} folds"


def validation_gaps(runs: pd.DataFrame) -> pd.DataFrame:
    """Is it the budget? Per setting and comparison, the paired difference of the runs' best
    validation F1 (what early stopping picked the epoch on; validation only, never test), mean
    over folds, and whether it is within the scoreboard's parity tolerance (``board.PARITY_TOLERANCE``)
    where the second model is ResNet-18. A gain that is absent on test but present on validation
    is not a budget effect; a RE-Net that trails ResNet-18 on validation too was not brought to
    parity by the budget (docs/reproduction-notes.md, "Under-trained")."""
    records = []
    if "best_val_f1" not in runs:
        return pd.DataFrame.from_records(records)
    for setting in dict.fromkeys(runs["setting"]):
        part = runs[runs["setting"] == setting]
        for better, other, label in COMPARISONS:
            a = part[part["model"] == better].set_index("fold")["best_val_f1"]
            b = part[part["model"] == other].set_index("fold")["best_val_f1"]
            d = (a - b).dropna()
            if not len(d):
                continue
            gap = float(d.mean())
            records.append({"setting": setting, "comparison": label, "model": better, "minus": other,
                            "val_gap": gap, "folds": len(d),
                            "parity": ("" if other != "resnet18"
                                       else "yes" if gap >= -100.0 * PARITY_TOLERANCE else "no: under-trained")})
    return pd.DataFrame.from_records(records)


def control_check(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Does the positive control bite? Per model, per fold the faint AUs' mean F1 in the control
    minus the same AUs' in the coupling setting whose labels the control shares (coupling
    :data:`CONTROL_COUPLING`: same labels, same test subjects, only the faint AUs' pixels differ),
    then the mean and its interval (:func:`paired_interval`). The control can show the relation's
    advantage only if making the AUs faint costs the models without it (interval below zero):
    ``bites`` says "yes" then, "no" when the interval covers or lies above zero."""
    records = []
    kinds = labels.set_index("setting")
    control = [s for s in kinds.index if kinds.loc[s, "synth_setting"] == "control"]
    visible = [s for s in kinds.index if kinds.loc[s, "synth_setting"] == "default"
               and float(kinds.loc[s, "coupling"]) == CONTROL_COUPLING]
    cols = [f"f1_AU{a}" for a in FAINT_AUS if f"f1_AU{a}" in runs]
    if not (control and visible and cols):
        return pd.DataFrame.from_records(records)
    for model in dict.fromkeys(runs["model"]):
        per = {s: runs[(runs["setting"] == s) & (runs["model"] == model)].set_index("fold")[cols].mean(axis=1)
               for s in (control[0], visible[0])}
        d = (per[control[0]] - per[visible[0]]).dropna()
        if not len(d):
            continue
        mean, low, high, _ = paired_interval(d.to_numpy())
        records.append({"model": model, "faint_f1": float(per[control[0]].mean()),
                        "visible_f1": float(per[visible[0]].mean()), "difference": mean, "low": low, "high": high,
                        "folds": len(d), "bites": "yes" if np.isfinite(high) and high < 0 else "no"})
    return pd.DataFrame.from_records(records)


def curves_figure(curves: pd.DataFrame, title: str = ""):
    """One panel per setting: each model's validation F1 against training steps, mean over folds
    (thick) and each fold (thin)."""
    plt = pyplot()
    names = list(dict.fromkeys(curves["setting"])) or ["(no runs)"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False, sharey=True)
    colours = {"resnet18": "tab:grey", "renet-none": "tab:orange", "renet": "tab:blue", "renet-learnable": "tab:green"}
    for ax, name in zip(axes[0], names):
        part = curves[curves["setting"] == name]
        for model in dict.fromkeys(part["model"]):
            mine = part[part["model"] == model]
            colour = colours.get(model, None)
            for _, fold in mine.groupby("fold"):
                ax.plot(fold["step"], fold["val_f1"], color=colour, alpha=0.25, linewidth=0.8)
            mean = mine.groupby("step")["val_f1"].mean()
            ax.plot(mean.index, mean.to_numpy(), "o-", color=colour, label=MODEL_ROWS[model].label
                    if model in MODEL_ROWS else model, markersize=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation F1 (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _fold_difference(runs: pd.DataFrame, setting: str, better: str, other: str, aus) -> pd.Series:
    cols = [f"f1_AU{a}" for a in aus]
    part = runs[runs["setting"] == setting]
    a = part[part["model"] == better].set_index("fold")[cols].mean(axis=1)
    b = part[part["model"] == other].set_index("fold")[cols].mean(axis=1)
    return (a - b).dropna()


def differences(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per setting, comparison and AU set (all 12; the control's faint AUs): the paired
    difference over folds and its interval (:func:`paired_interval`), beside mean |PCC|."""
    pcc = labels.set_index("setting")["mean_abs_pcc"]
    aus = sorted(int(c[len("f1_AU"):]) for c in runs.columns if c.startswith("f1_AU"))
    records = []
    for setting in dict.fromkeys(runs["setting"]):
        models = set(runs.loc[runs["setting"] == setting, "model"])
        for better, other, label in COMPARISONS:
            if not {better, other} <= models:
                continue
            for which, chosen in (("all", aus), ("faint", [a for a in FAINT_AUS if a in aus])):
                d = _fold_difference(runs, setting, better, other, chosen)
                mean, low, high, how = paired_interval(d.to_numpy())
                records.append({"setting": setting, "mean_abs_pcc": float(pcc.get(setting, np.nan)),
                                "comparison": label, "model": better, "minus": other, "aus": which,
                                "difference": mean, "low": low, "high": high, "folds": len(d), "interval": how})
    return pd.DataFrame.from_records(records)


def trends(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Does the gain grow with the correlation? Per comparison (all AUs), per fold the
    least-squares slope of the difference against mean |PCC| over the coupling settings (not the
    control), in F1 points per +0.1 mean |PCC|, and its interval over folds."""
    coupled = labels[labels["synth_setting"] == "default"].set_index("setting")["mean_abs_pcc"]
    aus = sorted(int(c[len("f1_AU"):]) for c in runs.columns if c.startswith("f1_AU"))
    records = []
    for better, other, label in COMPARISONS:
        per_setting = {s: _fold_difference(runs, s, better, other, aus) for s in coupled.index}
        per_setting = {s: d for s, d in per_setting.items() if len(d)}
        if len(per_setting) < 2:
            continue
        table = pd.DataFrame(per_setting)                 # folds x settings
        slopes = [float(np.polyfit(coupled[row.dropna().index], row.dropna(), 1)[0]) * 0.1
                  for _, row in table.iterrows() if row.notna().sum() >= 2]
        mean, low, high, how = paired_interval(slopes)
        records.append({"comparison": label, "slope_per_0.1_pcc": mean, "low": low, "high": high,
                        "settings": len(per_setting), "folds": len(slopes), "interval": how})
    return pd.DataFrame.from_records(records)


def _fmt(x: float, digits: int = 1, sign: bool = True) -> str:
    return "" if not np.isfinite(x) else (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}")


def _interval(low: float, high: float, digits: int = 1) -> str:
    return "" if not (np.isfinite(low) and np.isfinite(high)) else f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def render(runs: pd.DataFrame, labels: pd.DataFrame, diffs: pd.DataFrame, trend: pd.DataFrame, source: str,
           budget_text: str, figure: str | None = None, curves_png: str | None = None) -> str:
    """``results/premise.md``."""
    models = list(dict.fromkeys(runs["model"]))
    pcc = labels.set_index("setting")
    f1 = [[s, f"{pcc.loc[s, 'coupling']:g}", _fmt(pcc.loc[s, "mean_abs_pcc"], 3, False)]
          + [_cell(runs[(runs["setting"] == s) & (runs["model"] == m)]["avg_f1"]) for m in models]
          for s in pcc.index]
    diff_rows = [[r["setting"], _fmt(r["mean_abs_pcc"], 3, False), r["comparison"],
                  "all 12" if r["aus"] == "all" else "+".join(f"AU{a}" for a in FAINT_AUS),
                  _fmt(r["difference"]), _interval(r["low"], r["high"]), str(r["folds"])]
                 for r in diffs.to_dict("records")]
    how = sorted(set(diffs["interval"])) if len(diffs) else []
    lines = [
        "# The premise experiment: does RE-Net's relation gain grow with the AU correlation?", "",
        f"Data: {source}. **Synthetic**: SynthAU's coupling knob sets how strongly AUs co-occur (0: every AU "
        "independent, 1: the default, 2: stronger; each AU's occurrence rate held at its target), and the "
        f"positive control draws {', '.join(f'AU{a}' for a in FAINT_AUS)} at a quarter of their pixel effect beside "
        f"fully visible partners, at coupling {CONTROL_COUPLING:g} (its labels are the coupling-{CONTROL_COUPLING:g} "
        "setting's). These numbers test the relation's premise on a generator, not the paper's numbers.",
        "", budget_text + " F1 in percent; a run is one subject-exclusive fold.", "",
        "## Label correlation per setting", "",
        "Mean |PCC| over the off-diagonal pairs of the 12 BP4D AUs: over all labelled frames (each a "
        "training frame in two of the three folds), and the mean over folds of each fold's training labels "
        "(what RE-Net's relation is built from; with ~1,600 frames independent AUs show about 0.05 by chance).", "",
        markdown_grid(["setting", "coupling", "mean abs PCC (all frames)", "mean abs PCC (fold training)", "frames"],
                      [[r["setting"], f"{r['coupling']:g}", _fmt(r["mean_abs_pcc"], 3, False),
                        _fmt(r["mean_abs_pcc_train"], 3, False), str(r["frames"])]
                       for r in labels.to_dict("records")]), "",
        "## Average F1 (%) per model (mean ± sd over folds)", "",
        markdown_grid(["setting", "coupling", "mean abs PCC"] + models, f1), "",
        "## Differences (F1 points) with their 95% interval over folds", "",
        f"Interval: {'; '.join(how) or 'none'} (`premise.paired_interval`). A difference whose interval "
        "lies above zero favours the first model; one that covers zero is inconclusive.", "",
        markdown_grid(["setting", "mean abs PCC", "comparison", "AUs", "difference", "95% interval", "folds"],
                      diff_rows), ""]
    check = control_check(runs, labels)
    if len(check):
        aus = "+".join(f"AU{a}" for a in FAINT_AUS)
        lines += ["## Does the control bite? The faint AUs against the same AUs visible", "",
                  f"Per model, the mean F1 of {aus} in the control minus in the coupling-{CONTROL_COUPLING:g} setting "
                  "(same labels and test subjects; only the faint AUs' pixels differ), per fold, and its 95% interval. "
                  "The control can show the relation's advantage only where making the AUs faint costs the models "
                  "without it (interval below zero); where it costs nothing, the faint AUs are still found from their "
                  "own pixels or their partners', and the control is no test of the relation.", "",
                  markdown_grid(["model", f"{aus} F1, control", f"{aus} F1, visible", "difference", "95% interval",
                                 "folds", "faint AUs harder"],
                                [[r["model"], _fmt(r["faint_f1"], 1, False), _fmt(r["visible_f1"], 1, False),
                                  _fmt(r["difference"]), _interval(r["low"], r["high"]), str(r["folds"]), r["bites"]]
                                 for r in check.to_dict("records")]), ""]
    gaps = validation_gaps(runs)
    if len(gaps):
        lines += ["## Is it the budget? Validation F1 gaps", "",
                  "Per setting, the paired difference of best validation F1 (points; the epoch early stopping "
                  "picked, validation frames only), mean over folds. Against ResNet-18, a gap below "
                  f"-{100.0 * PARITY_TOLERANCE:g} points marks RE-Net as not brought to parity by the budget, as on "
                  "the claims scoreboard; then a test difference measures the budget, not the relation.", "",
                  markdown_grid(["setting", "comparison", "validation gap", "folds", "at parity"],
                                [[r["setting"], r["comparison"], _fmt(r["val_gap"]), str(r["folds"]), r["parity"]]
                                 for r in gaps.to_dict("records")]), ""]
        if curves_png:
            lines += ["Every run's validation F1 after each epoch, per setting (thin: each fold; thick: their mean; "
                      "the numbers are in the `_curves.csv` beside this file):", "",
                      f"![validation curves]({curves_png})", ""]
    if len(trend):
        lines += ["## Trend: does the difference grow with mean |PCC|?", "",
                  "Per fold, the least-squares slope of the difference (all 12 AUs) against mean |PCC| over the "
                  "coupling settings (not the control), in F1 points per +0.1 mean |PCC|; its interval over folds.", "",
                  markdown_grid(["comparison", "slope per +0.1 mean abs PCC", "95% interval", "settings", "folds"],
                                [[r["comparison"], _fmt(r["slope_per_0.1_pcc"], 2), _interval(r["low"], r["high"], 2),
                                  str(r["settings"]), str(r["folds"])] for r in trend.to_dict("records")]), ""]
    if figure:
        lines += [f"![premise]({figure})", ""]
    return "\n".join(lines)


def _cell(values: pd.Series) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return ""
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def figure(diffs: pd.DataFrame, title: str = ""):
    """One panel per comparison: the difference (F1 points) with its 95% interval against mean
    |PCC|; coupling settings joined by a line (all 12 AUs solid, the faint AUs dashed), the
    control as stars (filled: all AUs, open: its faint AUs)."""
    plt = pyplot()
    comparisons = list(dict.fromkeys(diffs["comparison"]))
    fig, axes = plt.subplots(1, max(1, len(comparisons)), figsize=(5.2 * max(1, len(comparisons)), 4.2),
                             squeeze=False)
    span = float(np.ptp(diffs["mean_abs_pcc"])) if len(diffs) else 0.0
    nudge = 0.015 * (span or 0.1)      # sideways, so that markers at one mean |PCC| do not hide each other
    for ax, comparison in zip(axes[0], comparisons):
        part = diffs[diffs["comparison"] == comparison]
        control = part["setting"].str.contains("control")
        for which, style, label in (("all", "o-", "all 12 AUs"),
                                    ("faint", "s--", "+".join(f"AU{a}" for a in FAINT_AUS) + " only")):
            for is_control, marker in ((False, style), (True, "*")):
                sel = part[(part["aus"] == which) & (control == is_control)].sort_values("mean_abs_pcc")
                if sel.empty:
                    continue
                err = np.abs(np.vstack([sel["difference"] - sel["low"], sel["high"] - sel["difference"]]))
                err = np.nan_to_num(err, nan=0.0)
                colour = "tab:red" if is_control else "tab:blue" if which == "all" else "tab:grey"
                name = f"control, {label}" if is_control else f"coupling settings, {label}"
                x = sel["mean_abs_pcc"] + nudge * ((which == "faint") + 2 * is_control)
                ax.errorbar(x, sel["difference"], yerr=err, fmt=marker, color=colour,
                            capsize=3, markersize=12 if is_control else 5, label=name,
                            mfc="none" if is_control and which == "faint" else colour)
        for r in part[(part["aus"] == "all") & ~control].to_dict("records"):
            ax.annotate(r["setting"].replace("coupling ", "c="), (r["mean_abs_pcc"], r["difference"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=7)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("mean |PCC| of the labels, 12 BP4D AUs (markers nudged apart)")
        ax.set_ylabel("difference in F1 points (95% interval)")
        ax.set_title(comparison, fontsize=10)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
