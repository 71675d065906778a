"""Notebook 12 (opt-in): a SynthAU video in, its AU table and time-series plot out, with the
check that ``predict`` gives what the study's evaluation gives on the same frames, and the real
photograph's aligned crop (detection and alignment only).

The run is the study's own: Table 2's (DISFA twin, occurrence) run of ``model`` on ``fold``,
reused from the store or trained once. The video is the first test subject's frames, decoded from
the twin's left-camera video and written again by ``cv2.VideoWriter``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renet_core.base import metrics
from renet_core.base.io import atomic_path, to_csv_atomic, write_text_atomic
from renet_core.engine import ResultsStore, run
from renet_core.engine.splits import load_splits
from renet_core.predict.api import SYNTHETIC_NOTE, predict
from renet_core.predict.demo import save_real_face_figure
from renet_core.predict.plot import plot_au_series
from renet_core.predict.synthvideo import render_synthau
from renet_core.study import TABLE_OF, TABLES, spec_configs


@dataclass
class Showcase:
    table: object            # the prediction table (pandas)
    markdown: str
    csv: Path
    series_figure: Path
    face_figure: Path
    source: str


def synthau_video(profile: str = "demo", model: str = "renet", fold: int = 1, device: str | None = None,
                  store_dir=None, tables_dir="results", figures_dir="figures", work_dir=None) -> Showcase:
    """Predict on a rendered SynthAU test video with the study's DISFA run; write
    ``predict_synthau.csv`` / ``.md`` to ``tables_dir``, the time series and the real face's crop
    to ``figures_dir``."""
    spec = TABLES[TABLE_OF[("occurrence", "disfa")]]
    cfg = spec_configs(spec, profile, None, [fold], store_dir)[model][0]
    if device:
        cfg = cfg.replace(device=device)
    result = run(cfg)
    test = load_splits(cfg).test.reset_index(drop=True)
    subject = test["subject"].iloc[0]
    rows = test.index[test["subject"] == subject].to_numpy()
    work = Path(work_dir) if work_dir else cfg.cache_root() / "predict_demo" / result.config_hash
    video, landmarks = render_synthau(test.iloc[rows], work / f"synthau_{subject}.avi",
                                      work / f"synthau_{subject}_landmarks.csv")
    with warnings.catch_warnings():   # the note is about real faces; this input is SynthAU itself
        warnings.filterwarnings("ignore", message=re.escape(SYNTHETIC_NOTE))
        table = predict(video, run=result.run_dir, landmarks=landmarks, device=device or "cpu", progress=False)
    table["input"] = video.name   # the file, not this machine's cache folder
    study = ResultsStore(cfg.results_dir).load_predictions(result.config_hash)
    names = [f"AU{a:02d}" for a in cfg.resolved_aus()]
    probs = table[[f"{n}_p" for n in names]].to_numpy(dtype=float)
    truth = study["y_true"][rows]
    f1_predict = metrics.f1_per_au(truth, probs, threshold=cfg.threshold)
    f1_study = metrics.f1_per_au(truth, study["scores"][rows], threshold=cfg.threshold)
    tables_dir, figures_dir = Path(tables_dir), Path(figures_dir)
    csv = to_csv_atomic(table, tables_dir / "predict_synthau.csv", index=False)
    figure = plot_au_series(table)
    series = figures_dir / "predict_synthau_series.png"
    with atomic_path(series, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    face = save_real_face_figure(figures_dir / "predict_real_face.png")
    source = f"SynthAU {profile}, DISFA layout (synthetic); run {result.config_hash}"
    markdown = _markdown(cfg, result, subject, table, names, f1_predict, f1_study,
                         float(np.abs(probs - study["scores"][rows]).max()), source)
    write_text_atomic(tables_dir / "predict_synthau.md", markdown)
    return Showcase(table, markdown, csv, series, face, source)


def _markdown(cfg, result, subject, table, names, f1_predict, f1_study, max_diff, source) -> str:
    lines = [f"# predict on a SynthAU video ({subject}, {len(table)} frames)", "",
             f"Data: {source}. Synthetic faces: these numbers are not results on DISFA.", "",
             f"`python -m renet_core predict synthau_{subject}.avi --run {result.run_dir.name} --landmarks ...`: "
             f"{int(table['success'].sum())} of {len(table)} frames aligned; the largest difference between "
             f"predict's probabilities and the study's evaluation of the same frames is {max_diff:.2g}.", "",
             "| AU | F1 predict | F1 study evaluation | difference |", "|---|---|---|---|"]
    for name, a, b in zip(names, f1_predict, f1_study):
        lines.append(f"| {name} | {100 * a:.1f} | {100 * b:.1f} | {100 * (a - b):+.1f} |")
    lines += ["", f"F1 in points at the run's threshold {cfg.threshold}, on this subject's frames only "
              "(few frames: single AUs move by many points; the comparison, not the level, is the check).", ""]
    return "\n".join(lines)
