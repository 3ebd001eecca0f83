"""A person's rights over their data (GDPR): erasure and access.

Erasure deletes the lead, its events (those its anonymous visits sent too), the anonymous
ids linked to it and its transitions in one transaction, and keeps a tombstone with the
time, who asked and how many rows went, never who the lead was. Nothing stays that
points to the lead, so a later event for the same id starts a new lead from nothing.

Access (export) gives everything the store holds about the lead, as JSON: attributes,
sales columns, events with their properties, linked anonymous ids, the history of its
temperature and stage, and its scores now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.keys import hash_key
from pyrometer.service.leads import UnknownLead
from pyrometer.service.reads import current_record, event_dict, lead_summary
from pyrometer.service.runtime import Service, on_commit
from pyrometer.service.scoring import current
from pyrometer.store import erasure, repo


@dataclass(frozen=True)
class Tombstone:
    id: int
    erased_us: int
    key_id: int | None
    requested_by: str
    removed: erasure.Removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "erased": iso(self.erased_us),
            "key_id": self.key_id,
            "requested_by": self.requested_by,
            "events": self.removed.events,
            "identities": self.removed.identities,
            "transitions": self.removed.transitions,
        }


def erase_lead(
    service: Service, lead_id: str, requested_by: str, api_key: str | None = None
) -> Tombstone:
    """Erase the lead in one transaction; ``api_key``: the key that asked, whose id the
    tombstone keeps. Raises :class:`UnknownLead` when there is no such lead."""
    now = service.clock()
    key_hash = hash_key(api_key) if api_key else None

    def work(conn: Connection) -> Tombstone:
        if lead_id not in repo.lock_leads(conn, [lead_id]):
            raise UnknownLead(lead_id)
        key_id = erasure.key_id_of(conn, key_hash) if key_hash else None
        removed = erasure.delete_lead(conn, lead_id)
        asked = requested_by if key_id is None else f"{requested_by} (API key {key_id})"
        tombstone_id = erasure.add_tombstone(conn, now, key_id, asked, removed)
        # A lead made again under this id must not find the erased one's events.
        on_commit(conn, lambda: service.event_cache.forget([lead_id]))
        return Tombstone(tombstone_id, now, key_id, asked[:200], removed)

    return service.write(work)


def export_lead(service: Service, lead_id: str) -> dict[str, Any] | None:
    """Everything stored about the lead (``None``: no such lead), read in one
    transaction; events oldest first, with their properties."""
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        found = current_record(service, conn, lead_id, now)
        if found is None:
            return None
        record, book = found
        return {
            "lead_id": lead_id,
            "exported": iso(now),
            **lead_summary(record, current(book, record.state, now)),
            "attributes": dict(record.attributes),
            "identities": [
                {"anonymous_id": anonymous_id, "linked": iso(at)}
                for anonymous_id, at in erasure.identities_of(conn, lead_id)
            ],
            "transitions": [t.to_dict() for t in repo.lead_transitions(conn, lead_id)],
            "events": [event_dict(e) for e in repo.lead_events(conn, lead_id)],
        }

    return service.read(work)
