"""A lead's ledger and events, a page at a time, derived from the stored state.

A lead page used to replay the lead's whole event log to rebuild its ledger: 2 s and
8.5 MB for a lead with 50,000 events. Replaying is not needed. A rule without a cap gives
every matching event its points; a capped (or ``once``) rule gives an event the points of
its rank among the rule's events of its window, and the stored state keeps, per window,
the earliest events that can still earn points (``LeadState.windows``, kept exact by
ingest in any arrival order): an event among them has its rank there, any other has used
up the cap. So one page of events, read newest first with SQL ``LIMIT``, gives its ledger
lines directly, at a cost that does not grow with the history. The windows themselves
stay in the database until a page asks for the few its events fall in
(:class:`StoredWindows`): a lead with a year of history keeps thousands.

Where the state holds no ranks for a window (a state written by a version that bounds its
windows), the window's own events are read to rank them: still a window, not the log.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState, Member, WindowKey
from pyrometer.core.model import EngagementLine, Event, Transition
from pyrometer.core.playbook import EngagementRule, Playbook
from pyrometer.service.scoring import LeadRecord
from pyrometer.store import pages, repo
from pyrometer.store.pages import Position

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
# A ledger page reads at most this many pages' worth of events (an event no rule gives
# points to has no line): a page may then hold fewer lines than asked, with a cursor to
# go on.
_SCAN_PAGES = 10


class StoredWindows(Mapping[WindowKey, tuple[Member, ...]]):
    """A stored state's cap windows, read from the database only when asked for: a long
    history keeps thousands of them (reading them all took most of a page's time at
    50,000 events), a page needs a few. :meth:`fetch` reads many in one query."""

    def __init__(self, conn: Connection, lead_id: str) -> None:
        self._conn = conn
        self._lead_id = lead_id
        self._read: dict[WindowKey, tuple[Member, ...] | None] = {}

    def fetch(self, keys: Iterable[WindowKey]) -> None:
        missing = {key for key in keys if key not in self._read}
        if not missing:
            return
        found = pages.state_windows(self._conn, self._lead_id, missing)
        for key in missing:
            members = found.get(key)
            self._read[key] = (
                None
                if members is None
                else tuple((int(ts), str(eid), str(name)) for ts, eid, name in members)
            )

    def __getitem__(self, key: WindowKey) -> tuple[Member, ...]:
        self.fetch((key,))
        found = self._read[key]
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[WindowKey]:
        raise TypeError("the stored windows are read by key only")

    def __len__(self) -> int:
        raise TypeError("the stored windows are read by key only")


def read_lead(conn: Connection, lead_id: str) -> LeadRecord | None:
    """The lead's record for reading a page: its state's cap windows left in the
    database until asked for (:class:`StoredWindows`)."""
    row = pages.lead_row(conn, lead_id)
    if row is None:
        return None
    data = dict(row._mapping["state"])
    data["windows"] = []
    state = replace(LeadState.from_dict(data), windows=StoredWindows(conn, lead_id))
    return repo.record_of(row, state)


class LedgerOfEvents:
    """The final ledger lines of single events of one lead, under one playbook and the
    lead's stored state for that playbook."""

    def __init__(self, conn: Connection, book: Playbook, state: LeadState) -> None:
        self._conn = conn
        self._book = book
        self._state = state
        self._ranked: dict[WindowKey, list[tuple[int, str]]] = {}

    def prefetch(self, chunk: Sequence[Event]) -> None:
        """Read the cap windows these events need in one query (stored windows only)."""
        windows = self._state.windows
        if not isinstance(windows, StoredWindows):
            return
        windows.fetch(
            (rule.name, _window_of(rule, e.ts_us))
            for e in chunk
            for rule in self._book.rules_matching(e.name, e.properties)
            if rule.limited
        )

    def lines(self, event: Event) -> list[EngagementLine]:
        out = []
        for rule in self._book.rules_matching(event.name, event.properties):
            points = rule.points_at_rank(self._rank(rule, event)) if rule.limited else rule.points
            out.append(
                EngagementLine(rule.name, event.event_id, event.name, event.ts_us, points, points)
            )
        return out

    def _rank(self, rule: EngagementRule, event: Event) -> int:
        window = _window_of(rule, event.ts_us)
        members = self._state.windows.get((rule.name, window))
        if members is not None:
            member = (event.ts_us, event.event_id, event.name)
            if member in members:
                return members.index(member)
            if len(members) >= rule.slots:
                return rule.slots  # the window's cap went to earlier events
        return bisect.bisect_left(self._window(rule, window), event.order_key)

    def _window(self, rule: EngagementRule, window: int) -> list[tuple[int, str]]:
        """The order keys of the window's events this rule gives points to, in order."""
        key = (rule.name, window)
        found = self._ranked.get(key)
        if found is None:
            start = window * rule.window_us if rule.window_us else None
            end = start + rule.window_us if start is not None else None
            names = {alt.event for alt in rule.alternatives}
            found = self._ranked[key] = [
                e.order_key
                for e in pages.events_between(self._conn, self._state.lead_id, start, end, names)
                if any(r.name == rule.name for r in self._book.rules_matching(e.name, e.properties))
            ]
        return found


def _window_of(rule: EngagementRule, ts_us: int) -> int:
    """The number of the rule's cap window ``ts_us`` falls in (0: the rule has one)."""
    return ts_us // rule.window_us if rule.window_us else 0


def ledger_page(
    conn: Connection,
    book: Playbook,
    state: LeadState,
    limit: int,
    before: Position | None = None,
    newest: Sequence[Event] | None = None,
) -> tuple[list[EngagementLine], Position | None]:
    """Engagement lines of the lead's events before ``before``, newest event first, up
    to ``limit`` lines (an event's lines stay on one page), and where the next page
    starts (``None``: this was the last).

    ``newest``: the lead's newest events, already read by the caller (at least
    ``limit + 1`` of them, or all), for the first page.
    """
    derive = LedgerOfEvents(conn, book, state)
    lines: list[EngagementLine] = []
    position = before
    budget = limit * _SCAN_PAGES
    size = limit + 1  # one more than a page: a full page knows whether more follow
    chunk = newest if newest is not None and before is None else None
    while True:
        if chunk is None:
            chunk = pages.events_before(conn, state.lead_id, size, position)
        derive.prefetch(chunk)
        for event in chunk:
            new = derive.lines(event)
            if lines and len(lines) + len(new) > limit:
                return lines, position
            lines += new
            position = Position(event.ts_us, event.event_id)
            budget -= 1
            if budget <= 0:
                return lines, position
        if len(chunk) < size:
            return lines, None
        chunk = None


def events_page(
    conn: Connection,
    lead_id: str,
    limit: int,
    before: Position | None = None,
    newest: Sequence[Event] | None = None,
) -> tuple[Sequence[Event], Position | None]:
    """Up to ``limit`` events of the lead before ``before``, newest first, and where the
    next page starts (``newest`` as for :func:`ledger_page`)."""
    if newest is not None and before is None:
        found = newest[: limit + 1]
    else:
        found = pages.events_before(conn, lead_id, limit + 1, before)
    if len(found) <= limit:
        return found, None
    shown = found[:limit]
    return shown, Position(shown[-1].ts_us, shown[-1].event_id)


def transitions_page(
    conn: Connection, lead_id: str, limit: int, before: tuple[int, int] | None = None
) -> tuple[list[Transition], tuple[int, int] | None]:
    """The lead's ``limit`` transitions before ``before`` (the latest when ``None``), in
    time order, and where the page before them starts (``None``: none are older)."""
    found = pages.transitions_before(conn, lead_id, limit + 1, before)
    shown = found[:limit]
    older = None
    if len(found) > limit:
        row_id, oldest = shown[-1]
        older = (oldest.at_us, row_id)
    return [t for _, t in reversed(shown)], older
