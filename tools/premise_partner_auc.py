"""Where do the models find the positive control's faint AUs? (docs/findings.md, "The premise")

The control (notebook 11) draws AU2 and AU23 at a quarter of their pixel effect beside fully
visible partners (AU1 for AU2, AU24 for AU23). A model can still find a faint AU two ways: from
its own pixels, or from its partner's, through the co-occurrence it learned from the labels. This
script separates them on the saved test predictions of the premise runs: per faint AU the ROC AUC
of its score over all test frames, and within the frames where its partner is on and where it is
off (there the partner's cue is constant, so only the AU's own evidence can rank the frames). It
prints, per setting (the control and the coupling-2 setting with the same labels) and model, the
mean over folds. Reads finished runs only; trains nothing.

    RENET_CACHE=<the cache the runs are in> python tools/premise_partner_auc.py --profile demo \\
        --out results/premise_partner_auc.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from renet_core.base.io import write_text_atomic
from renet_core.engine import ResultsStore
from renet_core.study import premise
from renet_core.study.report import markdown_grid

#: (faint AU, its partner): the partner it co-occurs with most (docs/reproduction-notes.md,
#: "The positive control").
PAIRS = ((2, 1), (23, 24))


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    keep = np.isfinite(y)
    y, s = y[keep], s[keep]
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def partner_aucs(labels: np.ndarray, scores: np.ndarray, aus, pairs=PAIRS) -> dict[str, float]:
    """Per ``(faint, partner)``: the faint AU's AUC over all frames (``AU2``), with the partner
    on (``AU2 | AU1 on``) and off (``AU2 | AU1 off``). ``labels``/``scores``: frames x AUs in the
    order of ``aus``; unlabelled entries are NaN and left out."""
    aus = [int(a) for a in aus]
    out = {}
    for faint, partner in pairs:
        i, j = aus.index(faint), aus.index(partner)
        out[f"AU{faint}"] = _auc(labels[:, i], scores[:, i])
        for state, value in (("on", 1), ("off", 0)):
            rows = labels[:, j] == value
            out[f"AU{faint} | AU{partner} {state}"] = _auc(labels[rows, i], scores[rows, i])
    return out


def collect(profile: str = "demo") -> pd.DataFrame:
    """One row per premise run of the control and of the coupling setting it shares labels with."""
    records = []
    for setting in premise.settings([premise.CONTROL_COUPLING]):
        for model, cfgs in premise.setting_configs(setting, profile).items():
            for cfg in cfgs:
                path = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash()) / "predictions.npz"
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: premise run {cfg.config_hash()} ({setting.name}, {model}, fold "
                                            f"{cfg.fold}) is not finished in this cache; run notebook 11 first")
                with np.load(path, allow_pickle=False) as z:
                    found = partner_aucs(z["y_true"], z["scores"], z["aus"])
                records.append({"setting": setting.name, "model": model, "fold": cfg.fold, **found})
    return pd.DataFrame.from_records(records)


def render(rows: pd.DataFrame) -> str:
    cols = [c for c in rows.columns if c.startswith("AU")]
    mean = rows.groupby(["model", "setting"], sort=False)[cols].mean().reset_index()
    return "\n".join([
        "# Where do the models find the control's faint AUs?", "",
        "SynthAU demo, BP4D layout (synthetic); test frames of notebook 11's runs, ROC AUC of the faint AU's "
        "score, mean over 3 folds. Within the frames where its partner is on (or off) the partner's cue is "
        "constant, so only the AU's own evidence ranks them. `tools/premise_partner_auc.py`.", "",
        markdown_grid(["model", "setting"] + cols,
                      [[r["model"], r["setting"]] + [f"{r[c]:.3f}" for c in cols] for r in mean.to_dict("records")]),
        ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    text = render(collect(args.profile))
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
