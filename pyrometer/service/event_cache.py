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
plus the events the write added equals the count of the lead's record after the write;
anything else (another process wrote the lead, a merge moved events in, an identify
replayed a visitor's history) reads the lead's events from the store again, and an entry
is made from those only when they are exactly as many as the count says. Entries are
published after the transaction commits (:func:`pyrometer.service.runtime.on_commit`),
so a write that rolls back leaves nothing behind; erasing a lead forgets it. The cache
is bounded in bytes (``PYROMETER_EVENT_CACHE_MB``, default 64), the least recently
used leads going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from pyrometer.envconfig import megabytes_from_env

if TYPE_CHECKING:  # the cache is built at start-up; numpy comes with the first model
    import numpy as np

    from pyrometer.predictive.event_state import LeadEvents

CACHE_SIZE_ENV = "PYROMETER_EVENT_CACHE_MB"
DEFAULT_MEGABYTES = 64.0
"""About 100,000 leads with 20 events each (0: keep nothing, every write reads)."""
ENTRY_OVERHEAD = 600
"""Bytes a lead costs besides its arrays' data (the objects around them, its attributes)."""


STALE = "stale"
""":meth:`LeadEventCache.get_many`'s answer for a lead held with another stamp: another
process wrote it since (or a merge moved events in)."""


def entry_bytes(entry: Coded) -> int:
    """What holding ``entry`` costs, as the bound counts it."""
    held = entry.events.nbytes if entry.events is not None else 0
    return held + (entry.row.nbytes if entry.row is not None else 0) + ENTRY_OVERHEAD


class Coded(NamedTuple):
    """A lead's event features carried between writes (:class:`LeadEvents`: its live
    events coded by a model's :meth:`RowScorer.encode_events`, their counts as of the last
    write) and the stamp of the lead they are all the events of; with the attributes its
    model row was last made from and that row (:meth:`RowScorer.attribute_rows`), reused
    while the attributes stay the same."""

    created_us: int
    count: int
    events: LeadEvents | None  # None: a marker, see LeadEventCache
    attributes: Mapping[str, Any] | None = None
    row: np.ndarray | None = None

    @property
    def is_marker(self) -> bool:
        """A stamp without events: the lead is written by another process too."""
        return self.events is None


class LeadEventCache:
    """Coded events per lead for one model at a time (a model activated in their place
    starts an empty cache: its types differ). Thread-safe.

    A lead that another process writes too (``serve`` hands batches to whichever of its
    scoring processes is free) would be read whole again at every write here that
    follows one there. So a lead found with another stamp (:data:`STALE`) is counted
    from the database's sums instead, and held as a marker: a stamp without events. If
    the next write here finds the marker's stamp (nobody else wrote the lead meanwhile),
    the lead's events are read and held again; if not, sums again.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = megabytes_from_env(CACHE_SIZE_ENV, DEFAULT_MEGABYTES)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._owner: object | None = None
        self._entries: OrderedDict[str, Coded] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The bytes held, as the bound counts them (:func:`entry_bytes`)."""
        return self._bytes

    def get_many(
        self, owner: object, stamps: Iterable[tuple[str, int, int]]
    ) -> list[Coded | str | None]:
        """For each ``(lead_id, created_us, count)``: its entry held for ``owner``'s codes
        with that stamp (a marker has no events), :data:`STALE` if it is held with
        another stamp, ``None`` if it is not held."""
        out: list[Coded | str | None] = []
        with self._lock:
            entries = self._entries if owner is self._owner else {}
            for lead_id, created_us, count in stamps:
                entry = entries.get(lead_id)
                if entry is None:
                    out.append(None)
                    self.misses += 1
                elif entry.count != count or entry.created_us != created_us:
                    out.append(STALE)
                    self.misses += 1
                else:
                    out.append(entry)
                    self._entries.move_to_end(lead_id)
                    if entry.events is None:
                        self.misses += 1
                    else:
                        self.hits += 1
        return out

    def put(self, owner: object, entries: Mapping[str, Coded]) -> None:
        """Hold these entries for ``owner``'s codes (an entry for another owner's codes
        empties the cache first); an entry older (a lower count) than the one held is
        dropped: a later write committed first."""
        with self._lock:
            if owner is not self._owner:
                self._entries.clear()
                self._bytes = 0
                self._owner = owner
            for lead_id, entry in entries.items():
                held = self._entries.pop(lead_id, None)
                if held is not None:
                    self._bytes -= entry_bytes(held)
                    if held.created_us == entry.created_us and held.count > entry.count:
                        entry = held
                cost = entry_bytes(entry)
                if cost > self.max_bytes:
                    continue
                self._entries[lead_id] = entry
                self._bytes += cost
            while self._bytes > self.max_bytes:
                _, oldest = self._entries.popitem(last=False)
                self._bytes -= entry_bytes(oldest)

    def forget(self, lead_ids: Iterable[str]) -> None:
        with self._lock:
            for lead_id in lead_ids:
                held = self._entries.pop(lead_id, None)
                if held is not None:
                    self._bytes -= entry_bytes(held)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._owner = None
