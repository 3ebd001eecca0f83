"""The scope of an API key's hash, read from the store on every request.

A revoked key must fail on the very next request, in every server process, whichever
process or command revoked it. So nothing is cached: each request asks the store. What
keeps that cheap is asking it directly, one prepared statement on a connection kept for
the purpose, rather than through the engine's pool and a transaction (52 µs of CPU per
lookup on SQLite, 166 on PostgreSQL, plus 80 for a hop to a worker thread):

- **SQLite**: one connection in autocommit mode, queried on the caller's thread (the
  event loop): an indexed read of a local file, about 3 µs. Readers never wait for the
  writer in WAL mode.
- **PostgreSQL**: an asynchronous connection (psycopg) in autocommit mode, on the
  event loop, so the round trip holds no thread (nor the loop, however far the database
  is): about 25 µs of CPU per query with uvloop (as ``serve`` runs), 40 with asyncio's
  own loop. A blocking query would cost 12 µs, but would stall every request of the
  process for the round trip. Lookups go in rounds: the requests that arrive while one
  round's query is out are answered together by the next, one query for all their keys
  (most carry the same few keys). Every request is still answered by a query that began
  after it arrived, so a revocation committed before a request is always seen by it;
  under load, the store answers one query per round trip instead of one per request.

A connection that fails is dropped and the lookup runs once more on a new one; a store
that cannot be reached, or (PostgreSQL) does not answer within
:data:`LOOKUP_TIMEOUT_SECONDS`, raises :class:`StoreUnreachable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

_SQLITE = "SELECT id, scope FROM api_keys WHERE key_hash = ? AND NOT revoked"
_POSTGRES = "SELECT id, scope FROM api_keys WHERE key_hash = %s AND NOT revoked"
_POSTGRES_MANY = "SELECT key_hash, id, scope FROM api_keys WHERE key_hash = ANY(%s) AND NOT revoked"
Found = tuple[int, str]  # the key's id and scope
ROUND_KEYS = 256  # distinct keys asked in one query at most
CONNECT_TIMEOUT_SECONDS = 5
LOOKUP_TIMEOUT_SECONDS = 5.0  # the whole lookup, connecting included, on PostgreSQL


class StoreUnreachable(Exception):
    """The key could not be checked: the store did not answer."""


class KeyLookup:
    """``scope(digest)``: the id and scope of an unrevoked key with that SHA-256 hash, else
    None."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        database = engine.url.database
        # An in-memory SQLite database is private to each connection: use the pool's.
        self._via_pool = engine.dialect.name == "sqlite" and (
            not database or database == ":memory:" or database.startswith("file:")
        )
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_lock = threading.Lock()
        self._pg = _PostgresConnections(engine) if self._postgres else None

    async def scope(self, digest: str) -> Found | None:
        if self._pg is not None:
            return await self._pg.scope(digest)
        return self.scope_sync(digest)

    def scope_sync(self, digest: str) -> Found | None:
        """SQLite on this thread; PostgreSQL (for callers outside a loop) through the pool."""
        if self._postgres or self._via_pool:
            with self._engine.connect() as conn:
                row = conn.exec_driver_sql(
                    _POSTGRES if self._postgres else _SQLITE, (digest,)
                ).first()
            return None if row is None else (int(row[0]), str(row[1]))
        with self._sqlite_lock:
            for attempt in range(2):
                try:
                    if self._sqlite is None:
                        self._sqlite = self._open_sqlite()
                    # fetchall: the statement finishes, so no read transaction stays open
                    # (one would hold back the WAL checkpoint).
                    rows = self._sqlite.execute(_SQLITE, (digest,)).fetchall()
                    return (int(rows[0][0]), str(rows[0][1])) if rows else None
                except (sqlite3.Error, DBAPIError) as exc:  # DBAPIError: opening it failed
                    self._close_sqlite()
                    if attempt == 1:
                        raise StoreUnreachable(type(exc).__name__) from exc
        raise AssertionError("unreachable")

    def _open_sqlite(self) -> sqlite3.Connection:
        fairy = self._engine.raw_connection()  # with the engine's PRAGMAs (WAL, busy timeout)
        fairy.detach()  # ours for good, outside the pool's count
        conn = fairy.dbapi_connection
        assert isinstance(conn, sqlite3.Connection)
        conn.isolation_level = None  # autocommit: each SELECT is its own read
        conn.execute("PRAGMA query_only = 1")
        conn.execute("PRAGMA busy_timeout = 5000")  # on the event loop: never wait long
        return conn

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            with contextlib.suppress(sqlite3.Error):
                self._sqlite.close()
            self._sqlite = None

    def close(self) -> None:
        with self._sqlite_lock:
            self._close_sqlite()
        if self._pg is not None:
            self._pg.drop()


class _PostgresConnections:
    """An autocommit psycopg ``AsyncConnection`` of the event loop that uses it, asked in
    rounds (see the module's docstring).

    The connection belongs to one loop: if another loop calls (a test client's new
    portal), the old one is dropped and a new one made.
    """

    def __init__(self, engine: Engine) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)  # SQLAlchemy's adapters: plain text is all we read
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        self._args: tuple[Any, ...] = tuple(args)
        self._kwargs: dict[str, Any] = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[tuple[Any, Any]] = []  # (AsyncConnection, AsyncCursor)
        # Digest -> the futures of the requests waiting for the next round.
        self._waiting: dict[str, list[asyncio.Future[Found | None]]] = {}
        self._rounds: asyncio.Task[None] | None = None

    async def scope(self, digest: str) -> Found | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.drop()
            self._loop = loop
            self._waiting = {}
            self._rounds = None
        answer: asyncio.Future[Found | None] = loop.create_future()
        self._waiting.setdefault(digest, []).append(answer)
        if self._rounds is None or self._rounds.done():
            self._rounds = loop.create_task(self._run_rounds())
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                return await asyncio.shield(answer)
        except TimeoutError as exc:  # a partitioned or hung server: 503, not a hang
            raise StoreUnreachable("TimeoutError") from exc

    async def _run_rounds(self) -> None:
        """Ask for the waiting keys, round after round, until nobody waits."""
        while self._waiting:
            digests = list(self._waiting)[:ROUND_KEYS]
            batch = {digest: self._waiting.pop(digest) for digest in digests}
            try:
                async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                    found = await self._lookup(digests)
            except BaseException as exc:
                failure = (
                    StoreUnreachable("TimeoutError")
                    if isinstance(exc, TimeoutError)
                    else exc
                    if isinstance(exc, StoreUnreachable)
                    else StoreUnreachable(type(exc).__name__)
                )
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(failure)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the loop is going away
                continue
            for digest, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(digest))

    async def _lookup(self, digests: list[str]) -> dict[str, Found]:
        for attempt in range(2):
            # A connection and its cursor, reused: a new cursor per lookup costs more.
            pair = self._idle.pop() if self._idle else None
            answered = False
            try:
                if pair is None:
                    conn = await self._connect()
                    pair = (conn, conn.cursor())
                await pair[1].execute(_POSTGRES_MANY, (digests,), prepare=True)
                rows = await pair[1].fetchall()
                answered = True
            except Exception as exc:  # psycopg.Error or OSError: a dead or absent server
                if attempt == 1:
                    raise StoreUnreachable(type(exc).__name__) from exc
                continue
            finally:  # also on a time-out's cancellation: a connection mid-query is dropped
                if pair is not None:
                    if answered:
                        self._idle.append(pair)
                    else:
                        _finish(pair[0])
            return {str(row[0]): (int(row[1]), str(row[2])) for row in rows}
        raise AssertionError("unreachable")

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(*self._args, autocommit=True, **self._kwargs)

    def drop(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _cursor in idle:
            _finish(conn)


def _finish(conn: Any) -> None:
    """Close without awaiting (the loop it belonged to may be gone)."""
    with contextlib.suppress(Exception):  # already closed
        conn.pgconn.finish()
