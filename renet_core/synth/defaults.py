"""SynthAU's default difficulty and format: the one definition of these values (synthetic data).

:class:`~renet_core.synth.render.Knobs` takes its defaults from here, and so do the drawing
functions (:func:`~renet_core.synth.face.render_face`,
:func:`~renet_core.synth.face.sample_identity`, :func:`~renet_core.synth.aus.displaced_landmarks`,
:func:`~renet_core.synth.render.encode_jpeg`),
so a face drawn with their defaults (notebook 00's montage) looks like the dataset's faces. The
writer passes every knob explicitly, so these constants change the written datasets only through
``Knobs``. What each knob means: see ``Knobs``. This module imports nothing (no import cycles).

The values were set by measurement (docs/reproduction-notes.md, SynthAU difficulty): with the
first ones (subtlety 0.5, noise 4.0, pose 1.0, identity spread 1.0) a ResNet-18 trained from
scratch in the CPU demo did not generalise across subjects.
"""

SUBTLETY = 0.0          # AU displacement ~ (intensity/5) ** (1 + SUBTLETY); 0 = linear
NOISE = 2.0             # sensor noise standard deviation, grey levels (0-255), before JPEG
POSE = 0.5              # scale of head-pose variation
IDENTITY_SPREAD = 0.5   # scale of between-subject variation of shape and appearance
BLUR = 0.6              # Gaussian blur sigma, pixels
JPEG_QUALITY = 90
TIME_SCALE = 1.0        # stretches expression episodes
COUPLING = 1.0          # how strongly AUs co-occur: 0 independent, 1 the prototypes, > 1 stronger

#: Named SynthAU settings: the knobs each adds to the defaults (``ExperimentConfig.synth_setting``).
#: "control" is the premise experiment's positive control (docs/reproduction-notes.md, "The premise
#: experiment"): AU2 and AU23 drawn at a quarter of their pixel effect, while their strongest
#: label partners (AU1; AU24 and AU17) stay fully visible.
SETTINGS = {"default": {}, "control": {"faint_aus": (2, 23), "faint_gain": 0.25}}
