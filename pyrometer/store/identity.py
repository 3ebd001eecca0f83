"""The store's side of identity: which leads are anonymous visitors, which identify and
alias messages were applied, moving one lead's history onto another, and the audit of
the admin's merges.

Callers own the transaction and hold the locks of the leads they change (see
:mod:`pyrometer.store.repo`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store import nurture
from pyrometer.store.engine import dialect_insert, is_postgres
from pyrometer.store.repo import chunks
from pyrometer.store.tables import (
    assignments,
    audit,
    events,
    identities,
    identity_messages,
    lead_predictions,
    leads,
    touches,
    transitions,
    visitors,
)


def visitors_among(conn: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Which of these leads are anonymous visitors (named by no ``userId`` yet)."""
    found: set[str] = set()
    for chunk in chunks(sorted(set(lead_ids))):
        query = sa.select(visitors.c.lead_id).where(visitors.c.lead_id.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def add_visitors(conn: Connection, lead_ids: Iterable[str]) -> None:
    """New leads only an ``anonymousId`` named."""
    ids = sorted(set(lead_ids))
    if ids:
        statement = dialect_insert(conn, visitors).on_conflict_do_nothing()
        conn.execute(statement, [{"lead_id": lead} for lead in ids])


def forget_visitors(conn: Connection, lead_ids: Iterable[str]) -> None:
    """These leads are known from now on (a ``userId`` named them), or gone.

    Runs for every group ingest stores, so as driver SQL: SQLAlchemy's expanding ``IN``
    of hundreds of ids cost more than the statement.
    """
    ids = sorted(set(lead_ids))
    if not ids:
        return
    if is_postgres(conn):
        conn.exec_driver_sql("DELETE FROM visitors WHERE lead_id = ANY(%b)", (ids,))
        return
    for chunk in chunks(ids):
        marks = ", ".join(["?"] * len(chunk))
        conn.exec_driver_sql(f"DELETE FROM visitors WHERE lead_id IN ({marks})", tuple(chunk))


def applied_messages(conn: Connection, message_ids: Iterable[str]) -> set[str]:
    """Which identify/alias message ids were applied already."""
    found: set[str] = set()
    for chunk in chunks(sorted(set(message_ids))):
        query = sa.select(identity_messages.c.message_id).where(
            identity_messages.c.message_id.in_(chunk)
        )
        found.update(conn.execute(query).scalars())
    return found


def claim_messages(conn: Connection, owners: Mapping[str, str], now_us: int) -> set[str]:
    """Record identify/alias message ids (id → the lead it named) as applied; returns those
    this call recorded (one another transaction holds or committed is not among them).

    In id order: concurrent callers wait for each other's ids in one order.
    """
    if not owners:
        return set()
    rows = [
        {"message_id": message_id, "lead_id": owners[message_id], "received_us": now_us}
        for message_id in sorted(owners)
    ]
    statement = (
        dialect_insert(conn, identity_messages)
        .on_conflict_do_nothing()
        .returning(identity_messages.c.message_id)
    )
    claimed: set[str] = set()
    for row in rows:  # one by one: RETURNING of a multi-row insert is not in every driver
        claimed.update(conn.execute(statement, row).scalars())
    return claimed


def move_history(conn: Connection, from_id: str, into_id: str, now_us: int) -> None:
    """``from_id`` was ``into_id`` all along: its events, transitions and links move over,
    its lead row goes, and ``from_id`` is linked to ``into_id`` from now on."""
    link = {"anonymous_id": from_id, "lead_id": into_id, "linked_us": now_us}
    # An admin merge may fold a lead whose id was once linked elsewhere: the new link wins.
    conn.execute(identities.delete().where(identities.c.anonymous_id == from_id))
    conn.execute(identities.insert().values(**link))
    conn.execute(events.update().where(events.c.lead_id == from_id).values(lead_id=into_id))
    conn.execute(
        transitions.update().where(transitions.c.lead_id == from_id).values(lead_id=into_id)
    )
    _move_assignments(conn, from_id, into_id, now_us)
    conn.execute(touches.update().where(touches.c.lead_id == from_id).values(lead_id=into_id))
    nurture.move_lead(conn, from_id, into_id, now_us)
    # Its probability was its own (the merged lead's is computed anew); left behind, an
    # erasure of the merged lead would not find it.
    conn.execute(lead_predictions.delete().where(lead_predictions.c.lead_id == from_id))
    conn.execute(leads.delete().where(leads.c.lead_id == from_id))
    # Ids linked to ``from_id`` (never happens with Segment's ids, but stay consistent).
    conn.execute(identities.update().where(identities.c.lead_id == from_id).values(lead_id=into_id))
    conn.execute(visitors.delete().where(visitors.c.lead_id == from_id))


def _move_assignments(conn: Connection, from_id: str, into_id: str, now_us: int) -> None:
    """The assignments move over too; if both leads had one in force, ``into_id``'s stays
    and the other ends now (a lead has one owner)."""
    in_force = assignments.c.ended_us.is_(None)
    held = conn.execute(
        sa.select(sa.func.count()).where(assignments.c.lead_id == into_id, in_force)
    ).scalar_one()
    if held:
        conn.execute(
            assignments.update()
            .where(assignments.c.lead_id == from_id, in_force)
            .values(ended_us=now_us)
        )
    conn.execute(
        assignments.update().where(assignments.c.lead_id == from_id).values(lead_id=into_id)
    )


def delete_leads(conn: Connection, lead_ids: Iterable[str]) -> None:
    """Lead rows this transaction created and then found it had no reason to keep."""
    for chunk in chunks(sorted(set(lead_ids))):
        conn.execute(leads.delete().where(leads.c.lead_id.in_(chunk)))
        conn.execute(visitors.delete().where(visitors.c.lead_id.in_(chunk)))


def record_audit(
    conn: Connection, at_us: int, actor: str, action: str, lead_id: str, detail: Mapping[str, Any]
) -> int:
    """Append an audit row; returns its id."""
    result = conn.execute(
        audit.insert()
        .values(at_us=at_us, actor=actor[:250], action=action, lead_id=lead_id, detail=dict(detail))
        .returning(audit.c.id)
    )
    return int(result.scalar_one())


def lead_audit(conn: Connection, lead_id: str) -> list[dict[str, Any]]:
    """The audit rows about a lead, oldest first."""
    query = sa.select(audit).where(audit.c.lead_id == lead_id).order_by(audit.c.at_us, audit.c.id)
    return [dict(row._mapping) for row in conn.execute(query)]
