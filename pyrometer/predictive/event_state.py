"""A lead's event features kept current from one write to the next, without recounting.

With probability bands every write needs the event features of the leads it changed:
counts per event type in each window, the 30-day total, the youngest event's age and a
decayed sum (:func:`pyrometer.predictive.event_features.compute`). Counting a lead's whole
history again at every write costs in proportion to that history, yet between two writes
a moment apart nothing changes but the new events, unless a held event crosses a
window's edge or a future-dated one falls due. So a lead's features are kept with the
moment they were counted (``at_us``) and the first moment after it when either happens
(``until_us``). A write before then adds its new events to the counts; a write at or
after then counts again, from the lead's *live* events only (those a window may still
hold: younger than the longest window, or in the future), which are all that is kept.

The youngest event's time is carried exactly. The decayed sum is carried as
``D(now) = D(at) · 2^(-(now - at) / half-life)`` plus the weights of the events that
fell due since: equal to a recount to within rounding (a relative 1e-16 or so a step).
Counts, and so every window's edge, are exact integers. The layout and the numbers are
those of :meth:`pyrometer.predictive.fast_score.RowScorer.event_matrix_of_codes` (a
hypothesis test drives both with random histories and clocks).

Pure numpy: it knows nothing of the store, and is vectorised over the leads of a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DAY_US = 86_400_000_000
NO_EVENT = -(2**63)
"""``youngest_us`` of a lead with no event due yet."""
NEVER = 2**63 - 1
"""``until_us`` of a lead whose held events can no longer change its counts."""
MAX_CHUNKS = 16
"""Chunks of new events a lead keeps before they are joined into one."""
CHUNK_OVERHEAD = 280
"""Bytes a chunk costs besides its events' 12 bytes each: two array objects, a tuple."""
TOTAL_WINDOW_DAYS = 30
"""The window of the ``total in 30d`` feature."""

Chunk = tuple[np.ndarray, np.ndarray]
"""Coded events: their types (int32, -1 for a type the model has no column of) and
times (int64 microseconds)."""


class States(NamedTuple):
    """The carried event features of several leads, a row each: lead ``i``'s as of
    ``at[i]``, holding (but for new events) while the clock is before ``until[i]``."""

    at: np.ndarray
    until: np.ndarray
    youngest: np.ndarray
    """The latest event at or before ``at`` (:data:`NO_EVENT`: none)."""
    features: np.ndarray
    """:meth:`EventCounter.start`'s rows as of ``at``."""
    chunks: list[tuple[Chunk, ...]]
    """Each lead's live events, in chunks (joined at its next recount)."""
    nbytes: np.ndarray
    """What each lead's features row and chunks cost in memory, in bytes."""

    @property
    def leads(self) -> int:
        """How many leads."""
        return len(self.at)

    def take(self, index: Sequence[int] | np.ndarray) -> States:
        """These leads' rows, in this order."""
        at = np.asarray(index, dtype=np.int64)
        return States(
            self.at[at],
            self.until[at],
            self.youngest[at],
            self.features[at],
            [self.chunks[i] for i in at.tolist()],
            self.nbytes[at],
        )

    @staticmethod
    def empty(width: int) -> States:
        """No lead, rows ``width`` wide."""
        none = np.zeros(0, dtype=np.int64)
        return States(none, none, none, np.zeros((0, width)), [], none)

    @staticmethod
    def join(parts: Sequence[States]) -> States:
        """The leads of ``parts``, one after the other."""
        return States(
            np.concatenate([p.at for p in parts]),
            np.concatenate([p.until for p in parts]),
            np.concatenate([p.youngest for p in parts]),
            np.concatenate([p.features for p in parts]),
            [c for p in parts for c in p.chunks],
            np.concatenate([p.nbytes for p in parts]),
        )


def _ages_in_days(delta: np.ndarray) -> np.ndarray:
    """Ages in microseconds as days, as pandas' ``total_seconds`` then days gives them
    (whole seconds plus the rest's fraction): the same floats as every other path."""
    seconds, rest = np.divmod(delta, 1_000_000)
    return (seconds + rest / 1e6) / 86400.0


class EventCounter:
    """The event features of a model's configuration (types, whole-day windows, a
    half-life), counted once per lead and then carried forward."""

    def __init__(self, n_types: int, windows_days: Sequence[float], half_life_days: float) -> None:
        if any(w != int(w) or w < 0 for w in windows_days):
            raise ValueError(f"windows must be whole days, not {list(windows_days)}")
        self.n_types = n_types
        self._windows = [int(w) * DAY_US for w in windows_days]
        self._n_windows = len(self._windows)
        self._counted = n_types * self._n_windows  # the total in 30 days follows
        self.width = self._counted + 3
        self._half_life = float(half_life_days)
        # An event leaves its last window a microsecond after the longest one's length;
        # before then it leaves the shortest window that holds it first.
        self._edges = sorted({*self._windows, TOTAL_WINDOW_DAYS * DAY_US})
        self._keep = self._edges[-1]

    # --- the two ways in ----------------------------------------------------------------

    def start(
        self, lengths: Sequence[int], kinds: np.ndarray, times: np.ndarray, now_us: int
    ) -> tuple[np.ndarray, States]:
        """Each lead's features as of ``now_us`` from all its events (``lengths[i]`` of
        the coded events laid end to end are lead ``i``'s), a row each, and its state."""
        n = len(lengths)
        lead = np.repeat(np.arange(n, dtype=np.int64), lengths)
        blank = States(
            np.zeros(n, dtype=np.int64),
            np.full(n, NEVER, dtype=np.int64),
            np.full(n, NO_EVENT, dtype=np.int64),
            np.zeros((n, self.width)),
            [()] * n,
            np.zeros(n, dtype=np.int64),
        )
        carry = np.zeros(n, dtype=bool)
        adds = np.ones(len(times), dtype=bool)
        return self._step(n, lead, kinds, times, adds, carry, blank, now_us)

    def advance(
        self, held: States, added: Sequence[Chunk], now_us: int
    ) -> tuple[np.ndarray, States]:
        """Each lead's features as of ``now_us`` from its state and the events ``added``
        since (a chunk per lead), a row each, and its new state. Every state must be of
        a moment at or before ``now_us`` (the caller counts a lead afresh otherwise)."""
        n = held.leads
        if n and held.at.max() > now_us:
            raise ValueError("a lead's features are of a later moment than now")
        carry = now_us < held.until  # nothing crossed an edge or fell due: add the new
        # Every lead brings its new events; a lead counted again its live ones after them.
        new_lengths = [len(t) for _, t in added]
        again = np.flatnonzero(~carry).tolist()
        old = [chunk for i in again for chunk in held.chunks[i]]
        old_lengths = [sum(len(t) for _, t in held.chunks[i]) for i in again]
        kinds = np.concatenate([k for k, _ in added] + [k for k, _ in old] + [_NO_KINDS])
        times = np.concatenate([t for _, t in added] + [t for _, t in old] + [_NO_TIMES])
        lead = np.concatenate(
            (
                np.repeat(np.arange(n, dtype=np.int64), new_lengths),
                np.repeat(np.array(again, dtype=np.int64), old_lengths),
            )
        )
        # The decayed sum has the held events up to ``at`` already; not the later ones.
        fresh = sum(new_lengths)
        adds = np.ones(len(times), dtype=bool)
        adds[fresh:] = times[fresh:] > held.at[lead[fresh:]]
        return self._step(n, lead, kinds, times, adds, carry, held, now_us)

    # --- the counting -------------------------------------------------------------------

    def _step(
        self,
        n: int,
        lead: np.ndarray,
        kinds: np.ndarray,
        times: np.ndarray,
        adds: np.ndarray,
        carry: np.ndarray,
        held: States,
        now_us: int,
    ) -> tuple[np.ndarray, States]:
        """Count ``times`` (lead ``lead[j]``'s) as of ``now_us`` on top of ``held``:
        counts and the next edge added to the held ones where ``carry``, else counted
        from these events alone; the youngest time and the decayed sum always carried,
        the latter with only the events ``adds`` marks."""
        n_types, n_windows, counted = self.n_types, self._n_windows, self._counted
        out = np.zeros((n, self.width))
        delta = now_us - times
        due = delta >= 0
        typed = due & (kinds >= 0)
        cell = lead * n_types + kinds.astype(np.int64)
        for w, window in enumerate(self._windows):
            hit = typed & (delta <= window)
            found = np.bincount(cell[hit], minlength=n * n_types)
            out[:, w:counted:n_windows] = found.reshape(n, n_types)
        out[:, counted] = np.bincount(
            lead[due & (delta <= TOTAL_WINDOW_DAYS * DAY_US)], minlength=n
        )
        if carry.any():
            out[carry, : counted + 1] += held.features[carry, : counted + 1]
        # The youngest event: the latest due one, or the one held.
        youngest = held.youngest.copy()
        np.maximum.at(youngest, lead[due], times[due])
        out[:, counted + 1] = np.where(
            youngest == NO_EVENT, np.nan, _ages_in_days(now_us - youngest)
        )
        # The decayed sum: the held one decayed since ``at``, and the events due since.
        fresh = due & adds
        weights = np.power(2.0, -_ages_in_days(delta[fresh]) / self._half_life)
        faded = np.power(2.0, -_ages_in_days(now_us - held.at) / self._half_life)
        out[:, counted + 2] = held.features[:, counted + 2] * faded + np.bincount(
            lead[fresh], weights=weights, minlength=n
        )
        # The next moment the counts change without a new event: a due event leaving
        # the shortest window that holds it, a future one falling due.
        exits = np.full(len(times), NEVER, dtype=np.int64)
        for edge in reversed(self._edges):
            exits = np.where(due & (delta <= edge), times + edge + 1, exits)
        exits = np.where(due, exits, times)
        until = np.where(carry, held.until, NEVER)
        np.minimum.at(until, lead, exits)
        live = delta <= self._keep  # future ones too: they fall due later
        chunks, nbytes = self._chunks(n, lead[live], kinds[live], times[live], carry, held)
        return out, States(np.full(n, now_us, dtype=np.int64), until, youngest, out, chunks, nbytes)

    def _chunks(
        self,
        n: int,
        lead: np.ndarray,
        kinds: np.ndarray,
        times: np.ndarray,
        carry: np.ndarray,
        held: States,
    ) -> tuple[list[tuple[Chunk, ...]], np.ndarray]:
        """Each lead's live events from now, and what it costs: a carried lead's chunks
        and its new live events (joined when they grow many); a lead counted again keeps
        its live events only (``lead``, ``kinds``, ``times``: those, by lead)."""
        if len(lead) > 1 and (lead[1:] < lead[:-1]).any():
            order = np.argsort(lead, kind="stable")
            lead, kinds, times = lead[order], kinds[order], times[order]
        bounds = np.searchsorted(lead, np.arange(n + 1, dtype=np.int64))
        sizes = np.diff(bounds)
        row = 8 * self.width
        nbytes = np.where(carry, held.nbytes, row) + 12 * sizes + CHUNK_OVERHEAD * (sizes > 0)
        starts = bounds.tolist()
        chunks: list[tuple[Chunk, ...]] = []
        add = chunks.append
        for i, (keep, mine, begin, end) in enumerate(
            zip(carry.tolist(), held.chunks, starts, starts[1:], strict=False)
        ):
            if not keep:
                mine = ()
            if begin == end:
                add(mine)
                continue
            mine = (*mine, (kinds[begin:end].copy(), times[begin:end].copy()))
            if len(mine) > MAX_CHUNKS:
                joined = (
                    np.concatenate([k for k, _ in mine]),
                    np.concatenate([t for _, t in mine]),
                )
                mine = (joined,)
                nbytes[i] = row + 12 * len(joined[1]) + CHUNK_OVERHEAD
            add(mine)
        return chunks, nbytes


_NO_KINDS = np.zeros(0, dtype=np.int32)
_NO_TIMES = np.zeros(0, dtype=np.int64)
