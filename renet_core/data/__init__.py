"""Data layer: BP4D, DISFA and BP4D+ as distributed -> aligned crops -> torch Dataset.

Paper sections 4.1 (data, folds), 4.3 (256x256 alignment, 224 crops, flip) and 4.6 (duplication
of rare-AU frames). Choices the paper leaves open are documented in docs/reproduction-notes.md,
section "Data layer".
"""

from renet_core.data.cache import load_manifest, prepare
from renet_core.data.folds import FOLDS, split
from renet_core.data.index import describe_source, load_index
from renet_core.data.labels import DETECTION_AUS, INTENSITY_AUS

__all__ = ["load_index", "FOLDS", "split", "prepare", "AUDataset", "describe_source",
           "load_manifest", "DETECTION_AUS", "INTENSITY_AUS"]


def __getattr__(name):
    if name == "AUDataset":
        from renet_core.data.dataset import AUDataset  # lazy: torch, only when the Dataset is used
        return AUDataset
    raise AttributeError(name)
