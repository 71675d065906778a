"""SynthAU's label-structure settings for the premise experiment (issue 24): the coupling knob
(0 independent AUs, 1 today's prototypes, above 1 stronger co-occurrence, rates held) and the
positive control, each part of a dataset's identity only when not at its default."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest

from renet_core.data import describe_source, load_index
from renet_core.data.labels import BP4D_AUS
from renet_core.engine import ExperimentConfig
from renet_core.engine.splits import synth_twin
from renet_core.synth import MARKER, SETTINGS, Knobs, sample_labels, setting_knobs, variant_tag
from renet_core.synth.aus import AU_INDEX
from renet_core.synth.labels import TARGET_RATES

#: Hashes of ``sample_labels(layout, "demo", 0)`` computed with the code of branch main before
#: the coupling knob existed (commit acc7740): the default must keep these labels bit for bit.
DEFAULT_LABELS = {"bp4d": "f8bea7ec807a9642", "disfa": "276803d4ed3ee244", "bp4dplus": "e8a05021ad0f4538"}
#: Every coupling level the premise experiment offers (and two more).
LEVELS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0)


def _label_hash(df) -> str:
    h = hashlib.sha256()
    h.update("|".join(df["subject"].astype(str) + "/" + df["task"].astype(str)).encode())
    h.update(df["frame"].to_numpy(np.int64).tobytes())
    cols = [c for c in df.columns if c.startswith("AU")]
    h.update(",".join(cols).encode())
    h.update(np.ascontiguousarray(df[cols].to_numpy(np.int8)).tobytes())
    return h.hexdigest()[:16]


def _mean_abs_pcc(df) -> float:
    corr = np.corrcoef(df[[f"AU{a}" for a in BP4D_AUS]].to_numpy(float).T)
    return float(np.abs(corr[~np.eye(len(BP4D_AUS), dtype=bool)]).mean())


@pytest.fixture(scope="module")
def demo_labels():
    return {c: sample_labels("bp4d", "demo", 0, coupling=c) for c in LEVELS}


@pytest.mark.parametrize("layout", sorted(DEFAULT_LABELS))
def test_the_default_labels_are_bit_identical_to_before_the_knob(layout):
    assert _label_hash(sample_labels(layout, "demo", 0)) == DEFAULT_LABELS[layout]
    assert _label_hash(sample_labels(layout, "demo", 0, coupling=1.0)) == DEFAULT_LABELS[layout]


def test_coupling_zero_makes_the_aus_independent(demo_labels):
    assert _mean_abs_pcc(demo_labels[0.0]) < 0.05


def test_coupling_orders_the_correlation_strength(demo_labels):
    strength = [_mean_abs_pcc(demo_labels[c]) for c in LEVELS]
    assert strength == sorted(strength), dict(zip(LEVELS, strength))
    assert strength[LEVELS.index(2.0)] > 0.15


@pytest.mark.parametrize("coupling", LEVELS)
def test_every_level_keeps_each_rate_at_its_target(demo_labels, coupling):
    df = demo_labels[coupling]
    off = {au: 100 * abs(df[f"AU{au}"].mean() - rate) for au, rate in TARGET_RATES["bp4d"].items()}
    assert max(off.values()) < 2.0, off


def test_coupling_is_checked():
    with pytest.raises(ValueError, match="coupling"):
        sample_labels("bp4d", "smoke", 0, coupling=-0.5)
    with pytest.raises(ValueError, match="synth_coupling"):
        ExperimentConfig(synth_coupling=-1)
    with pytest.raises(ValueError, match="synth_setting"):
        ExperimentConfig(synth_setting="harder")


def test_only_a_non_default_setting_enters_the_identity():
    assert variant_tag() == variant_tag(1.0, "default") == "" and setting_knobs() == {}
    assert variant_tag(0.5) == "-coupling0.5" and variant_tag(2.0, "control") == "-coupling2-control"
    base = ExperimentConfig()
    assert base.data_identity().endswith(f"-seed0-v{_version()}")
    same = ExperimentConfig(synth_coupling=1.0, synth_setting="default")
    assert same.config_hash() == base.config_hash() and same.data_identity() == base.data_identity()
    ids = {ExperimentConfig(synth_coupling=c, synth_setting=s).data_identity()
           for c in (0.0, 0.5, 1.0, 2.0) for s in SETTINGS}
    assert len(ids) == 4 * len(SETTINGS)
    assert ExperimentConfig(synth_coupling=0.5).data_identity() == base.data_identity() + "-coupling0.5"


def _version():
    from renet_core.synth import GENERATOR_VERSION

    return GENERATOR_VERSION


def test_a_non_default_twin_is_its_own_folder_and_marker(tmp_path):
    default = synth_twin("bp4d", "smoke", 0, tmp_path)
    coupled = synth_twin("bp4d", "smoke", 0, tmp_path, coupling=0.5)
    control = synth_twin("bp4d", "smoke", 0, tmp_path, coupling=2.0, setting="control")
    assert default.name == f"bp4d-smoke-seed0-v{_version()}"
    assert coupled.name == default.name + "-coupling0.5" and control.name == default.name + "-coupling2-control"
    knobs = {p.name: json.loads((p / MARKER).read_text())["knobs"] for p in (default, coupled, control)}
    assert not {"coupling", "faint_aus", "faint_gain"} & set(knobs[default.name])   # the marker of before
    assert knobs[coupled.name]["coupling"] == 0.5 and "faint_aus" not in knobs[coupled.name]
    assert knobs[control.name]["faint_aus"] == list(SETTINGS["control"]["faint_aus"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the layout quirks SynthAU plants
        sources = {p.name: describe_source(load_index("bp4d", p)) for p in (default, coupled, control)}
    assert sources[default.name] == "SynthAU smoke, BP4D layout (synthetic)"       # as before
    assert "coupling 0.5" in sources[coupled.name] and "faint AU2+AU23" in sources[control.name]
    occ = sorted((coupled / "AUCoding" / "AU_OCC").glob("*.csv"))
    assert occ and any((coupled / "AUCoding" / "AU_OCC" / p.name).read_bytes()
                       != (default / "AUCoding" / "AU_OCC" / p.name).read_bytes() for p in occ)


def test_the_control_draws_its_faint_aus_weaker_and_nothing_else(demo_labels):
    faint = Knobs(**setting_knobs("control"))
    assert faint.faint_aus and 0 < faint.faint_gain < 1
    amplitudes = np.full((3, len(AU_INDEX)), 4.0)
    drawn = faint.pixel_amplitudes(amplitudes)
    for au, i in AU_INDEX.items():
        expected = 4.0 * faint.faint_gain if au in faint.faint_aus else 4.0
        assert np.allclose(drawn[:, i], expected), au
    assert Knobs().pixel_amplitudes(amplitudes) is amplitudes
    with pytest.raises(ValueError, match="faint_aus"):
        Knobs(faint_aus=(3,))
    # the faint AUs are BP4D's (evaluated), and at the control's coupling (2) each has a fully
    # visible partner it co-occurs with strongly
    assert set(faint.faint_aus) <= set(BP4D_AUS)
    corr = demo_labels[2.0][[f"AU{a}" for a in BP4D_AUS]].corr()
    for au in faint.faint_aus:
        partners = corr[f"AU{au}"].drop([f"AU{a}" for a in faint.faint_aus])
        assert partners.max() > 0.45, (au, partners.round(2).to_dict())
