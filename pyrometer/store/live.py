"""Reading the transitions table by id: what changed since a reader last looked.

The dashboard's live queue polls this from each open page (every half second), so a lead
turning hot in any server process reaches every page: the store is the one place all
processes write to. The primary key is the read's index.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.tables import transitions

HOT = "hot"


def last_transition_id(conn: Connection) -> int:
    """The newest transition's id (0: none yet)."""
    return int(conn.execute(sa.select(sa.func.max(transitions.c.id))).scalar() or 0)


def hot_changes_after(conn: Connection, after_id: int, limit: int = 500) -> list[tuple[int, str]]:
    """``(id, lead_id)`` of temperature transitions into or out of hot after ``after_id``,
    oldest first."""
    query = (
        sa.select(transitions.c.id, transitions.c.lead_id)
        .where(
            transitions.c.id > after_id,
            transitions.c.kind == "temperature",
            sa.or_(transitions.c.new == HOT, transitions.c.old == HOT),
        )
        .order_by(transitions.c.id)
        .limit(limit)
    )
    return [(int(row.id), row.lead_id) for row in conn.execute(query)]
