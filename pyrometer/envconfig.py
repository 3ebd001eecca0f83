"""Settings read from the environment, so that every process of ``serve --workers N``
(and its scoring processes) reads the same ones: one parser, one wording of its errors."""

from __future__ import annotations

import math
import os


def seconds_from_env(variable: str, default: float, *, allow_zero: bool = False) -> float:
    """A duration in seconds from ``variable`` (``default`` when unset or empty).

    Finite and over 0, or 0 as well with ``allow_zero`` (where 0 means "no limit"); any
    other text is a ``ValueError`` naming the variable and the value."""
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 <= value < math.inf if allow_zero else 0 < value < math.inf):
        least = "0 or more" if allow_zero else "over 0"
        raise ValueError(f"{variable}: expected seconds ({least}), got {text!r}")
    return value


def megabytes_from_env(variable: str, default: float) -> int:
    """A size in bytes from ``variable`` in megabytes (``default`` when unset or empty):
    0 or more; any other text is a ``ValueError`` naming the variable and the value."""
    text = os.environ.get(variable)
    if not text:
        return int(default * 1_000_000)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(f"{variable}: expected megabytes (0 or more), got {text!r}")
    return int(value * 1_000_000)
