"""The store's side of sales reps: rows of plain data, read and written in a caller's
transaction.

The store does not validate a rep: the service parses every rep with
:func:`pyrometer.routing.reps.parse_rep` before it writes one, and again when it reads one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.tables import reps


@dataclass(frozen=True, slots=True)
class RepRow:
    """One stored rep: its data as written, and when it was created and last changed."""

    id: str
    data: dict[str, Any]
    created_us: int
    updated_us: int


_COLUMNS = (reps.c.id, reps.c.rep, reps.c.created_us, reps.c.updated_us)


def _row(row: Any) -> RepRow:
    return RepRow(row.id, dict(row.rep), int(row.created_us), int(row.updated_us))


def all_reps(conn: Connection) -> list[RepRow]:
    """Every rep, by id."""
    return [_row(row) for row in conn.execute(sa.select(*_COLUMNS).order_by(reps.c.id))]


def rep_row(conn: Connection, rep_id: str, *, for_update: bool = False) -> RepRow | None:
    """The rep ``rep_id``, or None; ``for_update`` locks its row (PostgreSQL) until commit."""
    query = sa.select(*_COLUMNS).where(reps.c.id == rep_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _row(row)


def insert_rep(conn: Connection, rep_id: str, data: Mapping[str, Any], now_us: int) -> RepRow:
    """A new rep; the caller checked that ``rep_id`` is free (an ``IntegrityError`` if not)."""
    values = {"id": rep_id, "rep": dict(data), "created_us": now_us, "updated_us": now_us}
    conn.execute(reps.insert().values(**values))
    return RepRow(rep_id, dict(data), now_us, now_us)


def replace_rep(conn: Connection, rep_id: str, data: Mapping[str, Any], now_us: int) -> None:
    """Overwrite the data of the existing rep ``rep_id``."""
    conn.execute(reps.update().where(reps.c.id == rep_id).values(rep=dict(data), updated_us=now_us))


def delete_rep(conn: Connection, rep_id: str) -> bool:
    """Delete the rep ``rep_id``; whether there was one."""
    return bool(conn.execute(reps.delete().where(reps.c.id == rep_id)).rowcount)
