"""The outcome column: which value means "converted".

CRM exports spell outcomes many ways (``1``/``0``, ``Yes``/``No``, ``Won``/``Lost``,
``Converted``/``Not converted``). When both values are recognised we map them; when they
are not (``A``/``B``, or three stages) we refuse to guess, because a silently flipped target
gives a model that ranks the best leads last.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from pyrometer.predictive.loading import DataError, is_placeholder

POSITIVE_WORDS = frozenset(
    {
        "1",
        "true",
        "t",
        "yes",
        "y",
        "won",
        "win",
        "converted",
        "convert",
        "success",
        "successful",
        "closed won",
        "positive",
        "paid",
        "customer",
        "signed",
    }
)
NEGATIVE_WORDS = frozenset(
    {
        "0",
        "false",
        "f",
        "no",
        "n",
        "lost",
        "lose",
        "loss",
        "not converted",
        "not",
        "unconverted",
        "non converted",
        "failure",
        "failed",
        "closed lost",
        "negative",
        "not paid",
        "unpaid",
        "not signed",
    }
)


_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class TargetError(DataError):
    """The target column cannot be read as a yes/no outcome."""


def normalize_outcome(value: Any) -> str:
    """``" Closed-Won "`` → ``closed won``; ``1.0`` → ``1``."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if number.is_integer():
            return str(int(number))
        return repr(number)
    text = str(value).strip()
    if _NUMBER.fullmatch(text):  # "1.0" and 1 are the same outcome
        return normalize_outcome(float(text))
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def parse_target(
    values: pd.Series,
    column: str,
    positive: str | None = None,
    source: str = "history",
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, known)``: 0/1 outcomes, and which rows have an outcome at all.

    Rows without an outcome (blank, ``NA``...) are not errors: open leads are normal in an
    export; the caller leaves them out of training.
    """
    raw = values.tolist()
    known = np.array([not is_placeholder(v) for v in raw], dtype=bool)
    keys = [normalize_outcome(v) if k else "" for v, k in zip(raw, known, strict=True)]
    distinct = sorted({k for k, ok in zip(keys, known, strict=True) if ok})
    shown = ", ".join(repr(d) for d in distinct[:8]) + (" ..." if len(distinct) > 8 else "")
    if not distinct:
        raise TargetError(f"{source}: target column {column!r} has no values")
    if positive is not None:
        wanted = normalize_outcome(positive)
        if wanted not in distinct:
            raise TargetError(
                f"{source}: --positive {positive!r} does not occur in target column "
                f"{column!r} (values: {shown})"
            )
        y = np.array([1 if k == wanted else 0 for k in keys], dtype=np.int8)
    else:
        if len(distinct) > 2:
            raise TargetError(
                f"{source}: target column {column!r} has {len(distinct)} values ({shown}); "
                "it is ambiguous which one means converted: pass --positive VALUE"
            )
        pos = [d for d in distinct if d in POSITIVE_WORDS]
        neg = [d for d in distinct if d in NEGATIVE_WORDS]
        if len(distinct) == 2 and len(pos) == 1 and len(neg) == 1 and pos != neg:
            wanted = pos[0]
        elif len(distinct) == 1 and (pos or neg):
            wanted = pos[0] if pos else "\0"
        else:
            raise TargetError(
                f"{source}: target column {column!r} has values {shown}; it is ambiguous "
                "which one means converted: pass --positive VALUE"
            )
        y = np.array([1 if k == wanted else 0 for k in keys], dtype=np.int8)
    y[~known] = 0
    if known.any() and len(set(y[known].tolist())) < 2:
        raise TargetError(
            f"{source}: target column {column!r} has only one outcome ({shown}); "
            "a model needs both converted and not converted leads"
        )
    return y, known
