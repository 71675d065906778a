"""The lock file (issue 32): requirements.lock is what the environment scripts install by default,
it covers pyproject.toml's dependencies within their ranges, and the environment the tests run in
holds its versions (in CI, a fresh clone's ./run_tests.sh builds it from the lock)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
SCRIPT = REPO / "tools" / "ensure_venv.sh"


def locked() -> dict[str, tuple[str, Requirement]]:
    """``{canonical name: (version, requirement)}`` of every pin in the lock (all platforms)."""
    text = LOCK.read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(" ".join(part for part in line.split() if not part.startswith("--hash")))
        (spec,) = req.specifier
        assert spec.operator == "==", f"requirements.lock: {line!r} is not an exact pin"
        out[canonicalize_name(req.name)] = (spec.version, req)
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def _made_unlocked() -> bool:
    stamp = Path(sys.prefix) / ".renet-installed"
    return stamp.is_file() and stamp.read_text().startswith("unlocked")


def test_every_pin_is_exact_and_hashed():
    pins = locked()
    assert len(pins) > 50
    text = LOCK.read_text()
    assert sum(line[:1].isalnum() for line in text.splitlines()) == len(pins)   # one pin a line
    assert text.count("--hash=sha256:") >= len(pins)


def test_lock_covers_pyproject_within_its_ranges():
    pins = locked()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run tools/lock.sh"
        assert req.specifier.contains(pins[name][0]), f"locked {req.name}=={pins[name][0]} is outside {req}"


@pytest.mark.skipif(_made_unlocked(), reason="environment installed with RENET_UNLOCKED=1 (pyproject ranges)")
@pytest.mark.parametrize("name", ["torch", "torchvision", "numpy"])
def test_running_environment_has_the_locked_version(name):
    assert metadata.version(name).split("+")[0] == locked()[name][0], \
        f"{name} {metadata.version(name)} installed, {locked()[name][0]} locked: the environment is not the lock's"


@pytest.mark.skipif(_made_unlocked(), reason="environment installed with RENET_UNLOCKED=1 (pyproject ranges)")
def test_every_locked_package_of_this_platform_is_installed_at_its_version():
    differ = []
    for name, (version, req) in locked().items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have.split("+")[0] != version:
            differ.append(f"{name}: {have} installed, {version} locked")
    assert not differ, differ


def test_environment_yml_installs_the_lock_on_python_311():
    text = (REPO / "environment.yml").read_text()
    assert "python=3.11" in text and "-r requirements.lock" in text


# ---------------------------------------------------- tools/ensure_venv.sh, with a stand-in python

def _fake_venv(tmp_path: Path, version_ok: bool = True) -> Path:
    """A venv whose python logs its arguments instead of installing anything."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "$@" >> "$FAKE_LOG"\n'
                      f'case "$1" in -c) exit {0 if version_ok else 1};; esac\nexit 0\n')
    python.chmod(0o755)
    return venv


def _source(venv: Path, log: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "RENET_UNLOCKED"}
    environ.update(RENET_VENV=str(venv), FAKE_LOG=str(log), **env)
    return subprocess.run(["bash", "-c", f'source "{SCRIPT}" && echo "PY=$PY"'], capture_output=True, text=True,
                          env=environ, timeout=60)


def test_ensure_venv_installs_the_lock_by_default_then_only_when_it_changes(tmp_path):
    venv, log = _fake_venv(tmp_path), tmp_path / "log"
    proc = _source(venv, log)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert f"-m pip install --quiet -r {LOCK}" in calls
    assert f"-m pip install --quiet --no-deps -e {REPO}" in calls
    assert not any("[dev]" in c or "torch>=" in c for c in calls), calls   # not the ranges
    assert (venv / ".renet-installed").read_text().startswith("locked ")
    assert f"PY={venv}/bin/python" in proc.stdout
    log.write_text("")
    assert _source(venv, log).returncode == 0 and log.read_text() == ""   # up to date: nothing installed
    stamp = venv / ".renet-installed"
    os.utime(stamp, (stamp.stat().st_atime, LOCK.stat().st_mtime - 10))   # the lock is newer than the stamp
    assert _source(venv, log).returncode == 0 and f"-r {LOCK}" in log.read_text()


def test_ensure_venv_unlocked_installs_the_ranges_and_a_switch_reinstalls(tmp_path):
    venv, log = _fake_venv(tmp_path), tmp_path / "log"
    assert _source(venv, log, RENET_UNLOCKED="1").returncode == 0
    calls = log.read_text()
    assert f"-e {REPO}[dev]" in calls and "requirements.lock" not in calls
    assert (venv / ".renet-installed").read_text().startswith("unlocked")
    log.write_text("")
    assert _source(venv, log).returncode == 0 and f"-r {LOCK}" in log.read_text()   # back to the lock


def test_ensure_venv_refuses_a_python_the_lock_is_not_for(tmp_path):
    venv, log = _fake_venv(tmp_path, version_ok=False), tmp_path / "log"
    proc = _source(venv, log)
    assert proc.returncode != 0 and "requirements.lock is for Python >= 3.11.5" in proc.stderr
    assert "RENET_UNLOCKED=1" in proc.stderr and not (venv / ".renet-installed").exists()
