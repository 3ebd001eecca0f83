"""The decay scheduler: records the moment a lead cools, without rescanning every lead.

Each lead stores when decay alone will next change its temperature or stage
(``next_decay_us``, in closed form from the half-life, indexed). The scheduler takes the
leads whose time has come, records each change dated at its exact crossing time, and
stores the next one; then it sleeps until the earliest pending time (or a short poll, so
events that bring a time closer are seen).

With several server processes (``serve --workers N``) one scheduler runs: each process's
scheduler first takes :class:`SchedulerLock` (a PostgreSQL advisory lock held by a
connection of its own; on SQLite an exclusive lock on a file beside the database) and
the others wait for it, taking over if its process ends. Correctness does not hang on
it (a scheduler only changes leads it has locked and re-checks them under the lock);
it keeps N processes from doing the same work N times.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.service import actions
from pyrometer.service.probability import probability_temperatures
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import advance_decay, replay
from pyrometer.store import repo
from pyrometer.store.tables import leads

BATCH = 200
POLL_SECONDS = 1.0
_LOCK_ID = 0x50595244  # "PYRD": the decay scheduler's advisory lock


class SchedulerLock:
    """Held by at most one process's scheduler per store at a time; ``lock_id`` and
    ``name`` tell apart the locks of other background loops (the SLA watcher's)."""

    def __init__(self, service: Service, lock_id: int = _LOCK_ID, name: str = "scheduler") -> None:
        self._service = service
        self._lock_id = lock_id
        self._name = name
        self._conn: Connection | None = None  # PostgreSQL: the session holding the lock
        self._file: Any = None  # SQLite: the locked file

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or still ours); ``False`` if another holds it."""
        engine = self._service.engine
        if engine.dialect.name == "postgresql":
            return self._try_postgres()
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return True  # a store only this process can open
        return self._try_file(Path(f"{database}.{self._name}-lock"))

    def _try_postgres(self) -> bool:
        if self._conn is not None:
            try:  # still connected, so still ours
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except sa.exc.DBAPIError:
                self.release()
        conn = self._service.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Keyed by schema too: stores in one database's schemas are stores of their own.
        query = f"SELECT pg_try_advisory_lock({self._lock_id}, hashtext(current_schema()))"
        if conn.exec_driver_sql(query).scalar():
            conn.detach()  # out of the pool: closing it must end the session and the lock
            self._conn = conn
            return True
        conn.close()
        return False

    def _try_file(self, path: Path) -> bool:
        if self._file is not None:
            return True
        try:
            import fcntl
        except ImportError:  # no flock (Windows): every process schedules, still correct
            return True
        handle = path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                # Unlocked before the close returns: a closed session's locks are freed
                # only once the server has ended it, which a process taking over at once
                # could beat. (A dead connection fails here; its end frees them.)
                self._conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()  # ends the session, and with it the advisory lock
            self._conn = None
        if self._file is not None:
            self._file.close()  # closing the file drops its lock
            self._file = None


def run_due(service: Service, limit: int = BATCH) -> int:
    """Record due decay transitions for up to ``limit`` leads; returns how many were due."""
    now = service.clock()

    def work(conn: Connection) -> int:
        version, book = service.playbooks.active(conn)
        due = list(
            conn.execute(
                sa.select(leads.c.lead_id)
                .where(leads.c.next_decay_us <= now)
                .order_by(leads.c.next_decay_us)
                .limit(limit)
            ).scalars()
        )
        if not due:
            return 0
        changes = []
        for record in repo.lock_leads(conn, due).values():
            if record.next_decay_us is None or record.next_decay_us > now:
                continue  # an event moved it meanwhile
            if record.playbook_version != version:
                events = repo.lead_events(conn, record.lead_id)
                changes.append(replay(book, version, record, events, now, f"playbook:v{version}"))
            else:
                changes.append(advance_decay(book, record, now))
        changes = probability_temperatures(service, conn, book, changes, now)
        repo.save_changes(conn, changes, now)
        actions.act_on_changes(conn, book, changes, now)
        return len(due)

    return service.write(work)


def run_all_due(service: Service) -> int:
    total = 0
    while True:
        done = run_due(service)
        total += done
        if done < BATCH:
            return total


def seconds_until_next(service: Service) -> float:
    now = service.clock()
    earliest: int | None = service.read(
        lambda conn: conn.execute(sa.select(sa.func.min(leads.c.next_decay_us))).scalar()
    )
    if earliest is None:
        return POLL_SECONDS
    return min(POLL_SECONDS, max(0.0, (int(earliest) - now) / 1e6))


class DecayScheduler:
    """A daemon thread running :func:`run_due` whenever a lead's time comes.

    ``on_lead`` runs each time this scheduler takes the lead (at start, or on taking over
    from a process that ended): the server resumes the rescore jobs a stopped process
    left running there, so that with N processes one of them does, not all N.
    """

    def __init__(self, service: Service, on_lead: Callable[[], object] | None = None) -> None:
        self._service = service
        self._on_lead = on_lead
        self._lock = SchedulerLock(service)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-decay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def leading(self) -> bool:
        """Whether this scheduler holds the store's scheduler lock (and so does the work)."""
        return self._lock.try_acquire()

    def _run(self) -> None:
        leading = False
        try:
            while not self._stop.is_set():
                try:
                    if self._lock.try_acquire():
                        if not leading and self._on_lead is not None:
                            self._on_lead()
                        leading = True
                        run_all_due(self._service)
                        wait = seconds_until_next(self._service)
                    else:  # another process schedules; take over if it goes away
                        leading = False
                        wait = POLL_SECONDS
                except Exception:  # a database blip must not kill the scheduler for good
                    wait = POLL_SECONDS
                self._stop.wait(wait)
        finally:
            self._lock.release()
