"""Changes sales and marketing make to a lead: its attributes, owner, and sales stage.

A stage move is recorded as the playbook's lifecycle event (``won``, ``lost``...) in the
event log, so it is replayed like any other event when the playbook changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.conditions import normalize_name
from pyrometer.core.timeutil import iso
from pyrometer.service import actions
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.probability import probability_temperatures
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import Change, replay, set_attributes
from pyrometer.store import pages, repo

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
    actor: str = "unknown",
) -> None:
    """Merge attributes (``None`` removes one) and rescore fit; set the plain columns.

    A new ``owner`` is an assignment by hand (:func:`actions.assign_by_hand`): recorded in
    the lead's history and counted against the rep's capacity like a routed one."""
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
        reassigned = owner is not UNSET and owner != record.owner
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
        (change,) = probability_temperatures(service, conn, book, [change], now)
        repo.save_changes(conn, [change], now)
        if reassigned:
            actions.assign_by_hand(conn, lead_id, owner, actor, now)
        actions.act_on_changes(conn, book, [change], now)

    service.write(work)


@dataclass(frozen=True)
class StageMove:
    """What a stage move did: ``effective`` is false when a later lifecycle event (the
    move's ``at`` lies before it) decides the stage, which ``reason`` names."""

    event_id: str
    effective: bool
    reason: str | None = None


def move_stage(
    service: Service, lead_id: str, stage_event: str, at_us: int | None = None
) -> StageMove:
    """Record a sales stage event for the lead and say whether it decides the stage."""
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
    return service.read(lambda conn: _outcome(conn, lead_id, event_id))


def _outcome(conn: Connection, lead_id: str, event_id: str) -> StageMove:
    record = repo.read_lead(conn, lead_id)
    lifecycle = record.state.lifecycle if record is not None else None
    if lifecycle is None or lifecycle[1] == event_id:
        return StageMove(event_id, True)
    ts_us, deciding, stage = lifecycle
    found = pages.event_name(conn, deciding)
    return StageMove(
        event_id,
        False,
        f"a later lifecycle event ({found or deciding} at {iso(ts_us)}) decides the stage "
        f"({stage}); this move is in the lead's history but does not change its stage",
    )
