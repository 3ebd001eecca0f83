"""The store's side of sales touches, and of the speed-to-lead clock they stop.

Read and written in the caller's transaction. A touch is one row of ``touches``; the
clock it stops is the ``first_touch_us`` of the lead's assignment in force. The caller
holds the lead's lock (ingest, or :func:`lock_lead`), so no routing of the same lead can
replace that assignment between the read and the update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.store import assignments as assignment_store
from pyrometer.store.assignments import AssignmentRow
from pyrometer.store.tables import assignments, leads, touches

KINDS = ("call", "email", "meeting", "note")
MAX_OUTCOME = 2000


@dataclass(frozen=True, slots=True)
class TouchRow:
    """One stored touch; ``event_id`` is set when a tracked ``sales_touch`` event made it."""

    id: int
    lead_id: str
    rep_id: str | None
    kind: str
    at_us: int
    outcome: str | None
    event_id: str | None
    recorded_us: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "rep": self.rep_id,
            "at": iso(self.at_us),
            "outcome": self.outcome,
            "event_id": self.event_id,
            "recorded": iso(self.recorded_us),
        }


_COLUMNS = (
    touches.c.id,
    touches.c.lead_id,
    touches.c.rep_id,
    touches.c.kind,
    touches.c.at_us,
    touches.c.outcome,
    touches.c.event_id,
    touches.c.recorded_us,
)


def _row(row: Any) -> TouchRow:
    return TouchRow(int(row[0]), *row[1:4], int(row[4]), row[5], row[6], int(row[7]))


def lock_lead(conn: Connection, lead_id: str) -> bool:
    """Lock the lead's row until commit (PostgreSQL; SQLite's write transaction already
    excludes other writers); whether the lead exists."""
    query = sa.select(leads.c.lead_id).where(leads.c.lead_id == lead_id).with_for_update()
    return conn.execute(query).first() is not None


def insert(
    conn: Connection,
    *,
    lead_id: str,
    rep_id: str | None,
    kind: str,
    at_us: int,
    outcome: str | None,
    event_id: str | None,
    recorded_us: int,
) -> TouchRow:
    values = {
        "lead_id": lead_id,
        "rep_id": None if rep_id is None else rep_id[:200],
        "kind": kind,
        "at_us": at_us,
        "outcome": None if outcome is None else outcome[:MAX_OUTCOME],
        "event_id": event_id,
        "recorded_us": recorded_us,
    }
    result = conn.execute(touches.insert().values(**values))
    touch_id = int(result.inserted_primary_key[0])
    return TouchRow(touch_id, **values)


def stop_clock(conn: Connection, lead_id: str, at_us: int) -> AssignmentRow | None:
    """Record a touch at ``at_us`` on the lead's assignment in force, if its clock had
    started by then: the assignment as it was before, or ``None`` if the touch counts for
    no clock (no assignment, no clock, or a touch before the clock started).

    A touch earlier than the first one recorded (it arrived late) becomes the first touch:
    the buyer's wait ended then. Whether it *stopped* a clock is ``row.waiting``.
    """
    held = assignment_store.current(conn, [lead_id]).get(lead_id)
    if held is None or held.clock_us is None or at_us < held.clock_us:
        return None
    if held.first_touch_us is not None and held.first_touch_us <= at_us:
        return None
    conn.execute(
        assignments.update().where(assignments.c.id == held.id).values(first_touch_us=at_us)
    )
    return held


def first_touch_at_or_after(conn: Connection, lead_id: str, since_us: int) -> int | None:
    """The earliest touch of the lead at or after ``since_us``: what a new assignment
    whose clock starts at ``since_us`` should start with as its first touch (a touch
    recorded before a late event routed the lead at an earlier time)."""
    query = sa.select(sa.func.min(touches.c.at_us)).where(
        touches.c.lead_id == lead_id, touches.c.at_us >= since_us
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def lead_touches(conn: Connection, lead_id: str, limit: int | None = None) -> list[TouchRow]:
    """The lead's touches in time order (``limit``: only the latest so many)."""
    query = sa.select(*_COLUMNS).where(touches.c.lead_id == lead_id)
    if limit is None:
        return [_row(r) for r in conn.execute(query.order_by(touches.c.at_us, touches.c.id))]
    newest = query.order_by(touches.c.at_us.desc(), touches.c.id.desc()).limit(limit)
    return [_row(r) for r in reversed(conn.execute(newest).all())]
