"""Shared fixtures. SynthAU miniature datasets are written once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """``$RENET_CACHE`` for every test that sets none: one folder of this session, so that no
    test writes into the user's ``~/.cache/renet_core`` (prepared crops of a session's SynthAU
    roots, keyed by their temporary paths, were left there by every run and never used again).
    A test that sets its own (``monkeypatch.setenv``) or removes it still does; the user's value,
    when set, is kept."""
    if os.environ.get("RENET_CACHE"):
        yield Path(os.environ["RENET_CACHE"])
        return
    cache = tmp_path_factory.mktemp("renet_cache")
    os.environ["RENET_CACHE"] = str(cache)
    try:
        yield cache
    finally:
        os.environ.pop("RENET_CACHE", None)


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


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """A test's own empty ``$RENET_CACHE`` (``tmp_path/cache``) and no real dataset root: the
    SynthAU twins, written fresh. Modules use it with ``pytestmark = pytest.mark.usefixtures("fresh_cache")``."""
    from renet_core.engine import ROOT_ENV

    for var in ROOT_ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _load_tool(name: str):
    """The script ``tools/<name>.py`` as a module (tools/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_tool():
    """A loader of the scripts in tools/ for a test: ``load_tool("levers")`` is tools/levers.py."""
    return _load_tool
