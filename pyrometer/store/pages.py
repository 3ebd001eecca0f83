"""One lead's event log read a page at a time, newest first, with SQL ``LIMIT``.

A lead page must cost the same whatever the lead's history: these reads walk the
``(lead_id, ts_us)`` index from a position backwards and stop after a page, instead of
loading the whole log.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.model import Event, Transition
from pyrometer.store.tables import events, leads, transitions


class Position(NamedTuple):
    """An event's place in a lead's log: its time, then its id (the core's event order)."""

    ts_us: int
    event_id: str


def events_before(
    conn: Connection, lead_id: str, limit: int, before: Position | None = None
) -> list[Event]:
    """Up to ``limit`` of the lead's events, newest first, strictly before ``before``
    (from the newest when ``None``).

    Written so that any plan walks the ``(lead_id, ts_us)`` index backwards and stops
    after ``limit`` rows: no other filter (PostgreSQL's generic plan of a prepared
    statement, made with the average lead's row count, chose to read all of a heavy
    lead's rows and sort them when the names were filtered here too), and the position
    as a bound on ``ts_us`` the index can use.
    """
    query = sa.select(
        events.c.lead_id, events.c.name, events.c.ts_us, events.c.event_id, events.c.properties
    ).where(events.c.lead_id == lead_id)
    if before is not None:
        query = query.where(
            events.c.ts_us <= before.ts_us,
            sa.or_(events.c.ts_us < before.ts_us, events.c.event_id < before.event_id),
        )
    query = query.order_by(events.c.ts_us.desc(), events.c.event_id.desc()).limit(limit)
    return [
        Event(row.lead_id, row.name, row.ts_us, row.event_id, row.properties or {})
        for row in conn.execute(query)
    ]


def events_between(
    conn: Connection, lead_id: str, start_us: int | None, end_us: int | None, names: Collection[str]
) -> list[Event]:
    """The lead's events of these names in ``[start_us, end_us)``, oldest first (a cap
    window, read when the stored state does not hold its ranks)."""
    query = sa.select(
        events.c.lead_id, events.c.name, events.c.ts_us, events.c.event_id, events.c.properties
    ).where(events.c.lead_id == lead_id, events.c.name.in_(sorted(names)))
    if start_us is not None:
        query = query.where(events.c.ts_us >= start_us)
    if end_us is not None:
        query = query.where(events.c.ts_us < end_us)
    query = query.order_by(events.c.ts_us, events.c.event_id)
    return [
        Event(row.lead_id, row.name, row.ts_us, row.event_id, row.properties or {})
        for row in conn.execute(query)
    ]


def event_name(conn: Connection, event_id: str) -> str | None:
    """The name of the event with this id, if stored."""
    query = sa.select(events.c.name).where(events.c.event_id == event_id)
    return conn.execute(query).scalar_one_or_none()


def lead_row(conn: Connection, lead_id: str) -> sa.Row[Any] | None:
    """The lead's row, as SQLAlchemy reads it (JSON columns decoded)."""
    return conn.execute(sa.select(leads).where(leads.c.lead_id == lead_id)).first()


def transitions_before(
    conn: Connection, lead_id: str, limit: int, before: tuple[int, int] | None = None
) -> list[tuple[int, Transition]]:
    """Up to ``limit`` of the lead's transitions with their row ids, newest first,
    strictly before ``before`` (a time and a row id)."""
    query = sa.select(transitions).where(transitions.c.lead_id == lead_id)
    if before is not None:
        at_us, row_id = before
        query = query.where(
            transitions.c.at_us <= at_us,
            sa.or_(transitions.c.at_us < at_us, transitions.c.id < row_id),
        )
    query = query.order_by(transitions.c.at_us.desc(), transitions.c.id.desc()).limit(limit)
    return [
        (r.id, Transition(r.lead_id, r.at_us, r.kind, r.old, r.new, r.cause))
        for r in conn.execute(query)
    ]
