"""Each lead's events as the active model counts them, kept between write transactions.

With ``temperature.probability`` bands and a model active, every write names the
temperature of the leads it changes from their probability, so it needs their event
features: counts in the model's windows, the youngest event's age, a decayed sum. Adding
those up in the database costs a pass over each lead's whole history at every write
(about 13 ms for a batch of 460 leads with some 90 events each: a third of all the model
costs ingest). A lead written again a moment later has the same history and a few events
more. So the writing process keeps each lead's event features as of its last write,
with its live events coded as the model reads them (a type and a time: 12 bytes an
event), and carries them forward with what a write added
(:mod:`pyrometer.predictive.event_state`); with them, the lead's attribute columns, made
again only when its attributes change.

Correctness rests on one stamp, the lead's ``event_count`` with its ``created_us``:
events are never deleted but with their lead, every event stored for a lead is scored
into it, and each adds one to its count. An entry serves a write only when its count
plus the events the write added equals the count of the lead's record after the write.
A lead held with fewer events (another process wrote it since) is caught up from the
events stored after the ``seq`` its entry was made at, when they are exactly as many as
are missing (every event it holds is at or below that ``seq``); anything else (a merge
moved older events in, an identify replayed a visitor's history) reads the lead's events
from the store again, and an entry is made from those only when they are exactly as many
as the count says. Entries are
published after the transaction commits (:func:`pyrometer.service.runtime.on_commit`),
so a write that rolls back leaves nothing behind; erasing a lead forgets it. The cache
is bounded in bytes (``PYROMETER_EVENT_CACHE_MB``, default 64), the least recently
used leads going first.

The leads are held in columns (a slot per lead in arrays of stamps, times and feature
rows), not an object each: a write asks for a few hundred leads and stores them back,
and numpy takes and puts their rows at once where objects cost microseconds a lead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyrometer.envconfig import megabytes_from_env

if TYPE_CHECKING:  # the cache is built at start-up; numpy comes with the first model
    import numpy as np

    from pyrometer.predictive.event_state import States

CACHE_SIZE_ENV = "PYROMETER_EVENT_CACHE_MB"
DEFAULT_MEGABYTES = 64.0
"""About 25,000 leads with 20 live events each (0: keep nothing, every write reads)."""
ENTRY_OVERHEAD = 400
"""Bytes a lead costs besides its rows and events (its slot, its key, its attributes)."""

NOT_HELD, STALE, MARKER, HELD, BEHIND = range(5)
""":meth:`LeadEventCache.get_many`'s answers: the lead is not held; it is held with
another stamp (a merge moved events in, it was made again, or its events' place in the
log is not known); it is held as a marker (a stamp without events); it is held as asked;
it is held with fewer events than asked (another process added some since: the events
stored after its ``seq`` are the rest, if they are as many as are missing)."""


class Found(NamedTuple):
    """What :meth:`LeadEventCache.get_many` found: an answer per lead asked, and the
    held leads' (answers :data:`HELD` and :data:`BEHIND`) carried features, attributes,
    attribute rows, event counts and ``seq`` marks, in the order asked."""

    status: list[int]
    states: States | None
    attributes: list[Mapping[str, Any] | None]
    """The attributes each held lead's row was made from (``None``: no row held)."""
    rows: np.ndarray | None
    counts: Sequence[int] = ()
    seqs: Sequence[int] = ()
    """The highest event ``seq`` the write that stored each held lead saw: every event
    it holds is at or below it."""


class Stamp(NamedTuple):
    """What is held for one lead (:meth:`LeadEventCache.stamp`)."""

    created_us: int
    count: int
    is_marker: bool
    at_us: int


class LeadEventCache:
    """Carried event features per lead for one model at a time (a model activated in
    their place starts an empty cache: its types differ). Thread-safe.

    A lead that another process writes too (``serve`` hands batches to whichever of its
    scoring processes is free) is found :data:`BEHIND` and caught up from the events
    stored since. One found with another stamp (:data:`STALE`: made again, or its
    events' place in the log not known), or whose catch-up finds another number of
    events than are missing, is counted from the database's sums instead and held as a
    marker: a stamp without events. If the next write here
    finds the marker's stamp (nobody else wrote the lead meanwhile), the lead's events
    are read and held again; if not, sums again.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = megabytes_from_env(CACHE_SIZE_ENV, DEFAULT_MEGABYTES)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._reset(None)

    def _reset(self, owner: object | None) -> None:
        self._owner = owner
        self._slots: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._free: list[int] = []
        self._bytes = 0
        self._capacity = 0
        # Per slot: the stamp, whether a marker, what it costs; the carried features
        # (event_state.States' columns); the attributes its row was made from, that row.
        self._ints: dict[str, np.ndarray] = {}
        self._marker: np.ndarray | None = None
        self._features: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        self._chunks: list[Any] = []
        self._attributes: list[Mapping[str, Any] | None] = []

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def size(self) -> int:
        """The bytes held, as the bound counts them."""
        return self._bytes

    def stamp(self, lead_id: str) -> Stamp | None:
        """What is held for this lead, if anything."""
        with self._lock:
            slot = self._slots.get(lead_id)
            if slot is None:
                return None
            ints = self._ints
            assert self._marker is not None
            return Stamp(
                int(ints["created"][slot]),
                int(ints["count"][slot]),
                bool(self._marker[slot]),
                int(ints["at"][slot]),
            )

    def get_many(
        self,
        owner: object,
        lead_ids: Sequence[str],
        created_us: Sequence[int],
        counts: Sequence[int],
    ) -> Found:
        """For each lead: whether it is held for ``owner``'s codes with the stamp
        ``(created_us, count)`` (see :data:`HELD` and the others), and what is held for
        the leads that are."""
        import numpy as np

        from pyrometer.predictive.event_state import States

        n = len(lead_ids)
        with self._lock:
            if owner is not self._owner or not self._slots:
                self.misses += n
                return Found([NOT_HELD] * n, None, [], None)
            get = self._slots.get
            slots = np.fromiter((get(i, -1) for i in lead_ids), np.int64, n)
            known = slots >= 0
            at = slots[known]
            assert self._marker is not None
            ints = self._ints
            same = (ints["created"][at] == np.asarray(created_us, np.int64)[known]) & (
                ints["count"][at] == np.asarray(counts, np.int64)[known]
            )
            behind = (
                (ints["created"][at] == np.asarray(created_us, np.int64)[known])
                & (ints["count"][at] < np.asarray(counts, np.int64)[known])
                & ~self._marker[at]
                & (ints["seq"][at] > 0)
            )
            answers = np.where(
                same, np.where(self._marker[at], MARKER, HELD), np.where(behind, BEHIND, STALE)
            )
            status = np.full(n, NOT_HELD, dtype=np.int64)
            status[known] = answers
            hit = slots[(status == HELD) | (status == BEHIND)]
            self.hits += len(hit)
            self.misses += n - len(hit)
            for lead_id, seen in zip(lead_ids, (status >= MARKER).tolist(), strict=True):
                if seen:
                    self._slots.move_to_end(lead_id)
            if not len(hit):
                return Found(status.tolist(), None, [], None)
            assert self._features is not None
            chunks, attributes = self._chunks, self._attributes
            listed = hit.tolist()
            states = States(
                ints["at"][hit],
                ints["until"][hit],
                ints["youngest"][hit],
                self._features[hit],
                [chunks[j] for j in listed],
                ints["nbytes"][hit],
            )
            rows = self._rows[hit] if self._rows is not None else None
            return Found(
                status.tolist(),
                states,
                [attributes[j] for j in listed],
                rows,
                ints["count"][hit].tolist(),
                ints["seq"][hit].tolist(),
            )

    def put(
        self,
        owner: object,
        lead_ids: Sequence[str],
        created_us: Sequence[int],
        counts: Sequence[int],
        states: States | None,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        rows: np.ndarray | None = None,
        seq: int = 0,
    ) -> None:
        """Hold these leads for ``owner``'s codes (a lead for another owner's codes
        empties the cache first): with their carried features and, if given, the
        attributes each row of ``rows`` was made from (``None``: no row); as markers if
        ``states`` is ``None``. ``seq``: the highest event ``seq`` the write saw (0: not
        known). A lead older (a lower count) than the one held is dropped: a later write
        committed first."""
        import numpy as np

        n = len(lead_ids)
        if not n:
            return
        with self._lock:
            if owner is not self._owner:
                self._reset(owner)
            if self.max_bytes <= 0:
                return
            created = np.asarray(created_us, np.int64)
            count = np.asarray(counts, np.int64)
            if states is None:
                cost = np.full(n, ENTRY_OVERHEAD, dtype=np.int64)
            else:
                cost = states.nbytes + ENTRY_OVERHEAD
                if rows is not None and attributes is not None:
                    made = np.fromiter((a is not None for a in attributes), bool, n)
                    cost = cost + made * rows.shape[1] * rows.itemsize
            self._ensure(states, rows)
            ints = self._ints
            get = self._slots.get
            slots = np.fromiter((get(i, -1) for i in lead_ids), np.int64, n)
            known = slots >= 0
            was = slots[known]
            # A lead held with a higher count: a later write committed first; keep it.
            newer = np.zeros(n, dtype=bool)
            newer[known] = (ints["created"][was] == created[known]) & (
                ints["count"][was] > count[known]
            )
            fits = cost <= self.max_bytes
            keep = fits & ~newer
            replaced = known & keep
            self._bytes -= int(ints["cost"][slots[replaced]].sum())
            for k in np.flatnonzero(known & ~fits & ~newer).tolist():  # too big now: gone
                self._bytes -= int(ints["cost"][slots[k]])
                self._drop(lead_ids[k])
            for lead_id, k in zip(lead_ids, replaced.tolist(), strict=True):
                if k:
                    self._slots.move_to_end(lead_id)
            for k in np.flatnonzero(~known & keep).tolist():
                slot = self._take_slot()
                self._slots[lead_ids[k]] = slot
                slots[k] = slot
            at = slots[keep]
            ints["created"][at] = created[keep]
            ints["count"][at] = count[keep]
            ints["cost"][at] = cost[keep]
            ints["seq"][at] = seq
            self._bytes += int(cost[keep].sum())
            assert self._marker is not None
            self._marker[at] = states is None
            listed = at.tolist()
            chosen = np.flatnonzero(keep).tolist()
            if states is None:
                for j in listed:
                    self._chunks[j] = None
                    self._attributes[j] = None
            else:
                assert self._features is not None
                for name, column in (
                    ("at", states.at),
                    ("until", states.until),
                    ("youngest", states.youngest),
                    ("nbytes", states.nbytes),
                ):
                    ints[name][at] = column[keep]
                self._features[at] = states.features[keep]
                for j, k in zip(listed, chosen, strict=True):
                    self._chunks[j] = states.chunks[k]
                    self._attributes[j] = attributes[k] if attributes is not None else None
                if rows is not None and self._rows is not None:
                    self._rows[at] = rows[keep]
            while self._bytes > self.max_bytes and self._slots:
                oldest = next(iter(self._slots))
                self._bytes -= int(ints["cost"][self._slots[oldest]])
                self._drop(oldest)

    def forget(self, lead_ids: Iterable[str]) -> None:
        with self._lock:
            for lead_id in lead_ids:
                slot = self._slots.get(lead_id)
                if slot is not None:
                    self._bytes -= int(self._ints["cost"][slot])
                    self._drop(lead_id)

    def clear(self) -> None:
        with self._lock:
            self._reset(None)

    # --- slots --------------------------------------------------------------------------

    def _drop(self, lead_id: str) -> None:
        """Free a lead's slot (its cost already taken off)."""
        slot = self._slots.pop(lead_id)
        self._chunks[slot] = None  # its events go now, not when the slot is reused
        self._attributes[slot] = None
        self._free.append(slot)

    def _take_slot(self) -> int:
        if not self._free:
            self._grow()
        return self._free.pop()

    def _ensure(self, states: States | None, rows: np.ndarray | None) -> None:
        """Arrays for the features and rows once their widths are known."""
        import numpy as np

        if not self._ints:
            self._capacity = 0
            names = ("created", "count", "cost", "seq", "at", "until", "youngest", "nbytes")
            self._ints = {name: np.zeros(0, dtype=np.int64) for name in names}
            self._marker = np.zeros(0, dtype=bool)
        if states is not None and self._features is None:
            self._features = np.zeros((self._capacity, states.features.shape[1]))
        if rows is not None and self._rows is None:
            self._rows = np.zeros((self._capacity, rows.shape[1]))

    def _grow(self) -> None:
        """Twice as many slots (at least 256)."""
        import numpy as np

        old = self._capacity
        new = max(256, 2 * old)

        def grown(array: np.ndarray) -> np.ndarray:
            out = np.zeros((new, *array.shape[1:]), dtype=array.dtype)
            out[:old] = array
            return out

        for name, array in self._ints.items():  # in place: callers hold the mapping
            self._ints[name] = grown(array)
        assert self._marker is not None
        self._marker = grown(self._marker)
        if self._features is not None:
            self._features = grown(self._features)
        if self._rows is not None:
            self._rows = grown(self._rows)
        self._chunks.extend([None] * (new - old))
        self._attributes.extend([None] * (new - old))
        self._free.extend(range(new - 1, old - 1, -1))
        self._capacity = new
