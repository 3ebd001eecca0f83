"""The running service's shared parts: the store, the playbook registry and the clock.

``write`` runs a function in one write transaction and retries it when the database
says the transaction lost a race (a PostgreSQL deadlock or serialisation failure, or a
lead that an identify call merged away meanwhile): the function is written to be safely
re-run, since nothing of a rolled-back attempt stays.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pyrometer.service.event_cache import LeadEventCache
from pyrometer.service.playbooks import PlaybookRegistry
from pyrometer.store.engine import WRITE, create_store_engine
from pyrometer.store.migrate import upgrade
from pyrometer.store.outbox import AFTER_COMMIT

T = TypeVar("T")
Clock = Callable[[], int]
_RETRY_CODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
ON_COMMIT = "pyrometer.on_commit"  # Connection.info key: callables run once the write commits


def on_commit(conn: Connection, callback: Callable[[], object]) -> bool:
    """Run ``callback`` once this write transaction has committed (never if it rolls
    back, and not at all outside :meth:`Service.write`: then ``False``). For what this
    process keeps in memory about the store, which must not run ahead of it."""
    callbacks = conn.info.get(ON_COMMIT)
    if callbacks is None:
        return False
    callbacks.append(callback)
    return True


class WriterLock:
    """SQLite's writers queue here: a thread lock, and ``flock`` on ``DATABASE.write-lock``
    so that other processes' writers queue too (the kernel wakes the next one at once)."""

    def __init__(self, database: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._file: Any = None
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                import fcntl  # noqa: F401  (POSIX only; elsewhere the busy timeout queues)

                self._path: str | None = f"{database}.write-lock"
            except ImportError:
                self._path = None
        else:
            self._path = None

    def __enter__(self) -> WriterLock:
        self._thread_lock.acquire()
        if self._path is not None:
            try:
                import fcntl

                if self._file is None:
                    self._file = open(self._path, "a")  # kept open
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)  # releases the GIL
            except BaseException:
                self._thread_lock.release()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._file is not None:
                import fcntl

                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class Retry(Exception):
    """Raised inside a write transaction to run it again from the start."""


class _Reconnect(Exception):
    """The connection was found dead before anything was committed: run it again.

    Connections are not pinged when taken from the pool (a round trip per transaction);
    a dead one (a restarted database) fails its first statement instead, SQLAlchemy
    drops the pool's connections, and the transaction runs again on a new one. Only a
    failure inside the work, before the commit is sent, is run again: nothing of it can
    have been committed.
    """


def _before_commit(work: Callable[[Connection], T], conn: Connection) -> T:
    try:
        return work(conn)
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise _Reconnect() from exc
        raise


def wall_clock() -> int:
    now = datetime.now(UTC)
    return int(now.timestamp()) * 1_000_000 + now.microsecond


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _RETRY_CODES or "database is locked" in str(exc.orig)


class Service:
    """Everything a request handler, a CLI command or a background task needs."""

    def __init__(self, engine: Engine, clock: Clock = wall_clock) -> None:
        self.engine = engine
        self.clock = clock
        self.playbooks = PlaybookRegistry()
        # Set by a server with a scoring process (pyrometer.service.scoring_pool).
        self.scoring_pool: Any = None
        # SQLite has one writer at a time anyway. Queueing writers on a lock hands the
        # database over at once, where SQLite's busy handler would sleep in growing steps
        # (up to 100 ms) while the lock sits free: a thread lock within this process, and
        # a file lock beside the database between the processes of ``serve --workers N``.
        self._write_lock: AbstractContextManager[Any] = nullcontext()
        if engine.dialect.name == "sqlite":
            self._write_lock = WriterLock(engine.url.database)
        self._signals: dict[str, threading.Event] = {}
        # Leads' events as the active model counts them (pyrometer.service.event_cache).
        self.event_cache = LeadEventCache()

    def signal(self, name: str) -> threading.Event:
        """Set after a write transaction commits that tagged itself ``name`` (by appending
        it to ``conn.info[AFTER_COMMIT]``), e.g. ``outbox`` when it queued notifications:
        the delivery worker waits on it instead of polling the store."""
        event = self._signals.get(name)
        if event is None:
            event = self._signals.setdefault(name, threading.Event())
        return event

    @classmethod
    def open(cls, url: str | None = None, clock: Clock = wall_clock) -> Service:
        """Connect, migrate to the newest schema and seed the default playbook."""
        service = cls(create_store_engine(url), clock)
        upgrade(service.engine)
        service.write(lambda conn: service.playbooks.seed_default(conn, clock()))
        return service

    def write(self, work: Callable[[Connection], T], attempts: int = 30) -> T:
        for attempt in range(attempts):
            try:
                with self._write_lock, self.engine.connect() as conn:
                    conn.execution_options(**{WRITE: True})
                    tags: list[str] = []
                    callbacks: list[Callable[[], object]] = []
                    conn.info[AFTER_COMMIT] = tags
                    conn.info[ON_COMMIT] = callbacks
                    try:
                        with conn.begin():
                            result = _before_commit(work, conn)
                    finally:
                        conn.info.pop(AFTER_COMMIT, None)
                        conn.info.pop(ON_COMMIT, None)
                for callback in callbacks:
                    callback()
                for tag in tags:
                    self.signal(tag).set()
                return result
            except (Retry, _Reconnect):
                if attempt == attempts - 1:
                    raise
            except sa.exc.DBAPIError as exc:
                if not _retryable(exc) or attempt == attempts - 1:
                    raise
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise RuntimeError("a write transaction kept losing races; giving up")

    @contextmanager
    def small_writes(self) -> Iterator[Callable[[Callable[[Connection], T]], T]]:
        """Small writes of one statement each, each committed before the caller goes on,
        over one connection kept open: for marks that must be stored before the next step
        (a send the mail server took, before the next is sent), where :meth:`write` would
        check out a connection and open a transaction per mark. On PostgreSQL the
        connection is in autocommit mode (one round trip per mark) and its commits do not
        wait for the disk (``synchronous_commit`` off until it goes back to the pool):
        each is visible at once and survives this process's death; only a crash of the
        database server itself could lose the last fraction of a second of them."""
        with self.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                conn.execution_options(**{WRITE: True})

                def run(work: Callable[[Connection], T]) -> T:
                    with self._write_lock, conn.begin():
                        return work(conn)

                yield run
                return
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("SET synchronous_commit TO OFF")

            def run_autocommit(work: Callable[[Connection], T]) -> T:
                result = work(conn)
                conn.commit()  # ends SQLAlchemy's own bookkeeping; the statement committed
                return result

            try:
                yield run_autocommit
            finally:
                if not conn.invalidated:
                    conn.exec_driver_sql("RESET synchronous_commit")
                    conn.commit()

    def read(self, work: Callable[[Connection], T]) -> T:
        for attempt in range(3):
            try:
                with self.engine.connect() as conn, conn.begin():
                    return _before_commit(work, conn)
            except _Reconnect:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()
