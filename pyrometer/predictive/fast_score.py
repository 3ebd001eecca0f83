"""Scoring a few leads without pandas: the numbers of :class:`PredictiveModel`, faster.

A lead read scores one lead (or a page of them). The general path builds data frames,
checks the schema column by column and asks LightGBM to read pandas categoricals; for
one row that costs tens of milliseconds, nearly all of it pandas. :class:`RowScorer`
precomputes from the schema how each input becomes the model's numbers (category to
code or to its target-encoded rate, frequencies, numbers, booleans), computes a lead's
event features straight from its events, and hands LightGBM one float row.

One lead costs one call into LightGBM: its contributions (TreeSHAP, the reasons) through
LightGBM's single-row fast path (``LGBM_BoosterPredictForMatSingleRowFast``: no
parameter parsing, no thread pool, no data-frame checks per call), whose sum is the raw
score the probability is calibrated from. Several leads take one vectorised call.

It gives the same probability and reasons as the general path (a test compares them on
random leads). Anything it does not read the same way (a value of the wrong type, a
date column, a model that is not LightGBM) makes it answer ``None``, and the caller
takes the general path, which raises the usual error naming the column.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pyrometer.core.conditions import normalize_name
from pyrometer.core.timeutil import MAX_US, MIN_US
from pyrometer.predictive import event_features
from pyrometer.predictive.artifact import PredictiveModel
from pyrometer.predictive.event_state import EventCounter
from pyrometer.predictive.features import OTHER, category_key
from pyrometer.predictive.loading import (
    FALSE_WORDS,
    TRUE_WORDS,
    ColumnKind,
    is_number,
    is_placeholder,
)
from pyrometer.predictive.models import LightGBMModel

Factor = tuple[str, Any, float]
Scored = tuple[float, list[Factor], list[Factor]]
_NAN = float("nan")
# A write's few hundred leads (460 rows: 4.9 ms on one thread, 2.4-3.0 on two, the other
# process of a PostgreSQL store busy too) are split over two threads; a lead read's few
# rows stay on one, where OpenMP's start-up would cost more than the trees.
PARALLEL_ROWS = 256
_PARALLEL_THREADS = min(2, os.cpu_count() or 1)


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
        # Design columns summed into input columns: contributions @ _gather.
        self._gather = np.zeros((position, len(self._names)))
        for j, owner in enumerate(owners):
            self._gather[j, index[owner]] = 1.0
        self._needs_events = any(
            spec.name.startswith(event_features.PREFIX) for spec in schema.features
        )
        if self._needs_events and self._events is None:
            raise Unsupported("event columns without an event configuration")
        if self._events is not None and any(
            w != int(w) for w in self._events.windows_days
        ):  # the event counter counts whole days (no configuration makes others)
            raise Unsupported("row scoring counts event windows of whole days only")
        self._reserved = {"lead_id", "__decision__", "__outcome__"}
        self._type_names: dict[str, str] = {}
        # Numeric event columns are filled from the lead's events; the other steps read
        # its attributes (or, for an event column of another kind, the events' value).
        self._event_steps: list[tuple[str, int, int]] = []
        self._event_others: dict[str, int] = {}
        self._type_index: dict[str, int] = {}
        if self._events is not None:
            self._type_index = {t: i for i, t in enumerate(self._events.types)}
            slots = {name: k for k, name in enumerate(self._events.feature_names())}
            steps = []
            for step in self._steps:
                name, kind, at = step[0], step[1], step[2]
                if name in slots and kind == ColumnKind.NUMERIC:
                    self._event_steps.append((name, at, slots[name]))
                else:
                    steps.append(step)
                    if name in slots:  # an event column typed otherwise: read as a value
                        self._event_others[name] = slots[name]
            self._steps = steps
        try:
            self._single: _SingleRow | None = _SingleRow(booster, self.width)
        except Exception:  # a LightGBM without the fast path: one predict call per read
            self._single = None

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
        return dict(zip(config.feature_names(), self._event_list(events, now_us), strict=True))

    def _event_list(self, events: Sequence[tuple[str, int]], now_us: int) -> list[float]:
        """:meth:`event_values` in the order of the configuration's feature names."""
        config = self._events
        assert config is not None
        types = self._type_index
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
        total30 = 0.0
        decayed = 0.0
        youngest = _NAN
        half_life = config.half_life_days
        for k, delta in zip(kinds, deltas, strict=True):
            # Ages in days computed as pandas' total_seconds does (whole seconds plus the
            # remainder's fraction), then days: the same floats, so the same window edges.
            seconds, rest = divmod(delta, 1_000_000)
            age = (seconds + rest / 1e6) / 86400.0
            if k >= 0:
                for w, window in enumerate(windows):
                    if age <= window:
                        counts[k * width + w] += 1.0
            if age <= 30:
                total30 += 1.0
            decayed += 2.0 ** (-age / half_life)
            if not age >= youngest:  # NaN at first
                youngest = age
        return [*counts, total30, youngest, decayed]

    def row(
        self, attributes: dict[str, Any], events: Sequence[tuple[str, int]], now_us: int
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The model's input row for one lead and its cleaned values by column, or ``None``
        when the general path must read it (it raises the error naming the column)."""
        if any(
            str(k) in self._reserved or str(k).startswith(event_features.PREFIX) for k in attributes
        ):
            return None
        x = [_NAN] * self.width
        shown: dict[str, Any] = {}
        found: Sequence[float] = ()
        if self._needs_events:
            # Event features are this scorer's own floats: no cleaning, no type checks.
            found = self._event_list(events, now_us)
            for name, at, k in self._event_steps:
                value = found[k]
                if value == value:
                    x[at] = value
                    shown[name] = value
                else:
                    shown[name] = None
        if not self._fill(x, shown, attributes, found):
            return None
        return np.array(x, dtype=np.float64), shown

    def _fill(
        self,
        x: Any,
        shown: dict[str, Any] | None,
        attributes: Mapping[str, Any],
        found: Sequence[float],
    ) -> bool:
        """Write the attribute columns of one lead into ``x`` (a list or a matrix row);
        ``False`` when the general path must read it."""
        others = self._event_others
        try:
            for name, kind, at, lookup, frequencies in self._steps:
                if name in others:
                    value = self._clean(found[others[name]])
                else:
                    value = self._clean(attributes.get(name))
                if shown is not None:
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
            return False
        return True

    def matrix(
        self,
        leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, int]]]],
        now_us: int,
    ) -> np.ndarray | None:
        """The model's input rows of many leads at once (:meth:`row`'s numbers, the event
        features counted for all leads together in numpy), or ``None`` when one of them
        needs the general path."""
        try:
            found = (
                self._event_matrix([e for _, e in leads], now_us) if self._needs_events else None
            )
        except _Mistyped:
            return None
        return self._design(found, [attributes for attributes, _ in leads])

    def _design(
        self, found: np.ndarray | None, attributes_of: Sequence[Mapping[str, Any]]
    ) -> np.ndarray | None:
        """The input rows from the leads' event features (a row each, or ``None`` for a
        model without them) and attributes; ``None`` when one needs the general path."""
        X = np.full((len(attributes_of), self.width), _NAN)
        if found is not None:
            for _, at, k in self._event_steps:
                X[:, at] = found[:, k]
        reserved = self._reserved
        for i, attributes in enumerate(attributes_of):
            if any(
                str(k) in reserved or str(k).startswith(event_features.PREFIX) for k in attributes
            ):
                return None
            values = found[i].tolist() if found is not None and self._event_others else ()
            if not self._fill(X[i], None, attributes, values):
                return None
        return X

    def _event_matrix(self, events: Sequence[Sequence[tuple[str, int]]], now_us: int) -> np.ndarray:
        """:meth:`_event_list` of each lead's events, a row per lead."""
        coded = self.encode_events([event for lead_events in events for event in lead_events])
        if coded is None:
            raise _Mistyped
        counter = self.event_counter
        assert counter is not None
        return counter.start([len(e) for e in events], *coded, now_us)[0]

    def encode_events(
        self, events: Sequence[tuple[str, int]]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Events as this model counts them: each one's type (its index among the
        configuration's types, -1 for a name the model has no column of) and its time, or
        ``None`` if a time is out of range (the general path names the row). What
        :attr:`event_counter` reads."""
        types, names = self._type_index, self._type_names
        kinds: list[int] = []
        times: list[int] = []
        for name, ts in events:
            if ts < MIN_US or ts > MAX_US:
                return None
            kind = names.get(name)
            if kind is None:
                kind = names[name] = normalize_name(str(name))
            kinds.append(types.get(kind, -1))
            times.append(ts)
        return np.array(kinds, dtype=np.int32), np.array(times, dtype=np.int64)

    @functools.cached_property
    def event_counter(self) -> EventCounter | None:
        """The :class:`EventCounter` of this model's event features: counted from coded
        events (:meth:`encode_events`) for many leads at once, and carried from one
        write to the next; ``None`` for a model without event features."""
        config = self._events
        if config is None:
            return None
        return EventCounter(len(config.types), config.windows_days, config.half_life_days)

    @property
    def keeps_attribute_rows(self) -> bool:
        """Whether :meth:`attribute_rows` may be kept and reused while a lead's attributes
        stay the same: not when the model reads one of its event columns as a value."""
        return not self._event_others

    def attribute_rows(self, attributes_of: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """Each lead's input row with its attribute columns filled and its event columns
        NaN (:meth:`probabilities_of_features` fills those), or ``None`` when one of them
        needs the general path. Only when :attr:`keeps_attribute_rows`."""
        assert self.keeps_attribute_rows
        return self._design(None, attributes_of)

    def probabilities_of_features(
        self, rows: np.ndarray | Sequence[Mapping[str, Any]], found: np.ndarray | None
    ) -> list[float] | None:
        """The probabilities of leads given by their attributes (or, when
        :attr:`keeps_attribute_rows`, their :meth:`attribute_rows`) and their event
        features (a row each, from :attr:`event_counter` or
        :meth:`event_matrix_of_sums`; ``None`` for a model without them), or ``None`` as
        :meth:`score`."""
        if not len(rows):
            return []
        if isinstance(rows, np.ndarray):
            X = rows.copy()
            if found is not None:
                for _, at, k in self._event_steps:
                    X[:, at] = found[:, k]
        else:
            made = self._design(found, rows)
            if made is None:
                return None
            X = made
        return self._raw_probabilities(X)

    @property
    def sum_windows(self) -> tuple[int, ...]:
        """The windows (days) :meth:`event_matrix_of_sums` needs counts for: the model's, and 30
        days for the total."""
        config = self._events
        windows = list(config.windows_days) if config is not None else []
        return tuple(dict.fromkeys([*windows, 30]))

    def event_matrix_of_sums(
        self,
        sums: Sequence[Sequence[tuple[str, Sequence[int], int, float]]],
        now_us: int,
    ) -> np.ndarray:
        """:meth:`_event_matrix` from each lead's sums per event name (``(name, counts in
        each of :attr:`sum_windows`, latest ts_us, sum of 2^(-age / half-life))``, as
        :func:`pyrometer.store.models.lead_event_sums` adds them up)."""
        config = self._events
        assert config is not None
        types, names = self._type_index, self._type_names
        n_types, width = len(config.types), len(config.windows_days)
        at = {w: i for i, w in enumerate(self.sum_windows)}
        own = [at[w] for w in config.windows_days]
        total = at[30]
        base = n_types * width
        out = np.zeros((len(sums), base + 3))
        for i, lead_sums in enumerate(sums):
            row = out[i]
            latest = None
            for name, counts, last_us, decayed in lead_sums:
                kind = names.get(name)
                if kind is None:
                    kind = names[name] = normalize_name(str(name))
                k = types.get(kind, -1)
                if k >= 0:
                    for w, j in enumerate(own):
                        row[k * width + w] += counts[j]
                row[base] += counts[total]
                row[base + 2] += decayed
                if latest is None or last_us > latest:
                    latest = last_us
            if latest is None:
                row[base + 1] = _NAN
            else:  # the youngest event's age, as _event_list computes it
                seconds, rest = divmod(now_us - latest, 1_000_000)
                row[base + 1] = (seconds + rest / 1e6) / 86400.0
        return out

    def probabilities_from_sums(
        self,
        leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, Sequence[int], int, float]]]],
        now_us: int,
    ) -> list[float] | None:
        """:meth:`probabilities` from each lead's event sums
        (:meth:`event_matrix_of_sums`) instead of its events, or ``None`` as :meth:`score`."""
        if not leads:
            return []
        found = (
            self.event_matrix_of_sums([e for _, e in leads], now_us) if self._needs_events else None
        )
        X = self._design(found, [attributes for attributes, _ in leads])
        return None if X is None else self._raw_probabilities(X)

    # --- scoring ------------------------------------------------------------------------

    def score(
        self,
        leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, int]]]],
        now_us: int,
        top: int = 3,
    ) -> list[Scored] | None:
        """Probability, reasons up and reasons down for each ``(attributes, events)``, or
        ``None`` when one of them needs the general path."""
        made = self._rows(leads, now_us)
        if made is None:
            return None
        rows, shown = made
        if not rows:
            return []
        contrib = self.contributions(np.vstack(rows))
        raw = contrib.sum(axis=1)
        p = [_probability(self._slope * r + self._intercept) for r in raw.tolist()]
        per_column = (contrib[:, :-1] @ self._gather) * self._slope
        out: list[Scored] = []
        for i, values in enumerate(per_column.tolist()):
            order = sorted(range(len(values)), key=values.__getitem__, reverse=True)
            seen = shown[i]
            up = [
                (self._names[k], seen.get(self._names[k]), values[k])
                for k in order[:top]
                if values[k] > 1e-6
            ]
            down = [
                (self._names[k], seen.get(self._names[k]), values[k])
                for k in order[::-1][:top]
                if values[k] < -1e-6
            ]
            out.append((p[i], up, down))
        return out

    def probabilities(
        self, leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, int]]]], now_us: int
    ) -> list[float] | None:
        """The probability of each ``(attributes, events)`` without reasons (no
        contributions: one vectorised raw-score call), or ``None`` as :meth:`score`."""
        if not leads:
            return []
        X = self.matrix(leads, now_us)
        return None if X is None else self._raw_probabilities(X)

    def _raw_probabilities(self, X: np.ndarray) -> list[float]:
        """Calibrated probabilities of the rows of ``X`` from one raw-score call."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            threads = _PARALLEL_THREADS if len(X) >= PARALLEL_ROWS else 1
            raw = self._booster.predict(X, raw_score=True, num_threads=threads)
        return [_probability(self._slope * r + self._intercept) for r in np.asarray(raw).tolist()]

    def _rows(
        self, leads: Sequence[tuple[dict[str, Any], Sequence[tuple[str, int]]]], now_us: int
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]] | None:
        rows: list[np.ndarray] = []
        shown: list[dict[str, Any]] = []
        for attributes, events in leads:
            try:
                made = self.row(attributes, events, now_us)
            except _Mistyped:
                return None
            if made is None:
                return None
            rows.append(made[0])
            shown.append(made[1])
        return rows, shown

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """LightGBM's contributions of each row of ``X`` (the last column is the expected
        value), in log-odds before calibration: a row's sum is its raw score."""
        if len(X) == 1 and self._single is not None:
            return self._single.contributions(X[0])[None, :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self._booster.predict(X, pred_contrib=True, num_threads=1))


def _probability(z: float) -> float:
    """:func:`pyrometer.predictive.models._sigmoid` of one number."""
    return 1.0 / (1.0 + math.exp(-min(35.0, max(-35.0, z))))


class _SingleRow:
    """LightGBM's single-row fast path for contributions: set up once (the parsed
    parameters, one thread), then one C call per row. Calls are serialised: the set-up
    holds one output buffer."""

    def __init__(self, booster: Any, width: int) -> None:
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib = _LIB
        self._check = _safe_call
        self._booster = booster  # the handle below must not outlive it
        self._handle = ctypes.c_void_p()
        self._width = width
        iterations = int(getattr(booster, "best_iteration", 0) or 0)  # as Booster.predict
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(3),  # C_API_PREDICT_CONTRIB
                ctypes.c_int(0),
                ctypes.c_int(iterations if iterations > 0 else -1),
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(width),
                _c_str("num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._out = np.empty(width + 1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._length = ctypes.c_int64()
        self._lock = threading.Lock()

    def contributions(self, x: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(x, dtype=np.float64)
        assert row.shape == (self._width,)
        with self._lock:
            self._check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._length),
                    self._out_ptr,
                )
            )
            return self._out.copy()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.LGBM_FastConfigFree(handle)
            handle.value = None
