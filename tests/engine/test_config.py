"""ExperimentConfig: typed and checked on construction, and built one way (``ExperimentConfig.build``)
by the CLI, the notebooks and the tests -- profile < YAML < overrides, the data decided once.

Every test runs with the dataset variables unset and ``$RENET_CACHE`` in a temporary folder,
so a developer's own ``$RENET_BP4D`` never leaks in.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from renet_core.cli.main import _print_rows, build_config, main, parse_args
from renet_core.data import labels
from renet_core.engine import ROOT_ENV, ExperimentConfig
from renet_core.engine.profiles import get_profile

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ROOT_ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def bp4d_copy(monkeypatch, tmp_path):
    """A folder standing in for a licensed BP4D copy, named by $RENET_BP4D (never read here)."""
    root = tmp_path / "BP4D"
    root.mkdir()
    monkeypatch.setenv("RENET_BP4D", str(root))
    return str(root)


# -- typing ---------------------------------------------------------------------------------

def test_numbers_and_integers_are_coerced_from_strings(tmp_path):
    assert yaml.safe_load("lr: 1e-4")["lr"] == "1e-4"      # PyYAML's reading, the reason for this
    cfg = ExperimentConfig(lr="1e-4", epochs="3", batch_size="8", threshold="0.4", steps_per_epoch="5",
                           au_lr_scale="2", progress="false")
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.threshold, cfg.steps_per_epoch, cfg.au_lr_scale,
            cfg.progress) == (1e-4, 3, 8, 0.4, 5, 2.0, False)
    assert type(cfg.lr) is float and type(cfg.epochs) is int and type(cfg.steps_per_epoch) is int
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-4\nepochs: '4'\n")
    loaded = ExperimentConfig.from_yaml(path)
    assert (loaded.lr, loaded.epochs) == (1e-4, 4)
    assert build_config(parse_args(["train", "--set", "lr=1e-4", "--set", "aus=[1, 2]"])).lr == 1e-4
    assert ExperimentConfig(au_lr_scale="C").au_lr_scale == "C"
    assert ExperimentConfig(aus="1, 2").aus == [1, 2]      # a comma list is read as a list


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", 0, "integer >= 1"), ("epochs", -1, "integer >= 1"), ("epochs", "abc", "an integer"),
    ("epochs", 2.5, "an integer"), ("epochs", True, "an integer"),
    ("threshold", 0, "0 < threshold < 1"), ("threshold", 1, "0 < threshold < 1"),
    ("threshold", "abc", "a number"),
    ("batch_size", 0, "integer >= 1"), ("lr", 0, "number > 0"), ("lr", "-1e-4", "number > 0"),
    ("lr", "nan", "number > 0"), ("patience", 0, "integer >= 1"), ("steps_per_epoch", 0, "integer >= 1"),
    ("aus", 12, "a list of distinct AU numbers"), ("aus", [1, 1], "a list of distinct AU numbers"),
    ("holdout_aus", None, "list[int]"), ("au_lr_scale", 0, "a positive number or 'C'"),
    ("au_lr_scale", "x", "a positive number or 'C'"), ("fold", 4, "(1, 2, 3)"),
    ("model", "vgg", "one of"), ("image_size", 0, "integer >= 8"), ("device", 0, "text"),
])
def test_each_bad_value_is_refused_naming_field_value_and_expectation(field, value, expected):
    with pytest.raises(ValueError) as info:
        ExperimentConfig(**{field: value})
    message = str(info.value)
    assert f"{field}=" in message and expected in message
    try:                        # the value as given, or as the number it was read as
        as_number = str(float(value))
    except (TypeError, ValueError):
        as_number = None
    assert repr(value) in message or (as_number and as_number in message)


def test_valid_edge_values_pass():
    cfg = ExperimentConfig(epochs=1, threshold=0.01, batch_size=1, patience=1, steps_per_epoch=None,
                           val_fraction=0, save_features=0)
    assert (cfg.epochs, cfg.steps_per_epoch) == (1, None)


def test_au_lists_are_checked_against_the_datasets_labelled_aus():
    with pytest.raises(ValueError, match="aus") as info:
        ExperimentConfig(aus=[1, 99])
    assert "AU99" in str(info.value) and str(labels.BP4D_AUS) in str(info.value)
    with pytest.raises(ValueError, match="duplicate_aus") as info:
        ExperimentConfig(duplicate_aus=[99])
    assert "AU99" in str(info.value) and str(labels.BP4D_AUS) in str(info.value)
    with pytest.raises(ValueError) as info:     # AU7 is a BP4D AU, not a DISFA one
        ExperimentConfig(dataset="disfa", aus=[1, 7])
    assert "AU7" in str(info.value) and str(labels.DISFA_AUS) in str(info.value)
    with pytest.raises(ValueError) as info:     # BP4D has intensities for 5 AUs only
        ExperimentConfig(task="intensity", aus=[1, 12])
    assert "AU1" in str(info.value) and str(labels.BP4D_INTENSITY_AUS) in str(info.value)
    assert ExperimentConfig(dataset="disfa", aus=[5, 20]).aus == [5, 20]   # labelled, beyond the paper's 8
    assert ExperimentConfig(duplicate_aus=[1, 2, 15, 23, 24]).duplicate_aus == [1, 2, 15, 23, 24]


def test_validated_and_replace_keep_working():
    cfg = ExperimentConfig(model="renet")
    assert cfg.validated() is cfg
    assert cfg.replace(lr="3e-4").lr == 3e-4 and cfg.replace(epochs="2").epochs == 2
    with pytest.raises(ValueError, match="epochs=0"):
        cfg.replace(epochs=0)
    with pytest.raises(ValueError, match="unknown config keys"):
        ExperimentConfig.from_dict({"epoch": 3})


def test_bad_config_stops_the_cli_before_any_data_is_prepared(tmp_path):
    cache = tmp_path / "own_cache"
    for bad in ("epochs=0", "threshold=abc", "aus=12", "batch_size=0", "duplicate_aus=[99]", "aus=[1,99]"):
        with pytest.raises(SystemExit, match="bad config") as info:
            main(["train", "--profile", "smoke", "--no-progress", "--set", bad, "--set", f"cache_dir={cache}",
                  "--results-dir", str(tmp_path / "results")])
        assert bad.split("=")[0] in str(info.value)
    assert not cache.exists() and not (tmp_path / "results").exists()
    path = tmp_path / "bad.yaml"
    path.write_text("threshold: abc\n")
    with pytest.raises(ValueError, match="bad.yaml.*threshold='abc'"):
        ExperimentConfig.from_yaml(path)


# -- one builder ---------------------------------------------------------------------------

def test_build_applies_profile_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: disfa\nlr: 0.01\nepochs: 7\nbatch_size: 4\n")
    smoke = get_profile("smoke")
    cfg = ExperimentConfig.build(profile="smoke", yaml=path, epochs=3, batch_size=None, model="resnet18")
    assert cfg.image_size == smoke["image_size"] and cfg.profile == "smoke"     # profile
    assert (cfg.dataset, cfg.lr, cfg.batch_size) == ("disfa", 0.01, 4)          # YAML over profile
    assert (cfg.epochs, cfg.model) == (3, "resnet18")                          # overrides over YAML
    named = tmp_path / "named.yaml"
    named.write_text("profile: smoke\n")
    assert ExperimentConfig.build(yaml=named).image_size == smoke["image_size"]  # the YAML's profile
    assert ExperimentConfig.build().image_size == ExperimentConfig().image_size  # no layer: defaults
    with pytest.raises(ValueError, match="unknown config keys"):
        ExperimentConfig.build(profile="smoke", epoch=3)


def test_build_decides_the_data_one_way(bp4d_copy, tmp_path, monkeypatch):
    cfg = ExperimentConfig.build(profile="smoke")
    assert (cfg.root, cfg.data) == (bp4d_copy, "real")                     # $RENET_BP4D honoured
    other = tmp_path / "other"
    other.mkdir()
    assert ExperimentConfig.build(profile="smoke", root=other).root == str(other)   # explicit root first
    assert ExperimentConfig.build(profile="demo", dataset="disfa").data == "synthetic"  # $RENET_DISFA unset
    monkeypatch.delenv("RENET_BP4D")
    cfg = ExperimentConfig.build(profile="smoke")
    assert (cfg.root, cfg.data) == (None, "synthetic")                     # nothing configured: SynthAU


def test_explicit_synthetic_forces_synthau(bp4d_copy, tmp_path):
    cfg = ExperimentConfig.build(profile="paper", data="synthetic")
    assert (cfg.root, cfg.data) == (None, "synthetic")
    path = tmp_path / "run.yaml"
    path.write_text("data: synthetic\n")
    assert ExperimentConfig.build(profile="smoke", yaml=path).root is None
    assert build_config(parse_args(["train", "--profile", "smoke", "--set", "data=synthetic"])).root is None
    with pytest.raises(ValueError, match="data='synthetic'"):
        ExperimentConfig.build(root=bp4d_copy, data="synthetic")


def test_real_data_asked_for_but_missing(capsys):
    cfg = ExperimentConfig.build(profile="paper")          # the profile asks: SynthAU, one line said
    assert (cfg.root, cfg.data) == (None, "synthetic")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "SynthAU" in out[0] and "NOT a reproduction" in out[0] and "$RENET_BP4D" in out[0]
    with pytest.raises(ValueError, match=r"\$RENET_BP4D"):  # the user asks explicitly: an error
        ExperimentConfig.build(profile="smoke", data="real")


def test_cli_config_path_honours_the_dataset_variable(bp4d_copy):
    for profile in ("smoke", "demo"):
        cfg = build_config(parse_args(["train", "--profile", profile]))
        assert (cfg.root, cfg.data, cfg.profile) == (bp4d_copy, "real", profile)
    assert build_config(parse_args(["train", "--profile", "smoke", "--dataset", "disfa"])).root is None
    paper = build_config(parse_args(["train", "--profile", "paper", "--set", "pretrained=null"]))
    assert paper.pretrained is None and paper.root == bp4d_copy            # --set key=null applies


def test_the_study_uses_the_same_builder(bp4d_copy):
    from renet_core.study import config as notebook_config

    cfg = notebook_config("smoke", "bp4d", model="resnet18", holdout_aus=None)
    assert cfg == ExperimentConfig.build(profile="smoke", dataset="bp4d", model="resnet18")
    assert cfg.root == bp4d_copy


def test_cli_tables_name_their_data(capsys):
    rows = pd.DataFrame([{"dataset": "bp4d", "task": "occurrence", "method": "renet", "fold": 1, "au": au,
                          "metric": "f1", "value": 0.5, "data_source": "SynthAU smoke, BP4D layout (synthetic)",
                          "synthetic": True} for au in (1, 2)])
    _print_rows(rows)
    out = capsys.readouterr().out
    assert "data: SynthAU smoke, BP4D layout (synthetic)" in out and "not a reproduction" in out


# -- where runs go -------------------------------------------------------------------------

def test_default_results_folder_is_in_the_cache_outside_the_repository(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert ExperimentConfig().results_dir == str(cache / "runs" / "default")
    assert ExperimentConfig.build(profile="smoke").results_dir == str(cache / "runs" / "smoke")
    assert build_config(parse_args(["train", "--profile", "demo"])).results_dir == str(cache / "runs" / "demo")
    assert build_config(parse_args(["train", "--results-dir", "here"])).results_dir == "here"
    monkeypatch.delenv("RENET_CACHE")
    default = Path(ExperimentConfig().results_dir).resolve()
    assert default == (Path.home() / ".cache" / "renet_core" / "runs" / "default").resolve()
    assert REPO not in default.parents
