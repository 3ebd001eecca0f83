"""Walking every lead id in order, a page at a time (what a dry run over all leads reads)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.tables import leads


def lead_count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(leads)).scalar_one())


def lead_ids_after(conn: Connection, after: str | None, limit: int) -> list[str]:
    """Up to ``limit`` lead ids greater than ``after`` (None: from the first), in order."""
    query = sa.select(leads.c.lead_id).order_by(leads.c.lead_id).limit(limit)
    if after is not None:
        query = query.where(leads.c.lead_id > after)
    return list(conn.execute(query).scalars())
