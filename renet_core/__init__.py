"""RE-Net: relation-embedded AU-conditioned ResNet-18 (Yang & Yin, ACCV 2020)."""

__version__ = "0.1.0"
