"""Run identity (issue: a run is identified by its data and every setting that changes its
numbers) and a results store keyed by it (renet_core.engine.identity, renet_core.engine.store)."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from renet_core.engine import ExperimentConfig
from renet_core.engine.store import ResultsStore


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


def _copy(tmp_path, name="BP4D"):
    root = tmp_path / name
    (root / "AUCoding").mkdir(parents=True)
    (root / "AUCoding" / "F001_T1.csv").write_text("1,1,2\n1,0,1\n")
    (root / "2DFeatures").mkdir()
    (root / "2DFeatures" / "F001_T1.mat").write_bytes(b"landmarks")
    (root / "Sequences").mkdir()
    (root / "Sequences" / "0001.jpg").write_bytes(b"\xff\xd8")
    return root


def test_identity_covers_the_dataset_copy_and_its_label_files(tmp_path):
    root = _copy(tmp_path)
    cfg = ExperimentConfig(root=str(root))
    first = cfg.config_hash()
    assert ExperimentConfig(root=str(root)).config_hash() == first          # stable
    label = root / "AUCoding" / "F001_T1.csv"
    label.write_text("1,1,2\n1,1,1\n")                                     # a fixed label
    stamp = time.time() + 5
    os.utime(label, (stamp, stamp))
    assert ExperimentConfig(root=str(root)).config_hash() != first
    other = _copy(tmp_path, "BP4D-copy")                                   # another copy, same files
    assert ExperimentConfig(root=str(other)).config_hash() != ExperimentConfig(root=str(root)).config_hash()
    # images by name only (cheap: an added or deleted frame changes it, issue 21 case 2), landmark
    # files by size and mtime; hidden files (.DS_Store ...) never
    after = ExperimentConfig(root=str(root)).config_hash()
    (root / "Sequences" / "0001.jpg").write_bytes(b"\xff\xd8 rewritten")
    (root / "Sequences" / ".DS_Store").write_bytes(b"finder")
    assert ExperimentConfig(root=str(root)).config_hash() == after
    (root / "Sequences" / "0002.jpg").write_bytes(b"\xff\xd8")
    assert ExperimentConfig(root=str(root)).config_hash() != after
    (root / "Sequences" / "0002.jpg").unlink()
    assert ExperimentConfig(root=str(root)).config_hash() == after
    (root / "Sequences" / "0001.jpg").unlink()                            # a deleted frame image
    assert ExperimentConfig(root=str(root)).config_hash() != after
    after = ExperimentConfig(root=str(root)).config_hash()
    (root / "2DFeatures" / "F001_T1.mat").write_bytes(b"other landmarks")
    assert ExperimentConfig(root=str(root)).config_hash() != after


def test_a_root_is_walked_once_per_block_and_again_in_the_next(tmp_path, monkeypatch):
    """fingerprints_once: a table's (or the scoreboard's) many configs walk a dataset root once;
    a label file fixed between two blocks still changes the identity."""
    from renet_core.engine import identity as experiment

    walks = []
    real = experiment._walk_fingerprint
    monkeypatch.setattr(experiment, "_walk_fingerprint", lambda root: walks.append(root) or real(root))
    root = _copy(tmp_path)
    with experiment.fingerprints_once():
        with experiment.fingerprints_once():                                # nested: the same memo
            first = {ExperimentConfig(root=str(root), lr=lr).config_hash() for lr in (1e-4, 2e-4, 3e-4)}
        ExperimentConfig(root=str(root), fold=2).config_hash()
    assert len(first) == 3 and len(walks) == 1
    label = root / "AUCoding" / "F001_T1.csv"
    label.write_text("1,1,2\n1,1,1\n")
    stamp = time.time() + 5
    os.utime(label, (stamp, stamp))
    with experiment.fingerprints_once():
        again = ExperimentConfig(root=str(root), lr=1e-4).config_hash()
    assert len(walks) == 2 and again not in first
    ExperimentConfig(root=str(root)).config_hash()                          # outside a block: walked
    ExperimentConfig(root=str(root)).config_hash()
    assert len(walks) == 4


def test_identity_covers_synthau_settings_but_not_workers_labels_or_paths(tmp_path):
    base = ExperimentConfig()
    assert base.data_identity().startswith("synthau:bp4d-demo-seed0-v")
    assert base.replace(synth_seed=1).config_hash() != base.config_hash()
    assert base.replace(synth_size="smoke").config_hash() != base.config_hash()
    # augmentation is drawn per (seed, epoch, item): the workers change the speed, not the numbers
    assert base.replace(num_workers=2).config_hash() == base.config_hash()
    same = base.replace(method="my label", profile="demo", results_dir=str(tmp_path), device="cpu", progress=False)
    assert same.config_hash() == base.config_hash()


def test_real_data_without_a_root_is_a_clear_error():
    with pytest.raises(ValueError, match="RENET_BP4D"):
        ExperimentConfig(data="real").config_hash()


def test_results_store_keeps_rows_of_configs_that_share_a_label(tmp_path):
    """Two configs that differ only in lr both keep their rows (rows are keyed by identity);
    rerunning one replaces only its own rows."""
    store = ResultsStore(tmp_path)
    a, b = ExperimentConfig(lr=1e-3), ExperimentConfig(lr=1e-4)
    assert a.method_name() == b.method_name()

    def rows(cfg, value):
        return pd.DataFrame({"dataset": "bp4d", "task": "occurrence", "method": cfg.method_name(), "fold": 1,
                             "au": [1, 2], "metric": "f1", "seed": 0, "value": value,
                             "config_hash": cfg.config_hash()})

    store.add_rows(rows(a, 0.1))
    store.add_rows(rows(b, 0.2))
    assert len(store.load()) == 4
    store.add_rows(rows(a, 0.3))
    got = store.load().groupby("config_hash")["value"].first()
    assert got[a.config_hash()] == pytest.approx(0.3) and got[b.config_hash()] == pytest.approx(0.2)


def test_duplicate_rule_is_a_checked_setting_of_the_identity():
    base = ExperimentConfig(duplicate_aus=[1, 2])
    assert base.replace(duplicate_rule="per_au").config_hash() != base.config_hash()
    assert ExperimentConfig().replace(duplicate_rule="frame").config_hash() == ExperimentConfig().config_hash()
    with pytest.raises(ValueError, match="duplicate_rule"):
        ExperimentConfig(duplicate_rule="twice")


def test_training_version_is_part_of_every_identity(monkeypatch):
    """Runs made before TRAINING_VERSION 2 drew augmentation from the global RNG; a new version
    gives every config a new identity, so those runs are never reused for the new code."""
    from renet_core.engine import identity

    cfg = ExperimentConfig()
    before = identity.run_identity(cfg)
    monkeypatch.setattr(identity, "TRAINING_VERSION", identity.TRAINING_VERSION + 1)
    assert identity.run_identity(cfg) != before


def test_committed_tables_keep_their_run_identities():
    """The configs every committed demo table is built from have the run identities of the runs in
    ``results/demo_runs.csv``: a refactoring that changed a number would change an identity, and
    the committed tables would no longer be selected."""
    from pathlib import Path

    from renet_core import study

    committed = pd.read_csv(Path(__file__).resolve().parents[2] / "results" / "demo_runs.csv")
    known = set(committed["config_hash"].astype(str))
    for name, spec in study.TABLES.items():
        for key, configs in study.spec_configs(spec, "demo").items():
            for cfg in configs:
                assert cfg.config_hash() in known, (name, key, cfg.fold)
