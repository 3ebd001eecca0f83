"""From an export on disk to a design matrix and outcomes: what train and evaluate share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pyrometer.predictive import event_features
from pyrometer.predictive.event_features import EventConfig
from pyrometer.predictive.features import Schema, learn_schema
from pyrometer.predictive.leakage import Leak, find_leaks, merge, rewritten_copies
from pyrometer.predictive.loading import (
    DEFAULT_PLACEHOLDERS,
    ColumnKind,
    DataError,
    clean_missing,
    infer_kind,
    read_table,
)
from pyrometer.predictive.target import parse_target

MIN_PER_CLASS = 5


@dataclass
class Prepared:
    """A history ready for models: design matrix, outcomes, and what was learned on the way."""

    source: str
    frame: pd.DataFrame
    y: np.ndarray
    schema: Schema
    cleaned: pd.DataFrame
    X: pd.DataFrame
    leaks: list[Leak]
    events: EventConfig | None = None
    notes: list[str] = field(default_factory=list)


def _check_column(frame: pd.DataFrame, column: str | None, option: str, source: str) -> None:
    if column is not None and column not in frame.columns:
        raise DataError(
            f"{source}: {option} column {column!r} not found; columns are "
            + ", ".join(repr(str(c)) for c in frame.columns)
        )


def decision_time_column(
    frame: pd.DataFrame, wanted: str | None, source: str, placeholders: list[str]
) -> str:
    """The column holding each lead's decision time: given, or the only date column."""
    if wanted is not None:
        _check_column(frame, wanted, "--time", source)
        return wanted
    cleaned = clean_missing(frame, placeholders)
    dates = [c for c in frame.columns if infer_kind(cleaned[c]) == ColumnKind.DATETIME]
    if len(dates) == 1:
        return str(dates[0])
    raise DataError(
        f"{source}: --events needs each lead's decision time; pass --time COLUMN "
        f"(date columns found: {', '.join(map(str, dates)) or 'none'})"
    )


def prepare(
    history: str | Path,
    target: str,
    id_column: str | None = None,
    positive: str | None = None,
    events: str | Path | None = None,
    time_column: str | None = None,
    exclude: list[str] | None = None,
    placeholders: list[str] | None = None,
    drop_leaky: bool = False,
    note: Callable[[str], None] | None = None,
) -> Prepared:
    source = str(history)
    placeholders = list(placeholders if placeholders is not None else DEFAULT_PLACEHOLDERS)
    frame = read_table(history)
    frame.columns = [str(c) for c in frame.columns]
    _check_column(frame, target, "--target", source)
    _check_column(frame, id_column, "--id", source)
    for column in exclude or []:
        _check_column(frame, column, "--exclude", source)
    y, known = parse_target(frame[target], target, positive, source)
    notes = []
    if not known.all():
        notes.append(f"{int((~known).sum())} row(s) without an outcome in {target!r} left out")
        frame = frame.loc[known].reset_index(drop=True)
        y = y[known]
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(
            f"{source}: {int(counts[1])} converted and {int(counts[0])} other leads in "
            f"{target!r}; a model needs at least {MIN_PER_CLASS} of each"
        )
    config = None
    if events is not None:
        log = read_table(events)
        log.columns = [str(c) for c in log.columns]
        config = event_features.configure(log, str(events), id_column)
        if id_column is None:
            raise DataError(f"{source}: --events needs --id COLUMN to match leads to events")
        time_column = decision_time_column(frame, time_column, source, placeholders)
        extra = event_features.compute(
            config, log, frame[id_column], frame[time_column], str(events)
        )
        frame = pd.concat([frame, extra.astype(object)], axis=1)
    schema, cleaned = learn_schema(frame, target, id_column, placeholders, exclude, time_column)
    if not schema.features:
        raise DataError(f"{source}: no usable feature columns left ({schema.dropped})")
    leaks = merge(find_leaks(schema, cleaned, y), rewritten_copies(schema, cleaned, y))
    droppable = [leak for leak in leaks if leak.droppable]
    if drop_leaky and droppable:
        names = {leak.column for leak in droppable}
        for leak in droppable:
            schema.dropped[leak.column] = "may leak the outcome (--drop-leaky)"
        schema.features = [f for f in schema.features if f.name not in names]
        if not schema.features:
            raise DataError(f"{source}: every feature column was dropped as leaky")
    for text in notes:
        if note:
            note(text)
    return Prepared(
        source=source,
        frame=frame,
        y=np.asarray(y, dtype=int),
        schema=schema,
        cleaned=cleaned,
        X=schema.design(cleaned),
        leaks=leaks,
        events=config,
        notes=notes,
    )
