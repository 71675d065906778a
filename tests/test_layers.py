"""The package's design as a test: layers as folders that import only downward, no import cycle,
imports at the top of modules, no module over 400 lines, every third-party import declared."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "renet_core"
#: Each layer (a folder of renet_core) may import itself and the layers listed before it.
LAYERS = (("base",), ("data",), ("synth",), ("model",), ("engine",), ("study",), ("cli", "runall", "bench", "predict"))
MAX_LINES = 400
MAX_LAZY_IMPORTS = 25
#: Import names whose PyPI distribution has another name.
DISTRIBUTIONS = {"cv2": "opencv-python-headless", "yaml": "pyyaml", "sklearn": "scikit-learn",
                 "dlib": "dlib-bin", "skimage": "scikit-image"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _imported(tree, path):
    """``(module name, top level?)`` of every import of ``renet_core`` or third parties."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.col_offset == 0
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the module's package
                parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[: -node.level]
                name = ".".join(parts + ([node.module] if node.module else []))
            else:
                name = node.module
            yield name, node.col_offset == 0


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "renet_core" or len(parts) < 2:
        return None
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    return None


def _own_module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_layers_import_only_downward():
    wrong = []
    for path, tree in _modules():
        mine = _layer(_own_module(path))
        for name, _ in _imported(tree, path):
            theirs = _layer(name)
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{_own_module(path)} imports {name}")
    assert not wrong, wrong


def test_no_import_cycle_among_modules():
    graph = {}
    known = {_own_module(p) for p in PACKAGE.rglob("*.py")}
    for path, tree in _modules():
        me = _own_module(path)
        targets = set()
        for name, top in _imported(tree, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != me and top:
                targets.add(name)
        graph[me] = targets
    state, cycle = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(nxt_key := node, ())):
            if state.get(nxt) == "open":
                cycle.append(trail + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[nxt_key] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own submodules is not a cycle of the design
    real = [c for c in cycle if not any(a.endswith(".__init__") or b.startswith(a + ".")
                                        for a, b in zip(c, c[1:]))]
    assert not real, real


def test_modules_are_short_and_import_at_the_top():
    long = [f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long
    lazy = [f"{_own_module(p)}: {name}" for p, tree in _modules() for name, top in _imported(tree, p) if not top]
    assert len(lazy) <= MAX_LAZY_IMPORTS, lazy


def test_every_lazy_import_says_why():
    unexplained = []
    for path, tree in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset > 0:
                line = lines[node.lineno - 1]
                before = lines[node.lineno - 2] if node.lineno > 1 else ""
                if "#" not in line and "lazy" not in before and "try:" not in before:
                    unexplained.append(f"{_own_module(path)}:{node.lineno}: {line.strip()}")
    assert not unexplained, unexplained


def test_every_third_party_import_is_declared():
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    block = text[text.index("dependencies = ["):]
    block = block[: block.index("]")]
    declared = {name.lower() for name in re.findall(r'"([A-Za-z0-9_.-]+)', block)}
    stdlib = set(sys.stdlib_module_names)
    missing = set()
    for path, tree in _modules():
        for name, _ in _imported(tree, path):
            top = name.split(".")[0]
            if top in stdlib or top in ("renet_core", "__future__"):
                continue
            if DISTRIBUTIONS.get(top, top).lower() not in declared:
                missing.add(f"{top} ({_own_module(path)})")
    assert not missing, sorted(missing)
