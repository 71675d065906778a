"""Layer 2, the model: RE-Net (Eq. 3-5) and the ResNet-18 baseline, their relation graph,
initialisation from a torchvision ResNet-18 and checkpoints. Imports only the base layer."""

from renet_core.model.checkpoint import (
                                         CHECKPOINT_FORMAT,
                                         MODEL_SETTINGS,
                                         checkpoint_settings,
                                         load_checkpoint,
                                         read_checkpoint,
                                         save_checkpoint,
)
from renet_core.model.networks import FEATURE_DIM, HEADS, KINDS, TASKS, AUHead, RENet, ResNet18Baseline, build_model
from renet_core.model.norm import ALL_AUS, AUBatchNorm2d
from renet_core.model.relation import RelationGraph, pearson_relation

__all__ = ["AUBatchNorm2d", "AUHead", "RENet", "ResNet18Baseline", "RelationGraph", "build_model", "pearson_relation",
           "save_checkpoint", "read_checkpoint", "load_checkpoint", "checkpoint_settings", "MODEL_SETTINGS",
           "CHECKPOINT_FORMAT", "FEATURE_DIM", "HEADS", "KINDS", "TASKS", "ALL_AUS"]
