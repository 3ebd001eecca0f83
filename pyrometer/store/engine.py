"""Engines for the store: an SQLite file by default, PostgreSQL when the URL names one.

SQLite is tuned for one writer at a time: WAL (readers never wait for the writer),
``BEGIN IMMEDIATE`` for write transactions (a writer takes the lock before it reads the
state it will change, so two writers cannot both read the old state) and a busy timeout
(writers queue instead of failing). ``synchronous=NORMAL`` keeps every committed
transaction across a killed process; only a power cut can lose the last ones.

Copying the WAL back into the database (a checkpoint) is left to a background thread
(:class:`WalCheckpointer`) in the server, so a request does not pay for it; the
connections' own automatic checkpoint stays on as a safety net at a larger size.

Every connection has time-outs (:class:`StoreTimeouts`), so a database that stops
answering (a partitioned network, a long lock) fails a request instead of holding it
for good: the API answers those with 503 and ``Retry-After``.
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from pyrometer.envconfig import seconds_from_env

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


CONNECT_TIMEOUT_VARIABLE = "PYROMETER_DB_CONNECT_TIMEOUT"
STATEMENT_TIMEOUT_VARIABLE = "PYROMETER_DB_STATEMENT_TIMEOUT"
SUPPORTED_URLS = "sqlite:///FILE, postgresql://... or postgres://... (driver psycopg)"
# Scheme as written -> the SQLAlchemy driver name used.
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class UnsupportedURL(ValueError):
    """A store URL Pyrometer cannot use; the message names the supported ones."""


@dataclass(frozen=True)
class StoreTimeouts:
    """How long the store may take, in seconds (0: no limit).

    ``connect``: opening a connection (PostgreSQL's ``connect_timeout``; libpq counts
    whole seconds, at least 2). ``statement``: one statement (PostgreSQL's
    ``statement_timeout``, and the TCP time-outs that notice a silent peer), also how
    long an SQLite writer waits for the lock (``busy_timeout``) and a request for a
    pooled connection.
    """

    connect: float = 5.0
    statement: float = 30.0

    @classmethod
    def from_env(cls) -> StoreTimeouts:
        return cls(
            connect=seconds_from_env(CONNECT_TIMEOUT_VARIABLE, cls.connect, allow_zero=True),
            statement=seconds_from_env(STATEMENT_TIMEOUT_VARIABLE, cls.statement, allow_zero=True),
        )


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


def parse_store_url(url: str | None = None) -> sa.URL:
    """The store's URL with the driver Pyrometer uses (``postgres://`` and
    ``postgresql://`` are psycopg); anything else is an :class:`UnsupportedURL` naming
    what is supported, so the CLI prints one line instead of a driver's traceback."""
    text = database_url(url)
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise UnsupportedURL(
            f"the store URL {text.split('://')[0][:40]!r}... is not a URL; use {SUPPORTED_URLS}"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise UnsupportedURL(
            f"unsupported store URL scheme {parsed.drivername!r}; use {SUPPORTED_URLS}"
        )
    return parsed.set(drivername=driver)


def create_store_engine(url: str | None = None, timeouts: StoreTimeouts | None = None) -> Engine:
    timeouts = timeouts or StoreTimeouts.from_env()
    parsed = parse_store_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False), timeouts)
    return sa.create_engine(
        _with_pg_timeouts(parsed, timeouts),
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeouts.statement or 30.0,
        json_deserializer=json_loads,
    )


def _with_pg_timeouts(url: sa.URL, timeouts: StoreTimeouts) -> sa.URL:
    """libpq's time-outs added to the URL's query, unless the URL sets them itself.

    ``statement_timeout`` ends a statement the server is stuck on (a lock wait);
    ``tcp_user_timeout`` and the keepalives end a connection whose peer went silent (a
    partition: the server never sees the statement, so its own time-out cannot help).
    """
    query: dict[str, str | tuple[str, ...]] = dict(url.query)
    extra: dict[str, str] = {}
    if timeouts.connect:
        extra["connect_timeout"] = str(max(2, round(timeouts.connect)))
    if timeouts.statement:
        millis = round(timeouts.statement * 1000)
        extra.update(
            tcp_user_timeout=str(millis),
            keepalives="1",
            keepalives_idle=str(max(1, round(timeouts.statement / 2))),
            keepalives_interval="2",
            keepalives_count="3",
        )
        options = query.get("options", "")
        options = " ".join(options) if isinstance(options, tuple) else options
        if "statement_timeout" not in options:
            query["options"] = f"{options} -c statement_timeout={millis}".strip()
    for name, value in extra.items():
        query.setdefault(name, value)
    return url.set(query=query)


def _sqlite_engine(url: str, timeouts: StoreTimeouts) -> Engine:
    busy = timeouts.statement or 3600.0
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy},
        pool_size=8,
        max_overflow=8,
        pool_timeout=busy,
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
        cursor.execute(f"PRAGMA busy_timeout={round(busy * 1000)}")
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


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """``INSERT`` of the connection's dialect (for ``ON CONFLICT DO NOTHING``)."""
    return (postgresql if is_postgres(conn) else sqlite).insert(table)


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
