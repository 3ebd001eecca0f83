"""Reading part of a lead's event log: the events inside given time spans."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.model import Event
from pyrometer.store.repo import EVENT_COLUMNS, event_of
from pyrometer.store.tables import events


def lead_events_in(conn: Connection, lead_id: str, spans: Iterable[tuple[int, int]]) -> list[Event]:
    """The lead's events with ``start <= ts_us < end`` for any span (the index on
    ``(lead_id, ts_us)`` reads only those); overlapping spans are merged first."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[Event] = []
    for start, end in merged:
        query = sa.select(*EVENT_COLUMNS).where(
            events.c.lead_id == lead_id, events.c.ts_us >= start, events.c.ts_us < end
        )
        out += [event_of(row) for row in conn.execute(query)]
    return out
