"""Progress bars that a user sees where they help and never as a warning box in a notebook.

On a terminal: tqdm bars. Elsewhere (a Jupyter or papermill kernel, a log file): no bar; the
callers print one line per finished unit instead (an epoch, a run), which JupyterLab shows as
plain output. ``tqdm.auto`` would need the ipywidgets library inside a kernel and otherwise
prints "IProgress not found" to stderr, a red box in every saved notebook.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal (where a bar redraws in place)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def bar(iterable=None, disable: bool = False, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; a silent pass-through elsewhere."""
    return tqdm(iterable, disable=disable or not on_terminal(), **kwargs)


def say(message: str) -> None:
    """One line of progress, printed so that a running bar is not broken (stdout)."""
    tqdm.write(message, file=sys.stdout)
