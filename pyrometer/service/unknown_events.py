"""Events stored that the playbook in force gives no meaning to: counted, never silent.

An event no rule, stage or suppression knows (directly or through ``aliases``) is stored
and worth 0. This report lists them per name with how often and when they were last seen,
so a team maps them (``aliases.events``) or fixes the sender. It reads the event log as it
is now, under the playbook in force: publishing an alias makes its events known at once.
The query is one scan of the events table grouped by name (no index on the name: a
report, not a hot path).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from pyrometer.service.touches import EVENT as TOUCH_EVENT
from pyrometer.store.tables import events


def unknown_events_report(service: Service, limit: int) -> dict[str, Any]:
    """``{playbook_version, total, names, events: [{event, count, first_seen, last_seen,
    last_received}]}``, most frequent first (at most ``limit`` names listed)."""

    def work(conn: Connection) -> dict[str, Any]:
        version, book = service.playbooks.active(conn)
        # sales_touch is known to the service, not to playbooks: it records a touch.
        known = sorted(book.known_events | {TOUCH_EVENT})
        query = sa.select(
            events.c.name,
            sa.func.count().label("n"),
            sa.func.min(events.c.ts_us).label("first_us"),
            sa.func.max(events.c.ts_us).label("last_us"),
            sa.func.max(events.c.received_us).label("received_us"),
        ).group_by(events.c.name)
        if known:
            query = query.where(events.c.name.not_in(known))
        rows = sorted(conn.execute(query).all(), key=lambda row: (-row.n, row.name))
        return {
            "playbook_version": version,
            "total": sum(int(row.n) for row in rows),
            "names": len(rows),
            "events": [
                {
                    "event": row.name,
                    "count": int(row.n),
                    "first_seen": iso(row.first_us),
                    "last_seen": iso(row.last_us),
                    "last_received": iso(row.received_us),
                }
                for row in rows[:limit]
            ],
        }

    return service.read(work)
