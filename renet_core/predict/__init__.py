"""Prediction on a user's own faces (issue 34): ``python -m renet_core predict INPUT... --run RUN``.

* :func:`predict`: images, folders of images and videos in, a pandas table out (one row per frame
  and face, OpenFace 2.0's columns), faces aligned as the run's training crops were;
* :func:`plot_au_series`: the AU time series of one input;
* :class:`FaceDetector` (the interface) and :class:`DlibDetector` (the default: dlib's HOG detector
  and 68-point shape predictor, shipped by registry packages); ``landmarks=FILE`` (an OpenFace 2.0
  CSV) replaces the detector.
"""

from renet_core.predict.api import ID_COLUMNS, SYNTHETIC_NOTE, au_columns, predict
from renet_core.predict.detect import IDX49, Detection, DlibDetector, FaceDetector, points49
from renet_core.predict.frames import PredictInputError
from renet_core.predict.landmarks import LandmarkFileError, read_openface_csv, write_openface_csv
from renet_core.predict.model import LoadedRun, load_run
from renet_core.predict.plot import plot_au_series

__all__ = ["predict", "plot_au_series", "load_run", "LoadedRun", "FaceDetector", "DlibDetector", "Detection",
           "points49", "IDX49", "PredictInputError", "LandmarkFileError", "read_openface_csv",
           "write_openface_csv", "au_columns", "ID_COLUMNS", "SYNTHETIC_NOTE"]
