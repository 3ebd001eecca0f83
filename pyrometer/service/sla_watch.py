"""The SLA watcher: a routed lead nobody touched by its due time is a breach.

:func:`check_breaches` takes the leads whose clock runs past its ``sla_due_us`` and has
not breached yet, a batch at a time, each batch in one write transaction: it locks those
leads (PostgreSQL skips a lead another transaction holds, the next round takes it),
checks again under the lock, sets ``breached_us``, and queues ``sla.breached`` in the
outbox. With the playbook's ``routing.on_breach: reassign`` it also gives the lead to
another rep (:func:`pyrometer.routing.assign.choose_rep` over the reps that have not
breached this clock already): a new assignment with rule ``reassigned``, the same clock
start (the buyer's wait does not restart), a new due time from now, counted against
the new rep's capacity, the lead's ``owner`` set, and ``lead.assigned`` queued. If no
other rep can take it (away, out of hours, full, or none), the lead stays where it is
and the notification says why.

The work is idempotent under those locks, so two watchers cannot breach one clock twice;
:class:`SlaWatcher` still runs in one process of a server (a leader lock as the decay
scheduler's), so N processes do not poll N times. It wakes at the next due time, or every
second to see clocks that started meanwhile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.playbook import OnBreach, Playbook
from pyrometer.core.timeutil import iso
from pyrometer.routing.assign import choose_rep
from pyrometer.routing.reps import Rep
from pyrometer.routing.sla import sla_deadline_us
from pyrometer.service import actions
from pyrometer.service.decay import SchedulerLock
from pyrometer.service.runtime import Service
from pyrometer.store import assignments, outbox
from pyrometer.store import sla as store
from pyrometer.store.assignments import AssignmentRow
from pyrometer.store.outbox import Notification
from pyrometer.store.tables import leads

BATCH = 100
POLL_SECONDS = 1.0
MIN_WAIT_SECONDS = 0.05
REASSIGNED = "reassigned"
_LOCK_ID = 0x50595253  # "PYRS": the SLA watcher's leader lock


def check_breaches(service: Service, now: int | None = None) -> int:
    """Record every breach due at ``now`` (default: the service's clock); how many."""
    if now is None:
        now = service.clock()
    total = 0
    while True:
        breached, more = service.write(lambda conn: _round(service, conn, now))
        total += breached
        if not more:
            return total


@dataclass
class _Routing:
    """What reassignments in one transaction share: the reps and their load, read once
    (after the routing lock, so capacity is counted as ``actions`` counts it)."""

    reps: list[Rep]
    counts: dict[str, int]
    last: dict[str, int]
    by_id: dict[str, Rep] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {rep.id: rep for rep in self.reps}


def _round(service: Service, conn: Connection, now: int) -> tuple[int, bool]:
    """One batch; (breaches recorded, whether another round may find more)."""
    candidates = store.overdue_leads(conn, now, BATCH)
    if not candidates:
        return 0, False
    locked = store.lock_free_leads(conn, candidates)
    _, book = service.playbooks.active(conn)
    held = assignments.current(conn, locked)
    # The notification payloads are those of ``actions``, so a receiver reads one shape.
    snapshot = actions.lead_snapshots(conn, locked)
    routing: _Routing | None = None
    reps: dict[str, Rep] | None = None
    notes: list[Notification] = []
    breached = 0
    for lead_id in locked:
        row = held.get(lead_id)
        lead = snapshot.get(lead_id)
        if row is None or lead is None or not store.mark_breached(conn, row.id, now):
            continue  # touched, reassigned or breached since it was read
        breached += 1
        data = actions.lead_data(lead)
        if reps is None:
            reps = {rep.id: rep for rep in actions.active_reps(conn)}
        data.update(_breach(reps, row, now, book))
        assigned = None
        if book.routing.on_breach is OnBreach.REASSIGN:
            if routing is None:
                routing = _load(conn, book, now)
            assigned, why = _reassign(conn, book, routing, row, lead, now)
            data["reassigned_to"] = None if assigned is None else assigned.data["lead"]["owner"]
            if why is not None:
                data["not_reassigned"] = why
        notes.append(Notification("sla.breached", lead_id, data))
        if assigned is not None:
            notes.append(assigned)
    outbox.enqueue(conn, notes, now)
    return breached, len(candidates) >= BATCH and bool(locked)


def _rep_json(reps: dict[str, Rep], rep_id: str | None) -> dict[str, Any] | None:
    if rep_id is None:
        return None
    rep = reps.get(rep_id)
    if rep is None:  # removed since: its id is all there is
        return {"id": rep_id, "name": None, "email": None}
    return {"id": rep.id, "name": rep.name, "email": rep.email}


def _breach(reps: dict[str, Rep], row: AssignmentRow, now: int, book: Playbook) -> dict[str, Any]:
    assert row.clock_us is not None and row.sla_due_us is not None
    return {
        "rep": _rep_json(reps, row.rep_id),
        "clock_started_at": iso(row.clock_us),
        "sla_due_at": iso(row.sla_due_us),
        "breached_at": iso(now),
        "late_seconds": (now - row.sla_due_us) / 1e6,
        "on_breach": str(book.routing.on_breach),
    }


def _load(conn: Connection, book: Playbook, now: int) -> _Routing:
    assignments.lock_routing(conn)
    counts, last = assignments.window_load(conn, now - book.routing.capacity_window_us)
    return _Routing(actions.active_reps(conn), counts, last)


def _reassign(
    conn: Connection,
    book: Playbook,
    routing: _Routing,
    row: AssignmentRow,
    lead: Any,
    now: int,
) -> tuple[Notification | None, str | None]:
    """Give the lead to a rep who has not breached this clock; the ``lead.assigned``
    notification, or why nobody took it."""
    assert row.clock_us is not None
    policy = book.routing
    excluded = store.breached_reps(conn, row.lead_id, row.clock_us)
    others = [rep for rep in routing.reps if rep.id not in excluded]
    suppressed = bool(actions.suppressed_leads(conn, [row.lead_id]))
    choice = choose_rep(
        policy,
        book.lead_attributes(lead.attributes),
        suppressed,
        None,  # its owner is the rep who breached: no owner to keep
        others,
        routing.counts,
        routing.last,
        now,
        book.missing_values,
    )
    if choice.rep_id is None:
        return None, "no other rep can take it: " + choice.reason
    rep = routing.by_id[choice.rep_id]
    before = routing.by_id.get(row.rep_id) if row.rep_id is not None else None
    who = "the unassigned queue" if row.rep_id is None else (before.name if before else row.rep_id)
    late = (now - (row.sla_due_us or now)) / 1e6
    reason = f"SLA breached by {who} ({late:g}s late): reassigned; {choice.reason}"
    due = sla_deadline_us(policy, now, rep)
    assignments.insert(
        conn,
        lead_id=row.lead_id,
        rep_id=rep.id,
        at_us=now,
        rule=REASSIGNED,
        reason=reason,
        cause=f"sla_breach:{row.rep_id or 'unassigned'}",
        counts=True,
        clock_us=row.clock_us,
        sla_due_us=due,
        recorded_us=now,
    )
    routing.counts[rep.id] = routing.counts.get(rep.id, 0) + 1
    routing.last[rep.id] = now
    conn.execute(leads.update().where(leads.c.lead_id == row.lead_id).values(owner=rep.id))
    data = actions.lead_data(lead)
    data["lead"]["owner"] = rep.id
    data["assignment"] = {
        "rep": {"id": rep.id, "name": rep.name, "email": rep.email},
        "rule": REASSIGNED,
        "reason": reason,
        "previous_rep": row.rep_id,
        "clock_started_at": iso(row.clock_us),
        "sla_due_at": iso(due),
    }
    return Notification("lead.assigned", row.lead_id, data), None


def seconds_until_next(service: Service) -> float:
    """Until the next clock comes due, at most :data:`POLL_SECONDS`."""
    now = service.clock()
    due = service.read(store.next_due_us)
    if due is None:
        return POLL_SECONDS
    # A floor: a due lead another transaction holds is taken on a later round, not spun on.
    return min(POLL_SECONDS, max(MIN_WAIT_SECONDS, (due - now) / 1e6))


class SlaWatcher:
    """A daemon thread running :func:`check_breaches` as clocks come due.

    Started by the server (``create_app(background=True)``) and by anything else that
    runs background work (the delivery worker); with several processes one leads, the
    others wait to take over.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        self._lock = SchedulerLock(service, _LOCK_ID, "sla-watch")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-sla", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self._lock.try_acquire():
                        check_breaches(self._service)
                        wait = seconds_until_next(self._service)
                    else:  # another process watches; take over if it goes away
                        wait = POLL_SECONDS
                except Exception:  # a database blip must not stop the watcher for good
                    wait = POLL_SECONDS
                self._stop.wait(wait)
        finally:
            self._lock.release()
