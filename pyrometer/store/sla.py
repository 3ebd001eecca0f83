"""The store's side of the speed-to-lead clock: breaches due, and the routed history.

Read and written in the caller's transaction. What a breach does (notify, reassign) is
decided by :mod:`pyrometer.service.sla_watch`; the figures of the report by
:mod:`pyrometer.routing.speed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.engine import is_postgres
from pyrometer.store.tables import assignments, leads

_SUPPRESSED = "suppressed"


def _overdue(now_us: int) -> sa.ColumnElement[bool]:
    """A clock that runs (in force, started, not touched), past due, not yet breached."""
    return sa.and_(
        assignments.c.ended_us.is_(None),
        assignments.c.clock_us.is_not(None),
        assignments.c.first_touch_us.is_(None),
        assignments.c.breached_us.is_(None),
        assignments.c.sla_due_us <= now_us,
    )


def overdue_leads(conn: Connection, now_us: int, limit: int) -> list[str]:
    """Leads whose assignment in force is past due and not yet breached, most overdue
    first (no lock: the caller locks them, then checks again)."""
    query = (
        sa.select(assignments.c.lead_id)
        .where(_overdue(now_us))
        .order_by(assignments.c.sla_due_us, assignments.c.id)
        .limit(limit)
    )
    return list(dict.fromkeys(conn.execute(query).scalars()))


def lock_free_leads(conn: Connection, lead_ids: Iterable[str]) -> list[str]:
    """Lock those of these leads no other transaction holds, in id order, until commit;
    the ones locked (and still there). PostgreSQL skips a locked lead rather than wait for
    it: an ingest holding it will commit soon, and the next round takes it. SQLite's write
    transaction already excludes every other writer."""
    ids = sorted(set(lead_ids))
    if not ids:
        return []
    query = sa.select(leads.c.lead_id).where(leads.c.lead_id.in_(ids)).order_by(leads.c.lead_id)
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).scalars())


def mark_breached(conn: Connection, assignment_id: int, now_us: int) -> bool:
    """Mark one assignment breached, if its clock still runs past due; whether it did."""
    result = conn.execute(
        assignments.update()
        .where(assignments.c.id == assignment_id, _overdue(now_us))
        .values(breached_us=now_us)
    )
    return bool(result.rowcount)


def next_due_us(conn: Connection) -> int | None:
    """The earliest due time of a running clock not yet breached (the watcher's wake-up)."""
    query = sa.select(sa.func.min(assignments.c.sla_due_us)).where(
        assignments.c.ended_us.is_(None),
        assignments.c.clock_us.is_not(None),
        assignments.c.first_touch_us.is_(None),
        assignments.c.breached_us.is_(None),
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def breached_reps(conn: Connection, lead_id: str, clock_us: int) -> set[str]:
    """The reps who already let this clock of the lead run past due (a reassignment does
    not give the lead back to them)."""
    query = sa.select(assignments.c.rep_id).where(
        assignments.c.lead_id == lead_id,
        assignments.c.clock_us == clock_us,
        assignments.c.breached_us.is_not(None),
        assignments.c.rep_id.is_not(None),
    )
    return set(conn.execute(query).scalars())


@dataclass(frozen=True, slots=True)
class RoutedRow:
    """One assignment that carried a speed-to-lead clock, and its lead's stage now."""

    lead_id: str
    rep_id: str | None
    rule: str
    clock_us: int
    first_touch_us: int | None
    sla_due_us: int | None
    breached_us: int | None
    stage: str | None


def routed(conn: Connection, since_us: int, until_us: int) -> list[RoutedRow]:
    """Assignments whose clock started in [since, until), to a rep or the unassigned queue
    (a do-not-contact lead's record of not being routed has no clock and is left out)."""
    query = (
        sa.select(
            assignments.c.lead_id,
            assignments.c.rep_id,
            assignments.c.rule,
            assignments.c.clock_us,
            assignments.c.first_touch_us,
            assignments.c.sla_due_us,
            assignments.c.breached_us,
            leads.c.stage,
        )
        .select_from(assignments.outerjoin(leads, leads.c.lead_id == assignments.c.lead_id))
        .where(
            assignments.c.clock_us >= since_us,
            assignments.c.clock_us < until_us,
            assignments.c.rule != _SUPPRESSED,
        )
        .order_by(assignments.c.clock_us, assignments.c.id)
    )
    return [
        RoutedRow(
            r.lead_id,
            r.rep_id,
            r.rule,
            int(r.clock_us),
            None if r.first_touch_us is None else int(r.first_touch_us),
            None if r.sla_due_us is None else int(r.sla_due_us),
            None if r.breached_us is None else int(r.breached_us),
            r.stage,
        )
        for r in conn.execute(query)
    ]
