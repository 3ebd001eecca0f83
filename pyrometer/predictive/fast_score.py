"""Scoring a few leads without pandas: the numbers of :class:`PredictiveModel`, faster.

A lead read scores one lead (or a page of them). The general path builds data frames,
checks the schema column by column and asks LightGBM to read pandas categoricals; for
one row that costs tens of milliseconds, nearly all of it pandas. :class:`RowScorer`
precomputes from the schema how each input becomes the model's numbers (category to
code or to its target-encoded rate, frequencies, numbers, booleans), computes a lead's
event features straight from its events, and hands LightGBM one float row.

It gives the same probability and reasons as the general path (a test compares them on
random leads). Anything it does not read the same way (a value of the wrong type, a
date column, a model that is not LightGBM) makes it answer ``None``, and the caller
takes the general path, which raises the usual error naming the column.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyrometer.core.conditions import normalize_name
from pyrometer.core.timeutil import MAX_US, MIN_US
from pyrometer.predictive import event_features
from pyrometer.predictive.artifact import PredictiveModel
from pyrometer.predictive.features import OTHER, category_key
from pyrometer.predictive.loading import (
    FALSE_WORDS,
    TRUE_WORDS,
    ColumnKind,
    is_number,
    is_placeholder,
)
from pyrometer.predictive.models import LightGBMModel, _sigmoid

Factor = tuple[str, Any, float]
Scored = tuple[float, list[Factor], list[Factor]]
_NAN = float("nan")


class Unsupported(ValueError):
    """This model cannot be scored row by row: use the general path."""


class _Mistyped(Exception):
    """A value the general path would reject: let it raise its own error."""


def _boolean(value: Any) -> float:
    """:func:`pyrometer.predictive.loading.to_booleans` of one present value."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    text = str(value).strip().lower()
    if text in TRUE_WORDS or text == "1":
        return 1.0
    if text in FALSE_WORDS or text == "0":
        return 0.0
    raise _Mistyped


class RowScorer:
    """A model's schema turned into per-column encoders over plain Python values."""

    def __init__(self, model: PredictiveModel) -> None:
        fitted = model.model
        if not isinstance(fitted, LightGBMModel):
            raise Unsupported(f"row scoring needs a LightGBM model, not {fitted.name}")
        schema = model.schema
        if any(spec.kind == ColumnKind.DATETIME for spec in schema.features):
            raise Unsupported("row scoring does not read date columns")
        booster = fitted.booster
        booster = getattr(booster, "booster_", booster)  # an LGBMClassifier's Booster
        self._booster = booster
        self._slope = fitted.slope
        self._intercept = fitted.intercept
        self._marks = frozenset(p.strip().lower() for p in schema.placeholders)
        self._events = model.events
        encoders: dict[int, dict[str, float]] = getattr(fitted, "encoders", {}) or {}
        levels_left = list(getattr(booster, "pandas_categorical", None) or [])
        # One step per input column: (name, kind, first design position, lookup tables).
        self._steps: list[tuple[str, str, int, Any, Any]] = []
        position = 0
        for spec in schema.features:
            width = len(spec.outputs())
            lookup: Any = None
            if spec.kind == ColumnKind.CATEGORICAL:
                known = [*spec.categories, OTHER]
                if position in encoders:
                    # Target-encoded: the category's smoothed rate (unseen: the prior).
                    table = encoders[position]
                    lookup = ("rate", {c: table.get(c, fitted.prior) for c in known})
                else:
                    # LightGBM reads a pandas categorical as its code among the
                    # training frame's categories (kept in the booster).
                    levels = levels_left.pop(0) if levels_left else known
                    codes = {str(level): float(i) for i, level in enumerate(levels)}
                    lookup = ("code", {c: codes.get(c, _NAN) for c in known})
                lookup = (lookup[0], lookup[1], set(spec.categories))
            self._steps.append((spec.name, spec.kind, position, lookup, spec.frequencies))
            position += width
        self.width = position
        owners = [owner for _, owner in schema.design_names()]
        self._names = list(dict.fromkeys(owners))
        index = {name: i for i, name in enumerate(self._names)}
        self._owner = np.array([index[o] for o in owners], dtype=np.int64)
        self._needs_events = any(
            spec.name.startswith(event_features.PREFIX) for spec in schema.features
        )
        if self._needs_events and self._events is None:
            raise Unsupported("event columns without an event configuration")
        self._reserved = {"lead_id", "__decision__", "__outcome__"}
        self._type_names: dict[str, str] = {}

    # --- inputs -------------------------------------------------------------------------

    def _clean(self, value: Any) -> Any:
        if isinstance(value, dict | list) or is_placeholder(value, self._marks):
            return None
        return value.strip() if isinstance(value, str) else value

    def event_values(self, events: Sequence[tuple[str, int]], now_us: int) -> dict[str, float]:
        """:func:`event_features.compute` for one lead as of ``now_us``: its features by name.

        ``events``: the lead's ``(event name, ts_us)`` in the log's order.
        """
        config = self._events
        assert config is not None
        types = {t: i for i, t in enumerate(config.types)}
        windows = config.windows_days
        width = len(windows)
        counts = [0.0] * (len(config.types) * width)
        kinds: list[int] = []
        deltas: list[int] = []
        for name, ts in events:
            if ts < MIN_US or ts > MAX_US:
                raise _Mistyped  # the general path names the row
            if ts > now_us:
                continue  # never after the decision
            kind = self._type_names.get(name)
            if kind is None:
                kind = self._type_names[name] = normalize_name(str(name))
            kinds.append(types.get(kind, -1))
            deltas.append(now_us - ts)
        # Ages in days computed as pandas' total_seconds does (whole seconds plus the
        # remainder's fraction), then days: the same floats, so the same window edges.
        seconds, rest = np.divmod(np.array(deltas, dtype=np.int64), 1_000_000)
        ages = (seconds + rest / 1e6) / 86400.0
        total30 = 0.0
        decayed = 0.0
        weights = np.power(2.0, -ages / config.half_life_days)
        for k, age, weight in zip(kinds, ages.tolist(), weights.tolist(), strict=True):
            if k >= 0:
                for w, window in enumerate(windows):
                    if age <= window:
                        counts[k * width + w] += 1.0
            if age <= 30:
                total30 += 1.0
            decayed += weight
        names = config.feature_names()
        values = [*counts, total30, float(ages.min()) if len(ages) else _NAN, decayed]
        return dict(zip(names, values, strict=True))

    def row(
        self, attributes: dict[str, Any], events: Sequence[tuple[str, int]], now_us: int
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The model's input row for one lead and its cleaned values by column, or ``None``
        when the general path must read it (it raises the error naming the column)."""
        if any(
            str(k) in self._reserved or str(k).startswith(event_features.PREFIX) for k in attributes
        ):
            return None
        extra = self.event_values(events, now_us) if self._needs_events else {}
        x = np.full(self.width, _NAN)
        shown: dict[str, Any] = {}
        try:
            for name, kind, at, lookup, frequencies in self._steps:
                raw = extra[name] if name in extra else attributes.get(name)
                value = self._clean(raw)
                shown[name] = value
                if value is None:
                    continue  # missing: NaN in every column it makes
                if kind == ColumnKind.NUMERIC:
                    if not is_number(value):
                        raise _Mistyped
                    x[at] = float(value)
                elif kind == ColumnKind.BOOLEAN:
                    x[at] = _boolean(value)
                else:
                    key = category_key(value)
                    _, table, known = lookup
                    x[at] = table[key if key in known else OTHER]
                    if frequencies:
                        x[at + 1] = frequencies.get(key, 0.0)
        except _Mistyped:
            return None
        return x, shown

    # --- scoring ------------------------------------------------------------------------

    def score(
        self,
        leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, int]]]],
        now_us: int,
        top: int = 3,
    ) -> list[Scored] | None:
        """Probability, reasons up and reasons down for each ``(attributes, events)``, or
        ``None`` when one of them needs the general path."""
        rows = []
        shown = []
        for attributes, events in leads:
            try:
                made = self.row(attributes, events, now_us)
            except _Mistyped:
                return None
            if made is None:
                return None
            rows.append(made[0])
            shown.append(made[1])
        if not rows:
            return []
        X = np.vstack(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = np.asarray(self._booster.predict(X, raw_score=True, num_threads=1), dtype=float)
            contrib = np.asarray(self._booster.predict(X, pred_contrib=True, num_threads=1))
        p = _sigmoid(self._slope * raw + self._intercept)
        contrib = contrib[:, :-1] * self._slope
        per_column = np.zeros((len(rows), len(self._names)))
        for j, owner in enumerate(self._owner.tolist()):
            per_column[:, owner] += contrib[:, j]
        out: list[Scored] = []
        for i in range(len(rows)):
            row = per_column[i]
            order = np.argsort(-row)

            def item(k: int, i: int = i, row: np.ndarray = row) -> Factor:
                name = self._names[k]
                return name, shown[i].get(name), float(row[k])

            up = [item(k) for k in order[:top] if row[k] > 1e-6]
            down = [item(k) for k in order[::-1][:top] if row[k] < -1e-6]
            out.append((float(p[i]), up, down))
        return out
