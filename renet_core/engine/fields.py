"""Typing a configuration value: numbers, booleans, text and AU lists from what YAML, the CLI's
``--set`` and Python give, each error naming the field, the value and what is expected
(:func:`coerce`, used by :class:`renet_core.engine.config.ExperimentConfig`)."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np


def _number(value, integer: bool):
    """An int or float from a number or its text ("1e-4", "3"); bools are not numbers here."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            value = float(text)
    if not isinstance(value, numbers.Real) or (integer and not float(value).is_integer()):
        raise ValueError
    return int(value) if integer else float(value)


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        raise ValueError
    return text in ("true", "yes", "on", "1")


def _text(value) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise ValueError
    return value


def _au_list(value) -> list[int]:
    if isinstance(value, str):
        text = value.strip().strip("[]").strip()
        value = [part for part in text.split(",") if part.strip()] if text else []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError
    items = [_number(v, True) for v in value]
    if len(set(items)) != len(items):
        raise ValueError
    return items


#: Annotation -> (converter, what is expected): the types ExperimentConfig's fields use.
TYPES = {"bool": (_boolean, "true or false"), "int": (lambda v: _number(v, True), "an integer"),
         "float": (lambda v: _number(v, False), "a number (such as 0.5 or 1e-4)"), "str": (_text, "text"),
         "list[int]": (_au_list, "a list of distinct AU numbers, e.g. [1, 2, 4] (a single AU: [12])")}


def coerce(name: str, annotation: str, value: Any) -> Any:
    """``value`` as the field's annotated type, trying its types in order (``float | str``: a
    number, else text); numbers from strings ("1e-4", "3") as PyYAML and ``--set`` give them.
    An error names the field, the value and what is expected."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError(f"config {name}=None; expected a value of type {annotation}")
    for kind in kinds:
        if kind in TYPES:
            try:
                return TYPES[kind][0](value)
            except (TypeError, ValueError, OverflowError):
                continue
    expected = " or ".join([TYPES[k][1] for k in kinds if k in TYPES] + (["null"] if "None" in kinds else []))
    raise ValueError(f"config {name}={value!r}; expected {expected}")
