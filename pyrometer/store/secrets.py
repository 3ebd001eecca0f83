"""A secret made once per store and shared by every process that opens it.

The first process to ask makes it; processes asking at the same moment (``serve --workers
N``) insert side by side and all read back the one row that won, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.engine import dialect_insert
from pyrometer.store.tables import server_secrets


def _read(conn: Connection, name: str) -> str | None:
    value = conn.execute(
        sa.select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one_or_none()
    return None if value is None else str(value)


def get_or_create(conn: Connection, name: str, now_us: int) -> str:
    """The secret called ``name``: 32 random bytes (URL-safe text), made on first use."""
    found = _read(conn, name)
    if found is not None:
        return found
    row = {"name": name, "value": secrets.token_urlsafe(32), "created_us": now_us}
    insert = dialect_insert(conn, server_secrets)
    conn.execute(insert.values(**row).on_conflict_do_nothing(index_elements=["name"]))
    made = _read(conn, name)
    assert made is not None
    return made
