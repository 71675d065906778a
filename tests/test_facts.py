"""Claims: each fact of the study is defined once, and every other place uses that definition."""

import inspect

from renet_core.data import labels
from renet_core.data.layout import SYNTH_MARKER


def test_bp4d_au_list_is_the_data_layers():
    from renet_core.bench import model as bench_model
    from renet_core.synth import layouts

    assert bench_model.BP4D_AUS is labels.BP4D_AUS
    assert layouts.BP4D_AUS is labels.BP4D_AUS
    assert labels.DETECTION_AUS["bp4d"] is labels.BP4D_AUS
    assert not hasattr(layouts, "BP4D_12")


def test_synthau_marker_is_the_data_layers():
    import renet_core.synth as synth
    from renet_core import experiment

    assert synth.MARKER is SYNTH_MARKER
    assert '"SYNTHAU.json"' not in inspect.getsource(experiment.synth_twin)


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
