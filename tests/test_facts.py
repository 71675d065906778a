"""Claims: each fact of the study is defined once, and every other place uses that definition."""

import inspect

from renet_core.data import labels
from renet_core.data.layout import SYNTH_MARKER


def test_bp4d_au_list_is_the_data_layers():
    from renet_core.model import speed as bench_model
    from renet_core.synth import layouts

    assert bench_model.BP4D_AUS is labels.BP4D_AUS
    assert layouts.BP4D_AUS is labels.BP4D_AUS
    assert labels.DETECTION_AUS["bp4d"] is labels.BP4D_AUS
    assert not hasattr(layouts, "BP4D_12")


def test_synthau_marker_is_the_data_layers():
    import renet_core.synth as synth
    from renet_core.engine import splits

    assert synth.MARKER is SYNTH_MARKER
    assert '"SYNTHAU.json"' not in inspect.getsource(splits.synth_twin)


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def test_drawing_defaults_are_the_datasets_knobs():
    from renet_core.synth import aus, defaults, face, render
    from renet_core.synth.render import Knobs

    k = Knobs()
    knobs = (k.subtlety, k.noise, k.pose, k.identity_spread, k.blur, k.jpeg_quality, k.time_scale)
    assert knobs == (
        defaults.SUBTLETY, defaults.NOISE, defaults.POSE, defaults.IDENTITY_SPREAD, defaults.BLUR,
        defaults.JPEG_QUALITY, defaults.TIME_SCALE)
    assert _default(face.render_face, "subtlety") == k.subtlety
    assert _default(face.render_face, "noise") == k.noise
    assert _default(face.render_face, "blur") == k.blur
    assert _default(face.sample_identity, "identity_spread") == k.identity_spread
    assert _default(aus.displaced_landmarks, "subtlety") == k.subtlety
    assert _default(aus.intensity_gain, "subtlety") == k.subtlety
    assert _default(render.encode_jpeg, "quality") == k.jpeg_quality


def test_writer_passes_every_knob_explicitly():
    """The dataset's pixels depend on Knobs only, never on a drawing function's default."""
    from renet_core.synth import layouts, render

    src = inspect.getsource(render.render_sequence)
    for knob in ("subtlety", "noise", "blur"):
        assert f"{knob}=knobs.{knob}" in src
    assert "knobs.identity_spread" in inspect.getsource(render.identity_for)
    assert inspect.getsource(layouts).count("encode_jpeg(img, knobs.jpeg_quality)") == \
        inspect.getsource(layouts).count("encode_jpeg(")


def _sources():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "renet_core"
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*.py")}


def _written_in(pattern: str) -> list[str]:
    import re

    return sorted(name for name, text in _sources().items() if re.search(pattern, text))


def test_rare_aus_fig3_aus_and_always_positive_f1_are_written_once():
    from renet_core.study import claims, tables

    assert _written_in(r"[\[(]1, 2, 15, 23, 24[\])]") == ["data/labels.py"]
    assert tables.DUPLICATED_AUS == list(labels.RARE_AUS)
    assert {c.aus for c in claims.CLAIMS if c.table == "table8"} == {labels.RARE_AUS}
    assert _written_in(r"[\[(]4, 10, 12, 24[\])]") == ["study/tables.py"]
    assert _written_in(r"2 \* p / \(1 \+ p\)") == ["base/metrics.py"]


def test_profile_names_and_set_parsing_are_defined_once():
    from renet_core.engine.profiles import PROFILE_NAMES, PROFILES

    assert PROFILE_NAMES == tuple(PROFILES)
    assert _written_in(r"\(\"smoke\", \"demo\", \"paper\"\)") == []
    assert _written_in(r"--set expects KEY=VALUE") == ["cli/main.py"]
    assert _written_in(r"yaml\.safe_load\(value\)") == ["cli/main.py"]


def test_profile_decisions_live_in_the_profiles_module():
    """What a profile decides (budgets, parity, folds, efficiency, dynamics) is data in one place."""
    for name in ("PARITY_STEPS", "COMPARISON_BUDGET", "DEFAULT_FOLDS", "EFFICIENCY", "BUDGETS"):
        assert _written_in(rf"\b{name}\s*[:=]") == [], name
