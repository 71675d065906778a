"""Where a run computed: the environment record written beside its results (issue 32).

A run's identity (``renet_core.engine.identity``) says *what* was computed; this record says
*where*: the Python and numerical libraries' versions, torch's build (oneDNN, MKL, CUDA, the CPU
kernels it dispatches to), the device and its name, the processor's model and the instruction-set
features that change floating-point results (AVX-512, avx512_bf16, AMX, ...), torch's thread count,
the precision and the project's commit -- what PyTorch's ``torch.utils.collect_env``, MLflow and
Weights & Biases keep with every run. It is never part of the run identity: the same run made on
two machines keeps one identity and two environments, which is how a difference between machines
is told from a difference in the code (docs/reproduction-notes.md, "Provenance").

:func:`environment_key` is a short hash of the fields that change the arithmetic (not the commit
or the time), so that tables can say which runs share an environment and which do not.
:func:`write_environment` / :func:`read_environment` keep the record as ``<run dir>/environment.json``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as metadata
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import torch

from renet_core.base.device import pick_device
from renet_core.base.io import TIME_FORMAT, write_text_atomic

FILE_NAME = "environment.json"
SCHEMA = 1

#: Distributions whose versions are recorded (name in the record -> distributions to try).
LIBRARIES = {"torch": ("torch",), "torchvision": ("torchvision",), "numpy": ("numpy",), "scipy": ("scipy",),
             "pandas": ("pandas",), "scikit-learn": ("scikit-learn",),
             "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python")}

#: Instruction-set features that change which kernels torch, oneDNN and MKL run, and so the
#: rounding of sums and products (x86 names as /proc/cpuinfo's "flags", Arm's as its "Features").
ARITHMETIC_FLAGS = ("sse4_2", "avx", "fma", "f16c", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
                    "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm", "sme")

#: The fields of :func:`environment_key`: everything that can change a number, nothing that
#: cannot (the commit, the time, the dirty flag).
KEY_FIELDS = ("python", *LIBRARIES, "onednn", "mkl", "torch_cuda", "cudnn", "cpu_capability", "device",
              "device_name", "processor", "cpu_id", "isa_flags", "threads", "precision")

#: What decides the numbers, for the dirty flag: code, notebooks, configs and the lock (never
#: results/, figures/ or docs, which run_all itself rewrites while runs go on).
CODE_PATHS = ("renet_core", "notebooks", "tools", "pyproject.toml", "requirements.lock", "run_all.sh",
              ":(glob)**/*.yaml", ":(glob)**/*.yml")

REPO = Path(__file__).resolve().parents[2]


def environment_record(device=None, threads: int | None = None, precision: str | None = None) -> dict:
    """The environment of a run about to compute on ``device`` (a ``torch.device`` or its name;
    ``None``: :func:`renet_core.base.device.pick_device`'s choice) with ``threads`` torch threads
    (``None``: ``torch.get_num_threads()``) at ``precision`` (e.g. "float32", "bf16 autocast";
    recorded as given). Every field is present; one that cannot be read is ``None``."""
    dev = pick_device(None if device is None else str(device))
    record = {"schema": SCHEMA, "recorded": time.strftime(TIME_FORMAT)}
    record.update(_static())
    record.update(device=dev.type, device_name=_device_name(dev, record["processor"]),
                  threads=int(threads if threads is not None else torch.get_num_threads()),
                  precision=None if precision is None else str(precision))
    record.update(git_state())
    return record


def environment_key(record: dict) -> str:
    """``env-`` and 10 hex digits: a hash of the record's :data:`KEY_FIELDS` (versions, torch's
    build, processor, instruction-set flags, device, threads, precision), stable across Python
    sessions and independent of the commit and the time. Two runs with one key computed with the
    same arithmetic; a record that lacks a key field hashes it as ``None``."""
    fields = {name: record.get(name) for name in KEY_FIELDS}
    text = json.dumps(fields, sort_keys=True, default=str)
    return "env-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def write_environment(run_dir: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` to ``<run_dir>/environment.json`` atomically, with its key; return the path."""
    record = dict(record, key=environment_key(record))
    return write_text_atomic(Path(run_dir) / FILE_NAME, json.dumps(record, indent=2, sort_keys=True, default=str))


def read_environment(run_dir: str | os.PathLike) -> dict | None:
    """The record in ``<run_dir>/environment.json`` (its ``key`` recomputed from its fields), or
    ``None`` when the run has none (made before environments were recorded). A file that is not
    a JSON object is an error naming it."""
    path = Path(run_dir) / FILE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable environment record ({exc}); expected the JSON object "
                         "renet_core.base.environment.write_environment writes") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object (an environment record), got {type(record).__name__}")
    return dict(record, key=environment_key(record))


def describe_environment(record: dict | None) -> str:
    """One line for a reader: "env-3f... : Intel(R) Xeon(R) ... (avx512_bf16 amx_bf16 ...),
    torch 2.14.1, cpu, 2 threads, float32"; "environment not recorded" for ``None``."""
    if record is None:
        return "environment not recorded"
    flags = record.get("isa_flags") or "no listed ISA flags"
    where = record.get("device", "?")
    if record.get("device") != "cpu" and record.get("device_name"):
        where += f" ({record['device_name']})"
    return (f"{record.get('key') or environment_key(record)}: {record.get('processor')} ({flags}), "
            f"torch {record.get('torch')}, {where}, {record.get('threads')} threads, "
            f"{record.get('precision') or 'precision not given'}")


# ------------------------------------------------------------------------------------ readers

@functools.lru_cache(maxsize=1)
def _static() -> dict:
    """The fields that do not change while a process lives (read once)."""
    out = {"python": platform.python_version()}
    out.update({name: _version(dists) for name, dists in LIBRARIES.items()})
    out.update(torch_build())
    processor, cpu_id, flags = cpu_info()
    out.update(processor=processor, cpu_id=cpu_id, isa_flags=" ".join(f for f in ARITHMETIC_FLAGS if f in flags),
               machine=platform.machine(), os=platform.platform())
    return out


def _version(dists) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def torch_build() -> dict:
    """torch's build: the oneDNN and MKL versions it was built with (from ``torch.__config__.show()``),
    its CUDA and cuDNN versions (``None`` for a CPU build) and the CPU kernels it dispatches to
    (``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", "DEFAULT", ...)."""
    try:
        shown = torch.__config__.show()
    except Exception:  # noqa: BLE001 - a build that cannot describe itself still computes
        shown = ""
    onednn = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([0-9][0-9.]*)", shown)
    mkl = re.search(r"Math Kernel Library Version ([0-9][0-9.]*)", shown)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"onednn": onednn.group(1) if onednn else None, "mkl": mkl.group(1) if mkl else None,
            "torch_cuda": torch.version.cuda, "cudnn": cudnn, "cpu_capability": capability}


def cpu_info(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> tuple[str, str | None, set[str]]:
    """``(model name, "vendor family F model M stepping S", flags)`` of the first processor in
    ``cpuinfo`` (Linux; Arm's "Features" are its flags); elsewhere the model from
    ``sysctl machdep.cpu.brand_string`` (macOS) or :mod:`platform`, and no flags."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("cpu model") or _sysctl_brand() or platform.processor() \
        or platform.machine() or "unknown processor"
    parts = [fields.get(k) for k in ("vendor_id", "cpu family", "model", "stepping")]
    if fields.get("cpu implementer"):   # Arm
        parts = [fields.get(k) for k in ("cpu implementer", "cpu architecture", "cpu part", "cpu revision")]
    cpu_id = None
    if any(parts):
        labels = ("", "family ", "model ", "stepping ") if not fields.get("cpu implementer") else \
            ("implementer ", "architecture ", "part ", "revision ")
        cpu_id = " ".join(f"{label}{value}" for label, value in zip(labels, parts) if value)
    return model, cpu_id, flags


def _sysctl_brand() -> str | None:
    if platform.system() != "Darwin":
        return None
    try:
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                              check=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _device_name(dev: torch.device, processor: str) -> str:
    if dev.type == "cuda":
        try:
            return torch.cuda.get_device_name(dev)
        except (RuntimeError, AssertionError) as exc:
            return f"unknown CUDA device ({exc})"
    if dev.type == "mps":
        return f"Apple MPS ({processor})"
    return processor


def git_state(repo: str | os.PathLike = REPO) -> dict:
    """``{"commit": <sha>, "dirty": bool}`` of the checkout the package runs from; dirty when a
    tracked file of :data:`CODE_PATHS` differs from the commit. ``None`` for both outside a git
    checkout or without git (an installed wheel), never an error."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True,
                             timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               cwd=repo, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": bool(dirty)}
