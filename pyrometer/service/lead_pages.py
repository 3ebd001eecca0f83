"""A lead's ledger and events, a page at a time, derived from the stored state.

A lead page used to replay the lead's whole event log to rebuild its ledger: 2 s and
8.5 MB for a lead with 50,000 events. Replaying is not needed. A rule without a cap gives
every matching event its points; a capped (or ``once``) rule gives an event the points of
its rank among the rule's events of its window, and the stored state keeps, per window,
the earliest events that can still earn points (``LeadState.windows``, kept exact by
ingest in any arrival order): an event among them has its rank there, any other has used
up the cap. So one page of events, read newest first with SQL ``LIMIT``, gives its ledger
lines directly, at a cost that does not grow with the history.

Where the state holds no ranks for a window (a state written by a version that bounds its
windows), the window's own events are read to rank them: still a window, not the log.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState, WindowKey
from pyrometer.core.model import EngagementLine, Event
from pyrometer.core.playbook import EngagementRule, Playbook
from pyrometer.store import pages
from pyrometer.store.pages import Position

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
# A ledger page reads at most this many pages' worth of events (events no rule gives
# points to are skipped in SQL, but a rule's property conditions are checked here): a
# page may then hold fewer lines than asked, with a cursor to go on.
_SCAN_PAGES = 10


def rule_event_names(book: Playbook) -> frozenset[str]:
    """The event names some engagement rule may give points to."""
    return frozenset(alt.event for rule in book.engagement for alt in rule.alternatives)


class LedgerOfEvents:
    """The final ledger lines of single events of one lead, under one playbook and the
    lead's stored state for that playbook."""

    def __init__(self, conn: Connection, book: Playbook, state: LeadState) -> None:
        self._conn = conn
        self._book = book
        self._state = state
        self._ranked: dict[WindowKey, list[tuple[int, str]]] = {}

    def lines(self, event: Event) -> list[EngagementLine]:
        out = []
        for rule in self._book.rules_matching(event.name, event.properties):
            points = rule.points_at_rank(self._rank(rule, event)) if rule.limited else rule.points
            out.append(
                EngagementLine(rule.name, event.event_id, event.name, event.ts_us, points, points)
            )
        return out

    def _rank(self, rule: EngagementRule, event: Event) -> int:
        window = event.ts_us // rule.window_us if rule.window_us else 0
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
            end = start + rule.window_us if start is not None and rule.window_us else None
            names = {alt.event for alt in rule.alternatives}
            found = self._ranked[key] = [
                e.order_key
                for e in pages.events_between(self._conn, self._state.lead_id, start, end, names)
                if any(r.name == rule.name for r in self._book.rules_matching(e.name, e.properties))
            ]
        return found


def ledger_page(
    conn: Connection,
    book: Playbook,
    state: LeadState,
    limit: int,
    before: Position | None = None,
) -> tuple[list[EngagementLine], Position | None]:
    """Engagement lines of the lead's events before ``before``, newest event first, up
    to ``limit`` lines (an event's lines stay on one page), and where the next page
    starts (``None``: this was the last)."""
    derive = LedgerOfEvents(conn, book, state)
    names = rule_event_names(book)
    lines: list[EngagementLine] = []
    position = before
    budget = limit * _SCAN_PAGES
    while True:
        chunk = pages.events_before(conn, state.lead_id, limit, position, names)
        for event in chunk:
            new = derive.lines(event)
            if lines and len(lines) + len(new) > limit:
                return lines, position
            lines += new
            position = Position(event.ts_us, event.event_id)
            budget -= 1
            if budget <= 0:
                return lines, position
        if len(chunk) < limit:
            return lines, None


def events_page(
    conn: Connection, lead_id: str, limit: int, before: Position | None = None
) -> tuple[Sequence[Event], Position | None]:
    """Up to ``limit`` events of the lead before ``before``, newest first, and where the
    next page starts."""
    found = pages.events_before(conn, lead_id, limit + 1, before)
    if len(found) <= limit:
        return found, None
    shown = found[:limit]
    return shown, Position(shown[-1].ts_us, shown[-1].event_id)
