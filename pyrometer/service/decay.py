"""The decay scheduler: records the moment a lead cools, without rescanning every lead.

Each lead stores when decay alone will next change its temperature or stage
(``next_decay_us``, in closed form from the half-life, indexed). The scheduler takes the
leads whose time has come, records each change dated at its exact crossing time, and
stores the next one; then it sleeps until the earliest pending time (or a short poll, so
events that bring a time closer are seen).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.service.runtime import Service
from pyrometer.service.scoring import advance_decay, replay
from pyrometer.store import repo
from pyrometer.store.tables import leads

BATCH = 200
POLL_SECONDS = 1.0


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
        repo.save_changes(conn, changes, now)
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
    """A daemon thread running :func:`run_due` whenever a lead's time comes."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-decay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                run_all_due(self._service)
                wait = seconds_until_next(self._service)
            except Exception:  # a database blip must not kill the scheduler for good
                wait = POLL_SECONDS
            self._stop.wait(wait)
