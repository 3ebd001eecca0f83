"""Acting on what the store records: routing and notifications, in the same transaction.

Every write path that records transitions (ingest, the decay scheduler, rescoring, merges,
attribute changes) calls :func:`act_on` in its own transaction, after the lead rows and
transitions are written. So a lead that turns hot is assigned, and its notifications are
queued in the outbox, if and only if the transition itself is committed: a crash can lose
neither, and a rolled-back attempt leaves neither behind.

Routing starts with the first rep (``pyrometer reps add``): a store without reps only
notifies. The decision itself is :func:`pyrometer.routing.assign.choose_rep`; this module
reads what it needs, records the choice and queues ``lead.assigned``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState
from pyrometer.core.model import Transition
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import iso
from pyrometer.routing.assign import Assignment, Rule, choose_rep, routes
from pyrometer.routing.reps import Rep, parse_rep
from pyrometer.routing.sla import sla_deadline_us
from pyrometer.store import assignments, outbox, repo, touches
from pyrometer.store import reps as rep_store
from pyrometer.store.outbox import Notification
from pyrometer.store.records import Change
from pyrometer.store.tables import leads

_TEMPERATURE_RANK = {"cold": 0, "warm": 1, "hot": 2}
MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Move:
    """A recorded transition, as :data:`repo.TransitionRow` holds it."""

    lead_id: str
    at_us: int
    kind: str
    old: str
    new: str
    cause: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "at": iso(self.at_us),
            "cause": self.cause,
        }


def notification_type(move: Move) -> str | None:
    """The webhook event type a transition announces."""
    if move.kind == "stage":
        return "lead.stage_changed"
    if move.kind != "temperature" or move.old == move.new:
        return None
    if move.new == "hot":
        return "lead.hot"
    old, new = _TEMPERATURE_RANK.get(move.old, -1), _TEMPERATURE_RANK.get(move.new, -1)
    return "lead.cooled" if new < old else "lead.warmed"


def rows_of(changes: Iterable[Change]) -> list[repo.TransitionRow]:
    return [repo.transition_row(t) for c in changes for t in c.transitions]


def act_on_changes(
    conn: Connection, book: Playbook, changes: Iterable[Change], now_us: int
) -> None:
    """:func:`act_on` for the transitions of stored changes; then the leads that now
    satisfy a nurture sequence's standing condition enter it."""
    changes = list(changes)
    act_on(conn, book, rows_of(changes), now_us)
    if any(seq.enrol.condition is not None for seq in book.nurture.sequences):
        from pyrometer.service import nurture

        nurture.on_changes(conn, book, nurture.changed_of_records(changes), now_us)


def act_on(
    conn: Connection, book: Playbook, rows: Sequence[repo.TransitionRow], now_us: int
) -> None:
    """Route the leads these just-written transitions route, and queue their notifications.

    Cheap when nothing is to be done: no transitions, no statement; transitions without
    webhooks or reps, two small reads.
    """
    moves = [Move(*row) for row in rows if row[3] != row[4]]
    if not moves:
        return
    if book.nurture.sequences:
        from pyrometer.service import nurture  # it reads lead snapshots from here

        nurture.on_moves(conn, book, moves, now_us)
    hooks = outbox.subscribers(conn)
    routing: dict[str, list[Move]] = {}
    for move in sorted(moves, key=lambda m: m.at_us):
        if routes(book.routing, _transition(move)):
            routing.setdefault(move.lead_id, []).append(move)
    reps = active_reps(conn) if routing else []
    if not reps:
        routing = {}  # routing starts with the first rep
    wanted = frozenset().union(*(types for _, types in hooks))
    announced = [
        (move, kind)
        for move in moves
        if (kind := notification_type(move)) is not None and (kind in wanted or "*" in wanted)
    ]
    needed = {move.lead_id for move, _ in announced} | set(routing)
    if not needed:
        return
    snapshot = lead_snapshots(conn, needed)
    notes: list[Notification] = []
    for move, kind in announced:
        lead = snapshot.get(move.lead_id)
        if lead is not None:
            notes.append(Notification(kind, move.lead_id, lead_data(lead, move)))
    if routing:
        notes += _route(conn, book, reps, routing, snapshot, now_us)
    outbox.enqueue(conn, notes, now_us, hooks)


def _transition(move: Move) -> Transition:
    return Transition(move.lead_id, move.at_us, move.kind, move.old, move.new, move.cause)


@dataclass(frozen=True, slots=True)
class LeadSnapshot:
    lead_id: str
    attributes: Mapping[str, Any]
    owner: str | None
    temperature: str
    stage: str
    fit: float


def lead_snapshots(conn: Connection, lead_ids: Iterable[str]) -> dict[str, LeadSnapshot]:
    columns = (
        leads.c.lead_id,
        leads.c.attributes,
        leads.c.owner,
        leads.c.temperature,
        leads.c.stage,
        leads.c.fit,
    )
    found: dict[str, LeadSnapshot] = {}
    ids = sorted(set(lead_ids))
    for chunk in repo.chunks(ids):
        for row in conn.execute(sa.select(*columns).where(leads.c.lead_id.in_(chunk))):
            found[row.lead_id] = LeadSnapshot(
                row.lead_id,
                row.attributes or {},
                row.owner,
                row.temperature,
                row.stage,
                float(row.fit),
            )
    return found


def lead_data(lead: LeadSnapshot, move: Move | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "lead": {
            "id": lead.lead_id,
            "temperature": lead.temperature,
            "stage": lead.stage,
            "fit": lead.fit,
            "owner": lead.owner,
            "attributes": dict(lead.attributes),
        }
    }
    if move is not None:
        data["transition"] = move.as_json()
    return data


def suppressed_leads(conn: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Which of these leads are do-not-contact. Reads their state documents, so only for
    the few leads being routed."""
    found: set[str] = set()
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(leads.c.lead_id, leads.c.state).where(leads.c.lead_id.in_(chunk))
        found.update(
            r.lead_id for r in conn.execute(query) if LeadState.from_dict(r.state).suppressed
        )
    return found


def active_reps(conn: Connection) -> list[Rep]:
    return [parse_rep(row.data) for row in rep_store.all_reps(conn)]


def _route(
    conn: Connection,
    book: Playbook,
    reps: Sequence[Rep],
    routing: Mapping[str, Sequence[Move]],
    snapshot: Mapping[str, LeadSnapshot],
    now_us: int,
) -> list[Notification]:
    assignments.lock_routing(conn)
    policy = book.routing
    counts, last = assignments.window_load(conn, now_us - policy.capacity_window_us)
    in_force = assignments.current(conn, routing)
    suppressed = suppressed_leads(conn, routing)
    by_id = {rep.id: rep for rep in reps}
    notes: list[Notification] = []
    for lead_id, candidates in sorted(routing.items()):
        lead = snapshot.get(lead_id)
        if lead is None:
            continue
        # The latest routing transition that still holds: a batch of late events can turn
        # a lead hot and then SQL and then opportunity, or hot and cold again.
        holding = [
            m for m in candidates if m.new == (lead.temperature, lead.stage)[m.kind == "stage"]
        ]
        if not holding:
            continue
        move = holding[-1]
        held = in_force.get(lead_id)
        choice = choose_rep(
            policy,
            book.lead_attributes(lead.attributes),
            lead_id in suppressed,
            lead.owner,
            reps,
            counts,
            last,
            now_us,
            book.missing_values,
        )
        if choice.rule is Rule.SUPPRESSED:
            if held is None or held.rule != Rule.SUPPRESSED:
                _record(conn, lead_id, choice, move, None, None, now_us)
            continue
        if choice.rule is Rule.OWNER and _within_clock(held, move.at_us):
            continue  # the owner is still within the clock that runs: it stays
        rep = by_id.get(choice.rep_id) if choice.rep_id else None
        due = sla_deadline_us(policy, move.at_us, rep)
        # Late events can route a lead at a time before a touch already recorded: that
        # touch answered it.
        touched = touches.first_touch_at_or_after(conn, lead_id, move.at_us)
        _record(conn, lead_id, choice, move, move.at_us, due, now_us, touched)
        if choice.rep_id is not None and choice.rule is not Rule.OWNER:
            counts[choice.rep_id] = counts.get(choice.rep_id, 0) + 1
            last[choice.rep_id] = now_us
            conn.execute(
                leads.update().where(leads.c.lead_id == lead_id).values(owner=choice.rep_id)
            )
        data = lead_data(lead, move)
        data["lead"]["owner"] = choice.rep_id
        data["assignment"] = assignment_json(choice, rep, move.at_us, due)
        notes.append(Notification("lead.assigned", lead_id, data))
    return notes


def _within_clock(held: assignments.AssignmentRow | None, at_us: int) -> bool:
    """The lead waits on its owner and the SLA has not run out at ``at_us``."""
    if held is None or not held.waiting:
        return False
    return held.sla_due_us is None or held.sla_due_us > at_us


def _record(
    conn: Connection,
    lead_id: str,
    choice: Assignment,
    move: Move,
    clock_us: int | None,
    due_us: int | None,
    now_us: int,
    first_touch_us: int | None = None,
) -> None:
    counts = choice.rep_id is not None and choice.rule not in (Rule.OWNER, Rule.SUPPRESSED)
    assignments.insert(
        conn,
        lead_id=lead_id,
        rep_id=choice.rep_id,
        at_us=now_us,
        rule=str(choice.rule),
        reason=choice.reason,
        cause=f"{move.kind}:{move.new}",
        counts=counts,
        clock_us=clock_us,
        sla_due_us=due_us,
        first_touch_us=first_touch_us,
        recorded_us=now_us,
    )


def assignment_json(
    choice: Assignment, rep: Rep | None, clock_us: int | None, due_us: int | None
) -> dict[str, Any]:
    return {
        "rep": None if rep is None else {"id": rep.id, "name": rep.name, "email": rep.email},
        "rule": str(choice.rule),
        "reason": choice.reason,
        "clock_started_at": iso(clock_us),
        "sla_due_at": iso(due_us),
    }


def assign_by_hand(
    conn: Connection,
    lead_id: str,
    owner: str | None,
    actor: str,
    now_us: int,
) -> None:
    """A person set the lead's owner (``PATCH /v1/leads/{id}``): recorded as an assignment
    that counts against the rep's capacity like a routed one. A speed-to-lead clock that
    runs moves with the lead to its new owner, with the same start and due time (the
    buyer's wait does not restart)."""
    held = assignments.current(conn, [lead_id]).get(lead_id)
    if held is not None and held.rep_id == owner:
        return
    reps = {rep.id: rep for rep in active_reps(conn)}
    waiting = held is not None and held.waiting
    rep = reps.get(owner) if owner is not None else None
    if owner is None:
        reason = f"unassigned by hand ({actor})"
    elif rep is None:
        reason = f"assigned by hand to {owner} ({actor}); not a routing rep"
    else:
        reason = f"assigned by hand to {rep.name} ({actor})"
    assignments.insert(
        conn,
        lead_id=lead_id,
        rep_id=owner,
        at_us=now_us,
        rule=MANUAL,
        reason=reason,
        cause=f"manual:{actor}",
        counts=rep is not None,
        clock_us=held.clock_us if waiting and held is not None else None,
        sla_due_us=held.sla_due_us if waiting and held is not None else None,
        # A breach already announced stays announced: the new owner is not flagged again.
        breached_us=held.breached_us if waiting and held is not None else None,
        recorded_us=now_us,
    )
    snapshot = lead_snapshots(conn, [lead_id])
    lead = snapshot.get(lead_id)
    if lead is None:
        return
    data = lead_data(lead)
    data["assignment"] = {
        "rep": None if rep is None else {"id": rep.id, "name": rep.name, "email": rep.email},
        "rule": MANUAL,
        "reason": reason,
        "clock_started_at": iso(held.clock_us) if waiting and held is not None else None,
        "sla_due_at": iso(held.sla_due_us) if waiting and held is not None else None,
    }
    outbox.enqueue(conn, [Notification("lead.assigned", lead_id, data)], now_us)
