"""The claims scoreboard of a profile's finished runs: every table's rows found in the store by
run identity (nothing is run), the claims of :mod:`renet_core.study.claims` measured on them,
and each claim's RE-Net training budget against the parity budget."""

from __future__ import annotations

import warnings

import pandas as pd

from renet_core.engine import ResultsStore, fingerprints_once
from renet_core.engine.execute import stored_rows
from renet_core.engine.store import is_synthetic
from renet_core.study import claims
from renet_core.study.configs import chance_rows, parity_steps, select_rows, spec_configs, table_configs, under_trained
from renet_core.study.figures import feature_inputs
from renet_core.study.tables import CHANCE_ENTRIES, TABLES, TSNE_AUS


@fingerprints_once()
def finished_rows(profile: str, store_dir=None, roots: dict | None = None, configs_by_table: dict | None = None,
                  **changes) -> tuple[dict, dict]:
    """Every table's rows that are already in the store (nothing is run), with ``entry`` and the
    chance rows, for the folds the table runs under ``profile`` (:func:`default_folds`, so a
    claim uses what its table shows): ``({table: rows}, {table: synthetic?})``, for
    :mod:`renet_core.study.claims`. ``configs_by_table`` (:func:`table_configs`) saves building the
    configs again when the caller has them."""
    if configs_by_table is None:
        configs_by_table = table_configs(profile, store_dir, roots, **changes)
    rows_by_table, synthetic = {}, {}
    for name, spec in TABLES.items():
        configs = configs_by_table[name]
        store = ResultsStore(next(iter(configs.values()))[0].results_dir)
        for cfg in (c for cfgs in configs.values() for c in cfgs):
            if store.is_done(cfg.config_hash()):
                try:
                    stored_rows(cfg, store)   # rows lost from results.csv come back from the predictions
                except ValueError as exc:
                    warnings.warn(str(exc), stacklevel=2)
        rows = select_rows(store.load(), configs)
        if rows.empty:
            continue
        if spec.chance:
            rows = pd.concat([rows, chance_rows(configs, spec, rows)], ignore_index=True)
        rows_by_table[name], synthetic[name] = rows, is_synthetic(rows[~rows["entry"].isin(
            list(CHANCE_ENTRIES))])
    return rows_by_table, synthetic


@fingerprints_once()
def scoreboard(profile: str, store_dir=None, roots: dict | None = None, **changes) -> pd.DataFrame:
    """The claims scoreboard (:func:`renet_core.study.claims.scoreboard`) of the runs in the store, with
    Fig. 3's silhouette claim when its two runs (Table 1, fold 1) are there."""
    configs_by_table = table_configs(profile, store_dir, roots, **changes)
    rows_by_table, synthetic = finished_rows(profile, store_dir, roots, configs_by_table, **changes)
    extra = []
    spec = TABLES["table1"]
    fold1 = {key: cfgs[0] for key, cfgs in spec_configs(spec, profile, (roots or {}).get("bp4d"), [1], store_dir,
                                                          **changes).items()}
    store = ResultsStore(fold1["renet"].results_dir)
    if all(store.is_done(c.config_hash()) for c in fold1.values()):
        pred = {k: store.load_predictions(c.config_hash()) for k, c in fold1.items()}
        if all("features" in p for p in pred.values()):
            claim = claims.silhouette_claim(feature_inputs(pred), TSNE_AUS)
            claim["data"] = "synthetic" if synthetic.get("table1") else "real"
            extra.append(claim)

    def predictions(table: str, entry: str):
        """A row's saved test predictions when the table ran it once (one fold), else None."""
        rows = rows_by_table.get(table)
        if rows is None or "config_hash" not in rows:
            return None
        hashes = rows.loc[rows["entry"] == entry, "config_hash"].dropna().astype(str).unique()
        if len(hashes) != 1 or not store.is_done(hashes[0]):
            return None
        return store.load_predictions(hashes[0])

    board = claims.scoreboard(rows_by_table, synthetic, extra, predictions)
    steps, short = {}, {}
    for name, configs in configs_by_table.items():
        steps[name], short[name] = under_trained(configs, profile)
    steps["fig3"], short["fig3"] = steps["table1"], short["table1"]     # Fig. 3 uses Table 1's fold-1 runs
    board["renet_steps"] = pd.array([steps.get(t) for t in board["table"]], dtype="Int64")
    board["under_trained"] = [bool(short.get(t, False)) for t in board["table"]]
    board.attrs["parity_steps"] = parity_steps(profile, "bp4d", "occurrence")
    return board
