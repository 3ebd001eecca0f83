"""The store's side of nurture: enrolments, the steps they ran, do-not-contact blocks.

Read and written in the caller's transaction; what to do is decided by
:mod:`pyrometer.nurture` and :mod:`pyrometer.service.nurture`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store import repo
from pyrometer.store.engine import dialect_insert, is_postgres
from pyrometer.store.pg_bulk import bulk_insert
from pyrometer.store.tables import (
    contact_blocks,
    events,
    leads,
    nurture_enrolments,
    nurture_steps,
)

ACTIVE = "active"
E = nurture_enrolments.c
S = nurture_steps.c


@dataclass(frozen=True, slots=True)
class Enrolment:
    id: int
    lead_id: str
    sequence: str
    status: str
    step: int | None
    next_due_us: int | None
    attempts: int
    enrolled_us: int
    ended_us: int | None
    exit_reason: str | None
    cause: str


def _enrolment(row: Any) -> Enrolment:
    return Enrolment(
        int(row.id),
        row.lead_id,
        row.sequence,
        row.status,
        row.step,
        row.next_due_us,
        int(row.attempts),
        int(row.enrolled_us),
        row.ended_us,
        row.exit_reason,
        row.cause,
    )


def enrolments_of(conn: Connection, lead_ids: Iterable[str]) -> dict[str, list[Enrolment]]:
    """Every enrolment of these leads, oldest first."""
    found: dict[str, list[Enrolment]] = defaultdict(list)
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(nurture_enrolments).where(E.lead_id.in_(chunk)).order_by(E.id)
        for row in conn.execute(query):
            found[row.lead_id].append(_enrolment(row))
    return found


# A new enrolment as :func:`enrol_many` writes it: a value per column of _ENROL_COLUMNS
# (a tuple, not a dict: ingest makes one per lead it enrols).
EnrolmentRow = tuple[str, str, str, int | None, int | None, int, int, int | None, str | None, str]

_ENROL_COLUMNS = (
    "lead_id",
    "sequence",
    "status",
    "step",
    "next_due_us",
    "attempts",
    "enrolled_us",
    "ended_us",
    "exit_reason",
    "cause",
)


def enrolment_row(
    lead_id: str,
    sequence: str,
    step: int | None,
    due_us: int | None,
    cause: str,
    now_us: int,
) -> EnrolmentRow:
    """A new enrolment at ``step`` (``None``: a sequence with nothing to run, complete)."""
    if step is None:
        return (lead_id, sequence, "completed", None, due_us, 0, now_us, now_us, None, cause[:120])
    return (lead_id, sequence, ACTIVE, step, due_us, 0, now_us, None, None, cause[:120])


def ended_row(row: EnrolmentRow, status: str, reason: str | None, now_us: int) -> EnrolmentRow:
    """A new enrolment that ends before it is written (a later message of its batch)."""
    lead_id, sequence, _, step, _, attempts, enrolled_us, _, _, cause = row
    return (lead_id, sequence, status, step, None, attempts, enrolled_us, now_us, reason, cause)


# Enrolment happens in ingest's transaction: driver SQL, built once, many rows a statement.
_PG_ENROL = bulk_insert(nurture_enrolments, _ENROL_COLUMNS, " ON CONFLICT DO NOTHING")
_PG_ENROL_FRESH = bulk_insert(nurture_enrolments, _ENROL_COLUMNS)
_SQLITE_ROWS = 90  # rows per statement: 900 parameters


@lru_cache(maxsize=16)
def _sqlite_enrol_sql(count: int, fresh: bool) -> str:
    one = "(" + ", ".join(["?"] * len(_ENROL_COLUMNS)) + ")"
    return (
        f"INSERT INTO nurture_enrolments ({', '.join(_ENROL_COLUMNS)}) "
        f"VALUES {', '.join([one] * count)}{'' if fresh else ' ON CONFLICT DO NOTHING'}"
    )


def enrol_many(conn: Connection, rows: Sequence[EnrolmentRow], fresh: bool = False) -> None:
    """New enrolments (:func:`enrolment_row`), a few statements for all. A lead already
    active in the sequence (another writer enrolled it meanwhile) keeps that one: the
    unique index by lead and sequence (one slot for the active enrolment) makes the
    insert do nothing.

    ``fresh``: every lead of ``rows`` was created by the caller's transaction, so no
    other writer can have enrolled it, and the rows (at most one active per lead and
    sequence) are inserted without that check: on PostgreSQL it is a speculative
    insertion per row, about a quarter of the insert's cost. The unique index still
    holds: a conflict there fails the transaction instead of doing nothing."""
    if not rows:
        return
    if is_postgres(conn):
        (_PG_ENROL_FRESH if fresh else _PG_ENROL).run(conn, rows)
        return
    for chunk in repo.chunks(rows, _SQLITE_ROWS):
        params = tuple(chain.from_iterable(chunk))
        conn.exec_driver_sql(_sqlite_enrol_sql(len(chunk), fresh), params)


def _cast(column: str) -> str:
    kind = nurture_enrolments.c[column].type
    if isinstance(kind, sa.String):
        return "varchar"
    return "int8" if isinstance(kind, sa.BigInteger) else "int4"


# The leads go as one array (PostgreSQL) or one JSON array (SQLite); the other columns,
# the same for all, once each.
_PG_FRESH = (
    f"INSERT INTO nurture_enrolments ({', '.join(_ENROL_COLUMNS)}) SELECT u.lead_id, "
    + ", ".join(f"%s::{_cast(c)}" for c in _ENROL_COLUMNS[1:])
    + " FROM unnest(%b::text[]) AS u(lead_id)"
)
_SQLITE_FRESH = (
    f"INSERT INTO nurture_enrolments ({', '.join(_ENROL_COLUMNS)}) SELECT value, "
    + ", ".join("?" for _ in _ENROL_COLUMNS[1:])
    + " FROM json_each(?)"
)


def enrol_fresh(conn: Connection, lead_ids: Sequence[str], rest: tuple[Any, ...]) -> None:
    """Enrolments of leads the caller's transaction created, alike but for the lead id:
    ``rest`` is an :func:`enrolment_row` without its first column. One statement that
    sends the ids as one value and the rest once: ingest enrols a batch's new leads this
    way, at a fraction of the cost of a row of values each. As :func:`enrol_many` with
    ``fresh``: no conflict check (a conflict fails the transaction)."""
    if not lead_ids:
        return
    if is_postgres(conn):
        conn.exec_driver_sql(_PG_FRESH, (*rest, list(lead_ids)))
        return
    conn.exec_driver_sql(_SQLITE_FRESH, (*rest, json.dumps(lead_ids, ensure_ascii=False)))


def standing_page(conn: Connection, after: str, limit: int) -> list[Any]:
    """One page of the sweep over every lead (standing conditions): up to ``limit`` leads
    after ``after`` in id order, with what the conditions read."""
    columns = (
        leads.c.lead_id,
        leads.c.attributes,
        leads.c.consent,
        leads.c.temperature,
        leads.c.stage,
        leads.c.fit,
        leads.c.playbook_version,
    )
    query = (
        sa.select(*columns).where(leads.c.lead_id > after).order_by(leads.c.lead_id).limit(limit)
    )
    return list(conn.execute(query).all())


def suppressed_leads(conn: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Which of these leads are suppressed (their state says so)."""
    found: set[str] = set()
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(leads.c.lead_id, leads.c.state).where(leads.c.lead_id.in_(chunk))
        for lead_id, state in conn.execute(query):
            state = state or {}
            if state.get("suppressed_by_attributes") or state.get("suppressed_at_us") is not None:
                found.add(lead_id)
    return found


def end(conn: Connection, enrolment_id: int, status: str, reason: str | None, now_us: int) -> None:
    conn.execute(
        nurture_enrolments.update()
        .where(E.id == enrolment_id, E.status == ACTIVE)
        .values(status=status, exit_reason=reason, ended_us=now_us, next_due_us=None)
    )


def end_all(conn: Connection, lead_id: str, reason: str, now_us: int) -> int:
    """End every active enrolment of the lead (it was suppressed, bounced...)."""
    return int(
        conn.execute(
            nurture_enrolments.update()
            .where(E.lead_id == lead_id, E.status == ACTIVE)
            .values(status="exited", exit_reason=reason, ended_us=now_us, next_due_us=None)
        ).rowcount
    )


def move_to(conn: Connection, enrolment_id: int, step: int | None, due_us: int | None) -> None:
    """The enrolment's next action (``None``: the sequence is complete)."""
    values: dict[str, Any] = {"step": step, "next_due_us": due_us, "attempts": 0}
    conn.execute(nurture_enrolments.update().where(E.id == enrolment_id).values(**values))


def postpone(conn: Connection, enrolment_id: int, due_us: int, failed: bool = False) -> None:
    values: dict[str, Any] = {"next_due_us": due_us}
    if failed:
        values["attempts"] = E.attempts + 1
    conn.execute(nurture_enrolments.update().where(E.id == enrolment_id).values(**values))


def any_due(conn: Connection, now_us: int) -> bool:
    query = sa.select(E.id).where(E.status == ACTIVE, E.next_due_us <= now_us).limit(1)
    return conn.execute(query).first() is not None


def next_due_us(conn: Connection) -> int | None:
    query = sa.select(sa.func.min(E.next_due_us)).where(E.status == ACTIVE)
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def claim_due(conn: Connection, now_us: int, lease_us: int, limit: int) -> list[Enrolment]:
    """Take up to ``limit`` due enrolments, oldest due first, moving each past a lease:
    a runner killed while it works on one leaves it due again when the lease ends.
    ``SKIP LOCKED`` on PostgreSQL lets runners claim side by side."""
    query = (
        sa.select(nurture_enrolments)
        .where(E.status == ACTIVE, E.next_due_us <= now_us)
        .order_by(E.next_due_us, E.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = [_enrolment(row) for row in conn.execute(query)]
    if claimed:
        conn.execute(
            nurture_enrolments.update()
            .where(E.id.in_([c.id for c in claimed]))
            .values(next_due_us=now_us + lease_us)
        )
    return claimed


def enrolment(conn: Connection, enrolment_id: int) -> Enrolment | None:
    row = conn.execute(sa.select(nurture_enrolments).where(E.id == enrolment_id)).first()
    return None if row is None else _enrolment(row)


@dataclass(frozen=True, slots=True)
class StepRow:
    id: int
    key: str
    enrolment_id: int
    lead_id: str
    sequence: str
    step: int
    kind: str
    status: str
    variant: int | None
    subject: str | None
    attempts: int
    planned_us: int
    done_us: int | None
    opened_us: int | None
    clicked_us: int | None


def _step(row: Any) -> StepRow:
    return StepRow(
        int(row.id),
        row.key,
        int(row.enrolment_id),
        row.lead_id,
        row.sequence,
        int(row.step),
        row.kind,
        row.status,
        row.variant,
        row.subject,
        int(row.attempts),
        int(row.planned_us),
        row.done_us,
        row.opened_us,
        row.clicked_us,
    )


def step_key(enrolment_id: int, step: int) -> str:
    return f"{enrolment_id}:{step}"


def step_by_key(conn: Connection, key: str) -> StepRow | None:
    row = conn.execute(sa.select(nurture_steps).where(S.key == key)).first()
    return None if row is None else _step(row)


def plan_step(
    conn: Connection,
    enrolment: Enrolment,
    step: int,
    kind: str,
    status: str,
    now_us: int,
    variant: int | None = None,
) -> StepRow:
    """The step's record, made now if this is its first run (its key is unique: a rerun
    after a crash finds the one it planned, with the same variant)."""
    key = step_key(enrolment.id, step)
    insert = dialect_insert(conn, nurture_steps).values(
        key=key,
        enrolment_id=enrolment.id,
        lead_id=enrolment.lead_id,
        sequence=enrolment.sequence,
        step=step,
        kind=kind,
        status=status,
        variant=variant,
        attempts=0,
        planned_us=now_us,
        done_us=now_us if status not in ("planned",) else None,
    )
    conn.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
    found = step_by_key(conn, key)
    assert found is not None
    return found


def finish_step(
    conn: Connection,
    key: str,
    status: str,
    now_us: int,
    subject: str | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "attempts": S.attempts + 1, "error": error}
    if status != "failed":
        values["done_us"] = now_us
    if subject is not None:
        values["subject"] = subject
    conn.execute(nurture_steps.update().where(S.key == key).values(**values))


SENT_STATUSES = ("sent", "written")


def sent_times(conn: Connection, lead_id: str, since_us: int, but: str = "") -> list[int]:
    """When the lead was e-mailed since ``since_us``, across all sequences; an e-mail
    planned and not yet sent counts from when it was planned (another enrolment of the
    lead may be planned in the same batch). ``but``: a step's own key, left out."""
    at = sa.func.coalesce(S.done_us, S.planned_us)
    query = sa.select(at).where(
        S.lead_id == lead_id,
        S.kind == "email",
        S.status.in_((*SENT_STATUSES, "planned")),
        at > since_us,
        S.key != but,
    )
    return [int(t) for t in conn.execute(query).scalars()]


def mark(conn: Connection, key: str, column: str, now_us: int) -> bool:
    """Record the first open or click of a send; whether it was the first."""
    col = S.opened_us if column == "opened_us" else S.clicked_us
    result = conn.execute(
        nurture_steps.update().where(S.key == key, col.is_(None)).values({column: now_us})
    )
    return bool(result.rowcount)


def blocks(conn: Connection, lead_id: str) -> dict[str, str]:
    query = sa.select(contact_blocks.c.channel, contact_blocks.c.reason).where(
        contact_blocks.c.lead_id == lead_id
    )
    return {row.channel: row.reason for row in conn.execute(query)}


def blocked_leads(conn: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Which of these leads have a do-not-contact block on some channel."""
    found: set[str] = set()
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(contact_blocks.c.lead_id).where(contact_blocks.c.lead_id.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def block(conn: Connection, lead_id: str, channel: str, reason: str, now_us: int) -> None:
    insert = dialect_insert(conn, contact_blocks).values(
        lead_id=lead_id, channel=channel, reason=reason, at_us=now_us
    )
    conn.execute(insert.on_conflict_do_nothing(index_elements=["lead_id", "channel"]))


def unblock(conn: Connection, lead_id: str, channel: str) -> int:
    return int(
        conn.execute(
            sa.delete(contact_blocks).where(
                contact_blocks.c.lead_id == lead_id, contact_blocks.c.channel == channel
            )
        ).rowcount
    )


def steps_of(conn: Connection, enrolment_ids: Iterable[int]) -> dict[int, list[StepRow]]:
    found: dict[int, list[StepRow]] = defaultdict(list)
    ids = sorted(set(enrolment_ids))
    for chunk in repo.chunks(ids):
        query = sa.select(nurture_steps).where(S.enrolment_id.in_(chunk)).order_by(S.id)
        for row in conn.execute(query):
            found[int(row.enrolment_id)].append(_step(row))
    return found


def sequence_stats(conn: Connection, sequence: str) -> dict[str, Any]:
    """Counts for ``GET /v1/sequences/{name}``: enrolments by status, exits by reason,
    and per step and variant: statuses, opens and clicks."""
    # One pass over the sequence's enrolments (no index by sequence: ingest would write
    # it for every enrolment, and a report reads most of a sequence's rows anyway).
    by_status: dict[str, int] = defaultdict(int)
    exits: dict[str, int] = defaultdict(int)
    waiting: dict[int, int] = defaultdict(int)
    counted = conn.execute(
        sa.select(E.status, E.exit_reason, E.step, sa.func.count())
        .where(E.sequence == sequence)
        .group_by(E.status, E.exit_reason, E.step)
    ).all()
    for status, reason, step, count in counted:
        by_status[str(status)] += int(count)
        if status == "exited":
            exits[str(reason)] += int(count)
        if status == ACTIVE and step is not None:
            waiting[int(step)] += int(count)
    rows = conn.execute(
        sa.select(
            S.step,
            S.variant,
            S.status,
            sa.func.count(),
            sa.func.count(S.opened_us),
            sa.func.count(S.clicked_us),
        )
        .where(S.sequence == sequence)
        .group_by(S.step, S.variant, S.status)
    ).all()
    return {
        "by_status": dict(by_status),
        "exits": dict(exits),
        "waiting": dict(waiting),
        "steps": [
            {
                "step": int(r[0]),
                "variant": r[1],
                "status": r[2],
                "count": int(r[3]),
                "opens": int(r[4]),
                "clicks": int(r[5]),
            }
            for r in rows
        ],
    }


def move_lead(conn: Connection, from_id: str, into_id: str, now_us: int) -> None:
    """``from_id`` was ``into_id`` all along (``identify`` folded a visitor, or an admin
    merge): its enrolments, the steps they ran and its blocks move over. A sequence both
    were in keeps the enrolment that began first (it is further along; the other ends as
    ``merged``); every block of either side holds (the stricter is the lawful one)."""
    active = sa.select(E.id, E.sequence, E.enrolled_us).where(
        E.lead_id.in_((from_id, into_id)), E.status == ACTIVE
    )
    first: dict[str, tuple[int, int]] = {}
    later: list[int] = []
    for row in conn.execute(active.order_by(E.enrolled_us, E.id)):
        if row.sequence in first:
            later.append(int(row.id))
        else:
            first[row.sequence] = (int(row.enrolled_us), int(row.id))
    if later:
        conn.execute(
            nurture_enrolments.update()
            .where(E.id.in_(later))
            .values(status="exited", exit_reason="merged", ended_us=now_us, next_due_us=None)
        )
    conn.execute(nurture_enrolments.update().where(E.lead_id == from_id).values(lead_id=into_id))
    conn.execute(nurture_steps.update().where(S.lead_id == from_id).values(lead_id=into_id))
    theirs = sa.select(contact_blocks).where(contact_blocks.c.lead_id == from_id)
    for row in conn.execute(theirs).all():
        block(conn, into_id, row.channel, row.reason, int(row.at_us))
    conn.execute(sa.delete(contact_blocks).where(contact_blocks.c.lead_id == from_id))


def delete_lead(conn: Connection, lead_id: str) -> None:
    """Erasure: everything nurture kept of the lead."""
    conn.execute(sa.delete(nurture_steps).where(S.lead_id == lead_id))
    conn.execute(sa.delete(nurture_enrolments).where(E.lead_id == lead_id))
    conn.execute(sa.delete(contact_blocks).where(contact_blocks.c.lead_id == lead_id))


# ---------------------------------------------------------------- batches (the runner)


def enrolments_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, Enrolment]:
    found: dict[int, Enrolment] = {}
    for chunk in repo.chunks(sorted(set(ids))):
        for row in conn.execute(sa.select(nurture_enrolments).where(E.id.in_(chunk))):
            found[int(row.id)] = _enrolment(row)
    return found


def lead_rows(conn: Connection, lead_ids: Iterable[str]) -> dict[str, Any]:
    """What planning a step or deciding an enrolment reads of each lead, in one statement
    per chunk."""
    columns = (
        leads.c.lead_id,
        leads.c.attributes,
        leads.c.owner,
        leads.c.consent,
        leads.c.state,
        leads.c.temperature,
        leads.c.stage,
        leads.c.fit,
    )
    found: dict[str, Any] = {}
    for chunk in repo.chunks(sorted(set(lead_ids))):
        for row in conn.execute(sa.select(*columns).where(leads.c.lead_id.in_(chunk))):
            found[row.lead_id] = row
    return found


def blocks_of(conn: Connection, lead_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each lead's do-not-contact blocks (channel → reason); leads without any left out."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(contact_blocks).where(contact_blocks.c.lead_id.in_(chunk))
        for row in conn.execute(query):
            found[row.lead_id][row.channel] = row.reason
    return dict(found)


def sent_times_of(
    conn: Connection, lead_ids: Iterable[str], since_us: int
) -> dict[str, list[tuple[str, int]]]:
    """:func:`sent_times` of many leads at once, each time with its step's key (so a
    step's own record can be left out)."""
    at = sa.func.coalesce(S.done_us, S.planned_us)
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for chunk in repo.chunks(sorted(set(lead_ids))):
        query = sa.select(S.lead_id, S.key, at).where(
            S.lead_id.in_(chunk),
            S.kind == "email",
            S.status.in_((*SENT_STATUSES, "planned")),
            at > since_us,
        )
        for lead_id, key, t in conn.execute(query):
            found[lead_id].append((key, int(t)))
    return found


def step_values(
    enrolment: Enrolment, step: int, kind: str, status: str, now_us: int, variant: int | None
) -> dict[str, Any]:
    """A step's record for :func:`plan_steps`."""
    return {
        "key": step_key(enrolment.id, step),
        "enrolment_id": enrolment.id,
        "lead_id": enrolment.lead_id,
        "sequence": enrolment.sequence,
        "step": step,
        "kind": kind,
        "status": status,
        "variant": variant,
        "attempts": 0,
        "planned_us": now_us,
        "done_us": now_us if status != "planned" else None,
    }


def plan_steps(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, StepRow]:
    """:func:`plan_step` for many: each record made unless its key exists (a rerun after a
    crash finds the one it planned, with its variant); every record, by key."""
    if not rows:
        return {}
    insert = dialect_insert(conn, nurture_steps).on_conflict_do_nothing(index_elements=["key"])
    for chunk in repo.chunks(rows):
        conn.execute(insert, list(chunk))
    found: dict[str, StepRow] = {}
    for chunk in repo.chunks([r["key"] for r in rows]):
        for row in conn.execute(sa.select(nurture_steps).where(S.key.in_(chunk))):
            found[row.key] = _step(row)
    return found


# Built once: a send is marked on its own, right after the mail server's answer, and
# building the statement per mark would cost more than running it.
_MARK_SENT = (
    nurture_steps.update()
    .where(S.key == sa.bindparam("k"))
    .values(
        status=sa.bindparam("st"),
        attempts=S.attempts + 1,
        error=None,
        done_us=sa.bindparam("at", type_=sa.BigInteger),
        subject=sa.func.coalesce(sa.bindparam("su", type_=sa.Text), S.subject),
    )
)


def mark_sent(conn: Connection, key: str, status: str, subject: str | None, now_us: int) -> None:
    """One send that the mail server took, marked in its own small transaction right after
    the server's answer (``Service.small_writes``), so that a runner killed later in the
    batch does not send it again."""
    conn.execute(_MARK_SENT, {"k": key, "st": status, "su": subject, "at": now_us})


def move_many(conn: Connection, moves: list[tuple[int, int | None, int | None]]) -> None:
    """:func:`move_to` for many: (enrolment id, next step, due)."""
    if not moves:
        return
    statement = (
        nurture_enrolments.update()
        .where(E.id == sa.bindparam("i"))
        .values(step=sa.bindparam("s"), next_due_us=sa.bindparam("d"), attempts=0)
    )
    conn.execute(statement, [{"i": i, "s": s, "d": d} for i, s, d in moves])


def end_many(conn: Connection, ends: list[tuple[int, str, str | None]], now_us: int) -> None:
    """:func:`end` for many: (enrolment id, status, reason)."""
    if not ends:
        return
    statement = (
        nurture_enrolments.update()
        .where(E.id == sa.bindparam("i"), E.status == ACTIVE)
        .values(
            status=sa.bindparam("st"),
            exit_reason=sa.bindparam("r"),
            ended_us=now_us,
            next_due_us=None,
        )
    )
    conn.execute(statement, [{"i": i, "st": st, "r": r} for i, st, r in ends])


def postpone_many(conn: Connection, items: list[tuple[int, int]]) -> None:
    """:func:`postpone` for many: (enrolment id, due)."""
    if not items:
        return
    statement = (
        nurture_enrolments.update()
        .where(E.id == sa.bindparam("i"))
        .values(next_due_us=sa.bindparam("d"))
    )
    conn.execute(statement, [{"i": i, "d": d} for i, d in items])


def ingest_mark(conn: Connection) -> int:
    """The newest event's number: when it moves, ingest is busy (the runner paces itself)."""
    return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)
