"""Deleting one lead's rows, all of them, and the tombstone that says it happened.

The caller owns the transaction (one for the whole erasure) and holds the lead's lock.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store import nurture
from pyrometer.store.tables import (
    api_keys,
    assignments,
    audit,
    deliveries,
    erasures,
    events,
    identities,
    identity_messages,
    leads,
    touches,
    transitions,
    visitors,
)


class Removed(NamedTuple):
    events: int
    identities: int
    transitions: int


def delete_lead(conn: Connection, lead_id: str) -> Removed:
    """The lead's row, its events (its visitors' too: they are its events), the
    anonymous ids linked to it, its transitions, the ids of its ``identify``/``alias``
    calls, its mark as a visitor, the audit of merges into it, its assignments and
    touches, and every webhook delivery about it; an audit row of a
    merge *from* it into another lead keeps the merge but no longer names it."""
    removed = Removed(
        conn.execute(sa.delete(events).where(events.c.lead_id == lead_id)).rowcount,
        conn.execute(sa.delete(identities).where(identities.c.lead_id == lead_id)).rowcount,
        conn.execute(sa.delete(transitions).where(transitions.c.lead_id == lead_id)).rowcount,
    )
    conn.execute(sa.delete(identity_messages).where(identity_messages.c.lead_id == lead_id))
    conn.execute(sa.delete(visitors).where(visitors.c.lead_id == lead_id))
    conn.execute(sa.delete(audit).where(audit.c.lead_id == lead_id))
    # What routing and notifications kept of it: assignments, touches, and the outbox rows
    # whose payload names it (undelivered ones are not sent any more).
    conn.execute(sa.delete(assignments).where(assignments.c.lead_id == lead_id))
    conn.execute(sa.delete(touches).where(touches.c.lead_id == lead_id))
    conn.execute(sa.delete(deliveries).where(deliveries.c.lead_id == lead_id))
    nurture.delete_lead(conn, lead_id)  # its enrolments, sends and do-not-contact blocks
    # Merges are an admin's rare act: the few rows are checked here, not by a JSON query
    # that SQLite and PostgreSQL would spell differently.
    merges = conn.execute(sa.select(audit.c.id, audit.c.detail).where(audit.c.action == "merge"))
    for row_id, detail in merges.all():
        if isinstance(detail, dict) and detail.get("from") == lead_id:
            redacted = {**detail, "from": None, "from_erased": True}
            conn.execute(audit.update().where(audit.c.id == row_id).values(detail=redacted))
    conn.execute(sa.delete(leads).where(leads.c.lead_id == lead_id))
    return removed


def add_tombstone(
    conn: Connection, erased_us: int, key_id: int | None, requested_by: str, removed: Removed
) -> int:
    """Record an erasure; returns the tombstone's id."""
    return int(
        conn.execute(
            sa.insert(erasures)
            .values(
                erased_us=erased_us,
                key_id=key_id,
                requested_by=requested_by[:200],
                events=removed.events,
                identities=removed.identities,
                transitions=removed.transitions,
            )
            .returning(erasures.c.id)
        ).scalar_one()
    )


def key_id_of(conn: Connection, key_hash: str) -> int | None:
    """The id of the API key with this hash (as :mod:`pyrometer.service.keys` stores it)."""
    query = sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)
    found = conn.execute(query).scalar_one_or_none()
    return int(found) if found is not None else None


def identities_of(conn: Connection, lead_id: str) -> list[tuple[str, int]]:
    """The anonymous ids linked to the lead, and when, oldest first."""
    query = (
        sa.select(identities.c.anonymous_id, identities.c.linked_us)
        .where(identities.c.lead_id == lead_id)
        .order_by(identities.c.linked_us, identities.c.anonymous_id)
    )
    return [(row.anonymous_id, row.linked_us) for row in conn.execute(query)]
