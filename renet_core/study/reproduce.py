"""Reproduce one table or figure of the paper with one call, as every notebook does::

    from renet_core import study
    out = study.reproduce("table1", profile="demo")      # BP4D detection, Table 1
    out.table, out.markdown, out.paths

:func:`reproduce` turns a table's spec (:mod:`renet_core.study.tables`) into configs (the
profile's settings, the dataset root or its SynthAU twin, one config per fold), runs what is
missing, finds each row's results by run identity (never by a label), builds the table beside
the paper's values (:mod:`renet_core.study.report`), writes CSV and Markdown, and returns it.
Figures are declared the same way (``"fig2"``, ``"fig3"``) and the section 4.7 timing as
``"efficiency"``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from renet_core import data
from renet_core.base.device import pick_device
from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.data.index import DATASETS as DATASET_NAMES
from renet_core.data.labels import PAPER_AUS
from renet_core.engine import ResultsStore, dataset_root, fingerprints_once, profile_setting, run
from renet_core.engine.precision import amp_dtype
from renet_core.model import pearson_relation
from renet_core.model.speed import inference_times
from renet_core.study.configs import chance_rows, config, run_configs, spec_configs, training_budget
from renet_core.study.figures import feature_inputs, relation_figure, save_figure, tsne_panels
from renet_core.study.preview import notice, source_mark
from renet_core.study.provenance import config_run_dirs, environment_labels, run_environments, table_environments
from renet_core.study.report import build_table, efficiency_table, write_efficiency, write_table
from renet_core.study.tables import CHANCE_ENTRIES, TABLES, TSNE_AUS


def output_entry(name: str, path: str | os.PathLike, data_source: str, kind: str = "table") -> dict:
    """One line of a notebook's outputs manifest (``results/README.md`` lists them, runall)."""
    return {"name": name, "path": str(path), "data_source": data_source, "kind": kind}


def record_outputs(manifest: str | os.PathLike | None, outputs: Sequence[dict]) -> None:
    """Write the notebook's outputs manifest (JSON, atomically), each output's path relative to
    the manifest's folder (so the committed manifest and the README's links hold in any
    checkout); no-op when ``manifest`` is None (a notebook opened by hand)."""
    if not manifest:
        return
    here = Path(manifest).resolve().parent
    entries = [dict(o, path=os.path.relpath(Path(o["path"]).resolve(), here)) for o in outputs]
    write_text_atomic(manifest, json.dumps(entries, indent=2))


@dataclass
class Reproduced:
    """What :func:`reproduce` returns: the table (or figure), its rendering and where it went."""

    name: str
    markdown: str
    source: str
    paths: list[Path] = field(default_factory=list)
    table: pd.DataFrame | None = None
    figure: Path | None = None
    kind: str = "table"
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, manifest: str | os.PathLike | None, title: str | None = None) -> None:
        """List this output in ``manifest`` (what ``results/README.md`` shows; set by run_all)."""
        target = self.figure if self.kind == "figure" else next(p for p in self.paths if p.suffix == ".md")
        record_outputs(manifest, [output_entry(title or self.name, target, self.source, self.kind)])


@fingerprints_once()
def reproduce(name: str, profile: str = "demo", roots: dict | None = None, folds: Sequence[int] | None = None, *,
              store_dir=None, tables_dir: str | os.PathLike = "results", figures_dir: str | os.PathLike = "figures",
              device: str | None = None, **changes) -> Reproduced:
    """Reproduce table or figure ``name`` ("table1".."table8", "strategies", "fig2", "fig3",
    "efficiency"): run what is missing (finished runs are reused), build it beside the paper's
    values, write it to ``tables_dir`` / ``figures_dir`` and return it.

    ``roots`` maps dataset -> root (``None``: ``$RENET_<DATASET>``, else the SynthAU twin);
    ``folds`` defaults to all three; ``changes`` are ExperimentConfig fields for every run.
    """
    roots = roots or {}
    changes = dict(changes, device=device)
    if name in FIGURES:
        return FIGURES[name](profile=profile, roots=roots, folds=folds, store_dir=store_dir, tables_dir=tables_dir,
                             figures_dir=figures_dir, **changes)
    if name not in TABLES:
        raise ValueError(f"unknown table or figure {name!r}; expected one of {sorted(TABLES) + sorted(FIGURES)}")
    spec = TABLES[name]
    configs = spec_configs(spec, profile, roots.get(spec.dataset), folds, store_dir, **changes)
    rows = run_configs(configs)
    if spec.chance and "f1" in spec.metrics:
        rows = pd.concat([rows, chance_rows(configs, spec, rows)], ignore_index=True)
    environments = run_environments(config_run_dirs(configs))   # where each run computed (issue 32)
    rows["environment"] = rows["config_hash"].astype(str).map(environment_labels(environments))
    table = build_table(rows, spec, device=describe_compute(configs, device))
    env_label, env_text = table_environments(environments)
    csv_path, md_path = write_table(table, tables_dir, name, table_header(profile, configs, env_text))
    source = table.loc[(table["row"] == "this run") & ~table["entry"].isin(CHANCE_ENTRIES),
                       "data source"].iloc[-1]
    if "(mixed)" in env_label:   # the README lists one source per table: say that its rows differ
        source += f"; the table's runs: {env_label}"
    return Reproduced(name, md_path.read_text(), source_mark(profile, source), [csv_path, md_path], table=table)


def table_header(profile: str, configs: dict[str, list], env_text: str = "") -> str:
    """The text above a table (its data source in words): a preview's notice first
    (:func:`renet_core.study.preview.notice`), the training budget, where its runs computed."""
    return "\n\n".join(filter(None, [notice(profile), training_budget(configs), env_text]))


def describe_compute(configs: dict[str, list], device: str | None = None) -> str:
    """Where the table's runs compute, for its data source: the device, and the autocast precision
    when it is not float32 (e.g. "cpu, bf16 autocast")."""
    dev = pick_device(device)
    dtypes = {amp_dtype(dev, c.amp) for cfgs in configs.values() for c in cfgs}
    names = sorted(str(d).replace("torch.", "") for d in dtypes if d is not None)
    return str(dev) + (f", {' / '.join(names)} autocast" if names else "")


def relation_matrices(roots: dict, profile: str = "demo", store_dir=None, **changes):
    """Fig. 2: the PCC relation of each dataset's occurrence labels over all labelled frames
    (section 3.3). Returns ``({name: (matrix, aus)}, {name: data source}, tidy DataFrame)``."""
    matrices, sources, tidy = {}, {}, []
    for ds, name in DATASET_NAMES.items():
        cfg = config(profile, ds, "occurrence", roots.get(ds), store_dir, **changes)
        index = data.load_index(ds, dataset_root(cfg))
        aus = PAPER_AUS[(ds, "occurrence")]
        matrix = pearson_relation(index[[f"AU{a}" for a in aus]].to_numpy(dtype=float))
        matrices[name], sources[name] = (matrix, aus), data.describe_source(index)
        tidy += [{"dataset": ds, "au_row": a, "au_col": b, "pcc": float(matrix[i, j]), "frames": len(index),
                  "data_source": sources[name]} for i, a in enumerate(aus) for j, b in enumerate(aus)]
    return matrices, sources, pd.DataFrame(tidy)


def _fig2(profile, roots, folds, store_dir, tables_dir, figures_dir, device=None, **changes) -> Reproduced:
    matrices, sources, tidy = relation_matrices(roots, profile, store_dir, **changes)
    fig = relation_figure({f"{name}  ({sources[name]})": value for name, value in matrices.items()},
                          suptitle="AU relation (PCC of occurrence labels)")
    png = save_figure(fig, Path(figures_dir) / "fig2_relation_matrices.png")
    csv = to_csv_atomic(tidy, Path(tables_dir) / "fig2_relation_matrices.csv", float_format="%.4f")
    source = "; ".join(sorted(set(sources.values())))
    return Reproduced("Fig. 2 relation matrices", f"![Fig. 2]({png})", source, [csv, png], table=tidy,
                      figure=png, kind="figure")


def tsne_inputs(dataset: str = "bp4d", root: str | None = None, fold: int = 1, *, profile: str = "demo",
                store_dir=None, **changes) -> dict:
    """Fig. 3: saved test-frame features of RE-Net ([n, C, 512]) and ResNet-18 ([n, 512]) of one
    fold (training them if needed) and the frames' occurrence labels [n, C]."""
    pred, rows = {}, None
    for model in ("renet", "resnet18"):
        cfg = config(profile, dataset, "occurrence", root, store_dir, fold=fold, model=model, **changes)
        rows = run(cfg).rows
        pred[model] = ResultsStore(cfg.results_dir).load_predictions(cfg.config_hash())
        if "features" not in pred[model]:
            why = ("saved no features (save_features=0); set save_features > 0" if not cfg.save_features else
                   "holds no features: its record was imported without them (renet_core.engine.archive); export it "
                   "with 'python -m renet_core archive export --features' where it was trained, or retrain it (force; "
                   "./run_all.sh does so before Table 1 reads it)")
            raise ValueError(f"run {cfg.config_hash()} {why}")
    out = feature_inputs(pred)
    out["source"] = str(rows["data_source"].iloc[0]) if len(rows) and "data_source" in rows else dataset
    return out


def _fig3(profile, roots, folds, store_dir, tables_dir, figures_dir, show_aus=None, **changes) -> Reproduced:
    fold = (list(folds) if folds else [1])[0]
    inputs = tsne_inputs("bp4d", roots.get("bp4d"), fold, profile=profile, store_dir=store_dir, **changes)
    fig = tsne_panels(inputs["renet"], inputs["resnet18"], inputs["labels"], inputs["aus"],
                      show_aus=show_aus or TSNE_AUS, title=f"t-SNE of test-frame features, {inputs['source']}")
    png = save_figure(fig, Path(figures_dir) / "fig3_tsne.png")
    return Reproduced("Fig. 3 t-SNE", f"![Fig. 3]({png})", source_mark(profile, inputs["source"]), [png], figure=png,
                      kind="figure", extra={"inputs": inputs})


def measure_efficiency(profile: str = "demo", device: str | None = None):
    """Section 4.7: ms/image for 12 AUs on this machine -- RE-Net as a loop of 12 conditioned
    passes (the paper), RE-Net's batched pass, and ResNet-18's single pass
    (:func:`renet_core.model.speed.inference_times`); returns :func:`renet_core.study.report.efficiency_table`."""
    s = profile_setting(profile, "efficiency")
    dev = pick_device(device)
    dtype = "bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    rows = inference_times(dev, s["size"], s["batches"], dtype=dtype, channels_last=dev.type == "cuda",
                           repeats=s["repeats"], budget=s["budget"])
    measured = pd.DataFrame([{"variant": v, "batch": b, "input": f"{s['size']}x{s['size']}",
                              "ms_per_image": 1000.0 * sec / b} for v, b, sec in rows])
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return efficiency_table(measured, device=f"{dev.type} ({name}, {dtype})")


def _efficiency(profile, roots, folds, store_dir, tables_dir, figures_dir, device=None, **changes) -> Reproduced:
    table = measure_efficiency(profile, device)
    table.attrs["notice"] = notice(profile)   # a preview says so (its timing repeats fewer times, too)
    csv, md = write_efficiency(table, tables_dir)
    return Reproduced("Section 4.7 efficiency", md.read_text(),
                      source_mark(profile, f"random inputs, {table['device'].iloc[0]}"), [csv, md], table=table)


FIGURES: dict[str, Callable[..., Reproduced]] = {"fig2": _fig2, "fig3": _fig3, "efficiency": _efficiency}
