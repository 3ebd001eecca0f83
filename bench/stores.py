"""The stores a service benchmark runs on: a fresh SQLite file, or a fresh schema of the
PostgreSQL server the tests use (dropped afterwards), so runs never see each other's rows."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_SERVER = os.environ.get("PYROMETER_BENCH_POSTGRES") or os.environ.get(
    "PYROMETER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@contextmanager
def fresh_store(kind: str, name: str = "bench") -> Iterator[str]:
    """The URL of an empty store of ``kind`` (``sqlite`` or ``postgres``) while inside."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/{name}.db"
        return
    if kind != "postgres":
        raise SystemExit(f"unknown store {kind!r} (sqlite, postgres)")
    import sqlalchemy as sa

    schema = f"pyro_{name}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_SERVER)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
