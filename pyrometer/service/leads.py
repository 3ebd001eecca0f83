"""Changes sales and marketing make to a lead: its attributes, owner, and sales stage.

A stage move is recorded as the playbook's lifecycle event (``won``, ``lost``...) in the
event log, so it is replayed like any other event when the playbook changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.conditions import normalize_name
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import Change, replay, set_attributes
from pyrometer.store import repo

SALES_STAGE_EVENTS = (
    "sales_accepted",
    "opportunity_created",
    "won",
    "lost",
    "disqualified",
    "recycled",
)
UNSET: Any = object()


class UnknownLead(LookupError):
    pass


class NotInPlaybook(ValueError):
    pass


def update_lead(
    service: Service,
    lead_id: str,
    attributes: Mapping[str, Any] | None = None,
    owner: Any = UNSET,
    source: Any = UNSET,
    consent: Any = UNSET,
) -> None:
    """Merge attributes (``None`` removes one) and rescore fit; set the plain columns."""
    now = service.clock()

    def work(conn: Connection) -> None:
        version, book = service.playbooks.active(conn)
        record = repo.lock_leads(conn, [lead_id]).get(lead_id)
        if record is None:
            raise UnknownLead(lead_id)
        columns = {
            name: value
            for name, value in (("owner", owner), ("source", source), ("consent", consent))
            if value is not UNSET
        }
        record = replace(record, **columns)
        if record.playbook_version != version:
            merged = set_attributes(book, record, attributes or {}, now).record.attributes
            record = replace(record, attributes=merged)
            events = repo.lead_events(conn, lead_id)
            change = replay(book, version, record, events, now, f"playbook:v{version}")
        elif attributes:
            change = set_attributes(book, record, attributes, now)
        else:
            change = Change(replace(record, updated_us=now))
        repo.save_changes(conn, [change], now)

    service.write(work)


def move_stage(service: Service, lead_id: str, stage_event: str, at_us: int | None = None) -> str:
    """Record a sales stage event for the lead; returns the event id."""
    name = normalize_name(stage_event)

    def check(conn: Connection) -> None:
        _, book = service.playbooks.active(conn)
        if book.stage_event(name) is None:
            raise NotInPlaybook(
                f"the playbook has no lifecycle event {name!r} "
                f"(it has: {', '.join(sorted(book.lifecycle.events))})"
            )
        if repo.read_lead(conn, lead_id) is None:
            raise UnknownLead(lead_id)

    service.read(check)
    event_id = f"stage-{uuid.uuid4().hex}"
    when = at_us if at_us is not None else service.clock()
    ingest(service, [Track(event_id, name, when, user_id=lead_id)], [])
    return event_id
