"""Engines for the store: an SQLite file by default, PostgreSQL when the URL names one.

SQLite is tuned for one writer at a time: WAL (readers never wait for the writer),
``BEGIN IMMEDIATE`` for write transactions (a writer takes the lock before it reads the
state it will change, so two writers cannot both read the old state) and a busy timeout
(writers queue instead of failing). ``synchronous=NORMAL`` keeps every committed
transaction across a killed process; only a power cut can lose the last ones.

Copying the WAL back into the database (a checkpoint) is left to a background thread
(:class:`WalCheckpointer`) in the server, so a request does not pay for it; the
connections' own automatic checkpoint stays on as a safety net at a larger size.
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DEFAULT_URL = "sqlite:///pyrometer.db"
URL_VARIABLE = "PYROMETER_DATABASE_URL"
WRITE = "pyrometer_write"  # execution option: this connection's transactions write
AUTOCHECKPOINT_PAGES = 20_000  # about 80 MB of WAL before a writer checkpoints itself


def json_loads(text: str | bytes) -> Any:
    """JSON text as Python: orjson, or the standard library for what orjson refuses
    (``NaN``, integers past 64 bits) that an older version may have written."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _fold(text: Any) -> Any:
    """SQLite's ``pyro_fold``: NFC and lower case, for searching beyond ASCII (SQLite's
    own ``lower`` and ``LIKE`` fold ASCII letters only). Bytes are read as UTF-8, an
    invalid sequence (an unpaired surrogate in old JSON) as U+FFFD: it must not raise."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return unicodedata.normalize("NFC", text).lower() if isinstance(text, str) else text


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
    return sa.create_engine(url, pool_size=10, max_overflow=20, json_deserializer=json_loads)


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=8,
        json_deserializer=json_loads,
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
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()
        dbapi_connection.create_function("pyro_fold", 1, _fold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


class WalCheckpointer:
    """SQLite: a daemon thread that checkpoints the WAL every ``interval`` seconds.

    A passive checkpoint never waits for or blocks writers, and SQLite releases Python's
    lock while it copies pages, so this work runs beside the requests.
    """

    def __init__(self, engine: Engine, interval: float = 0.5) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-wal", daemon=True)

    def start(self) -> None:
        if self._engine.dialect.name == "sqlite":
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # a busy or closing database: try again next time
                continue
