"""Shared fixtures. SynthAU miniature datasets are written once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synth_roots(tmp_path_factory):
    """Smoke-size SynthAU copies of all three datasets in their real on-disk layouts.

    Returns ``{"bp4d": Path, "disfa": Path, "bp4dplus": Path}``.
    """
    from renet_core.synth import write_dataset

    base = tmp_path_factory.mktemp("synthau")
    roots = {}
    for layout in ("bp4d", "disfa", "bp4dplus"):
        root = base / layout
        write_dataset(layout, root, size="smoke", seed=0)
        roots[layout] = root
    return roots
