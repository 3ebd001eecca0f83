"""The admin's explicit merge of two known leads, audited.

``identify`` and ``alias`` only ever fold an anonymous visitor into a lead (see
:mod:`pyrometer.service.ingest`); when two leads a ``userId`` named turn out to be one
person, an admin merges them here. The lead ``from`` goes: its events, transitions and
links become the lead's, its attributes fill the lead's gaps, and ``from`` is linked to
the lead (its later anonymous messages are the lead's). Who asked and when is kept in the
audit table, with what moved.

The merge costs the events of the side with fewer of them, not the merged history: that
side's events are folded into the other side's state (:func:`scoring.fold`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.service import actions
from pyrometer.service.keys import hash_key
from pyrometer.service.probability import probability_temperatures
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import fold, replay
from pyrometer.service.windows import restore_for
from pyrometer.store import identity as identity_store
from pyrometer.store import repo
from pyrometer.store.tables import api_keys


class UnknownLead(LookupError):
    """No lead with this id (``field``: which side of the merge)."""

    def __init__(self, lead_id: str, field: str) -> None:
        super().__init__(lead_id)
        self.lead_id = lead_id
        self.field = field


class SameLead(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge did (the audit row's content)."""

    audit_id: int
    lead_id: str
    merged_from: str
    at_us: int
    actor: str
    events_moved: int
    temperature: str
    stage: str
    event_count: int


def actor_of(service: Service, key: str | None) -> str:
    """Who a presented API key is, for the audit: its id, name and public prefix."""
    if not key:
        return "unknown"
    query = sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.prefix).where(
        api_keys.c.key_hash == hash_key(key)
    )
    row = service.read(lambda conn: conn.execute(query).first())
    if row is None:
        return "unknown"
    return f"key {row.id} {row.name!r} ({row.prefix}...)"


def merge_leads(service: Service, lead_id: str, from_id: str, actor: str) -> Merged:
    """Merge the lead ``from_id`` into ``lead_id``, in one transaction, audited."""
    if lead_id == from_id:
        raise SameLead(lead_id)
    now = service.clock()

    def work(conn: Connection) -> Merged:
        version, book = service.playbooks.recent(conn)
        records = repo.lock_leads(conn, [lead_id, from_id])  # in id order
        for wanted, field in ((lead_id, "lead_id"), (from_id, "from")):
            if wanted not in records:
                raise UnknownLead(wanted, field)
        into, other = records[lead_id], records[from_id]
        newest = max(into.playbook_version, other.playbook_version)
        if newest > version:
            version, book = service.playbooks.recent(conn, at_least=newest)
        if into.state.event_count >= other.state.event_count:
            base, smaller = into, other
        else:
            base, smaller = other, into
        moved = repo.lead_events(conn, smaller.lead_id) if smaller.state.event_count else []
        known = identity_store.visitors_among(conn, [from_id]) == set()
        identity_store.move_history(conn, from_id, lead_id, now)
        if known:  # a known lead merged in: the merged lead is known
            identity_store.forget_visitors(conn, [lead_id])
        record = replace(
            into,
            attributes={**other.attributes, **into.attributes},
            source=into.source if into.source is not None else other.source,
            owner=into.owner if into.owner is not None else other.owner,
            consent=into.consent if into.consent is not None else other.consent,
            created_us=min(into.created_us, other.created_us),
        )
        cause = f"merge:{from_id}"
        if into.playbook_version == other.playbook_version == version:
            state = restore_for(conn, book, lead_id, base.state, moved)
            change = fold(book, record, state, moved, now, cause)
        else:  # a side not rescored under the playbook in force yet: replay all
            events = repo.lead_events(conn, lead_id)
            change = replay(book, version, record, events, now, cause)
        (change,) = probability_temperatures(service, conn, book, [change], now)
        repo.save_changes(conn, [change], now)
        actions.act_on_changes(conn, book, [change], now)
        detail: dict[str, Any] = {
            "from": from_id,
            "events_moved": other.state.event_count,
            "before": {"temperature": into.temperature, "stage": into.stage},
            "after": {"temperature": change.record.temperature, "stage": change.record.stage},
        }
        audit_id = identity_store.record_audit(conn, now, actor, "merge", lead_id, detail)
        return Merged(
            audit_id=audit_id,
            lead_id=lead_id,
            merged_from=from_id,
            at_us=now,
            actor=actor,
            events_moved=other.state.event_count,
            temperature=change.record.temperature,
            stage=change.record.stage,
            event_count=change.record.state.event_count,
        )

    return service.write(work)


def lead_audit(service: Service, lead_id: str) -> list[dict[str, Any]]:
    """The audit rows about a lead, oldest first."""
    return service.read(lambda conn: identity_store.lead_audit(conn, lead_id))
