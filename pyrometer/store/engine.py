"""Engines for the store: an SQLite file by default, PostgreSQL when the URL names one.

SQLite is tuned for one writer at a time: WAL (readers never wait for the writer),
``BEGIN IMMEDIATE`` for write transactions (a writer takes the lock before it reads the
state it will change, so two writers cannot both read the old state) and a busy timeout
(writers queue instead of failing). ``synchronous=NORMAL`` keeps every committed
transaction across a killed process; only a power cut can lose the last ones.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DEFAULT_URL = "sqlite:///pyrometer.db"
URL_VARIABLE = "PYROMETER_DATABASE_URL"
WRITE = "pyrometer_write"  # execution option: this connection's transactions write


def database_url(url: str | None = None) -> str:
    """The URL given, else ``PYROMETER_DATABASE_URL``, else ``pyrometer.db`` here."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def create_store_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(False))
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=8,
        poolclass=sa.pool.QueuePool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN instead of the driver's own guesswork.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"
