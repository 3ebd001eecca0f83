"""The store's side of routing: assignment rows and the reps' recent load.

Read and written in the caller's transaction. Routing decisions are made by
:mod:`pyrometer.routing`; this module only reads what they need and records what they
chose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.engine import is_postgres
from pyrometer.store.tables import assignments

_ROUTING_LOCK = 0x50595252  # "PYRR": one routing decision at a time per store (PostgreSQL)


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """One stored assignment (see the ``assignments`` table for each field)."""

    id: int
    lead_id: str
    rep_id: str | None
    at_us: int
    rule: str
    reason: str
    cause: str
    counts: bool
    clock_us: int | None
    sla_due_us: int | None
    first_touch_us: int | None
    breached_us: int | None
    ended_us: int | None

    @property
    def waiting(self) -> bool:
        """Its speed-to-lead clock runs: routed, not touched yet, not replaced."""
        return self.clock_us is not None and self.first_touch_us is None and self.ended_us is None


_COLUMNS = (
    assignments.c.id,
    assignments.c.lead_id,
    assignments.c.rep_id,
    assignments.c.at_us,
    assignments.c.rule,
    assignments.c.reason,
    assignments.c.cause,
    assignments.c.counts,
    assignments.c.clock_us,
    assignments.c.sla_due_us,
    assignments.c.first_touch_us,
    assignments.c.breached_us,
    assignments.c.ended_us,
)


def _row(row: Any) -> AssignmentRow:
    return AssignmentRow(*row[:7], bool(row[7]), *row[8:])


def lock_routing(conn: Connection) -> None:
    """Serialise routing decisions until commit, so two transactions cannot both give the
    last free place of a rep's capacity away (SQLite's write transaction already does)."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ROUTING_LOCK})")


def window_load(conn: Connection, since_us: int) -> tuple[dict[str, int], dict[str, int]]:
    """Each rep's leads that count against capacity assigned after ``since_us``, and each
    rep's latest such assignment ever (the round-robin's tie-break)."""
    counts: dict[str, int] = {}
    query = (
        sa.select(assignments.c.rep_id, sa.func.count())
        .where(assignments.c.counts, assignments.c.at_us > since_us)
        .group_by(assignments.c.rep_id)
    )
    for rep_id, count in conn.execute(query):
        if rep_id is not None:
            counts[rep_id] = int(count)
    latest = (
        sa.select(assignments.c.rep_id, sa.func.max(assignments.c.at_us))
        .where(assignments.c.counts, assignments.c.rep_id.is_not(None))
        .group_by(assignments.c.rep_id)
    )
    last = {rep_id: int(at) for rep_id, at in conn.execute(latest)}
    return counts, last


def current(conn: Connection, lead_ids: Iterable[str]) -> dict[str, AssignmentRow]:
    """Each lead's assignment in force (the latest not replaced), if any."""
    ids = sorted(set(lead_ids))
    found: dict[str, AssignmentRow] = {}
    for start in range(0, len(ids), 500):
        query = (
            sa.select(*_COLUMNS)
            .where(
                assignments.c.lead_id.in_(ids[start : start + 500]),
                assignments.c.ended_us.is_(None),
            )
            .order_by(assignments.c.id)
        )
        for row in conn.execute(query):
            found[row.lead_id] = _row(row)
    return found


def history(conn: Connection, lead_id: str) -> list[AssignmentRow]:
    """Every assignment of a lead, oldest first."""
    query = sa.select(*_COLUMNS).where(assignments.c.lead_id == lead_id).order_by(assignments.c.id)
    return [_row(row) for row in conn.execute(query)]


def insert(
    conn: Connection,
    *,
    lead_id: str,
    rep_id: str | None,
    at_us: int,
    rule: str,
    reason: str,
    cause: str,
    counts: bool,
    clock_us: int | None,
    sla_due_us: int | None,
    recorded_us: int,
    first_touch_us: int | None = None,
    breached_us: int | None = None,
) -> int:
    """Record an assignment; the lead's earlier one in force ends at ``at_us``."""
    conn.execute(
        assignments.update()
        .where(assignments.c.lead_id == lead_id, assignments.c.ended_us.is_(None))
        .values(ended_us=at_us)
    )
    result = conn.execute(
        assignments.insert().values(
            lead_id=lead_id,
            rep_id=rep_id,
            at_us=at_us,
            rule=rule,
            reason=reason[:500],
            cause=cause[:250],
            counts=counts,
            clock_us=clock_us,
            sla_due_us=sla_due_us,
            first_touch_us=first_touch_us,
            breached_us=breached_us,
            recorded_us=recorded_us,
        )
    )
    return int(result.inserted_primary_key[0])
