"""Demo data as service inputs and as reference events, from the same rows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pyrometer.core.conditions import normalize_name, normalize_record
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import Company, generate
from pyrometer.service.inputs import Identify, Track


def company(n_leads: int, end_us: int, seed: int = 3) -> Company:
    return generate(n_leads, seed=seed, end=from_us(end_us), days=90)


def tracks_of(rows: list[dict[str, str]]) -> list[Track]:
    return [
        Track(
            message_id=row["event_id"],
            name=normalize_name(row["event"]),
            ts_us=to_us(row["timestamp"]),
            user_id=row["lead_id"],
            properties={"url": row["url"]},
        )
        for row in rows
    ]


def identifies_of(leads: list[dict[str, str]], at_us: int) -> list[Identify]:
    return [
        Identify(
            message_id=f"id-{lead['lead_id']}",
            user_id=lead["lead_id"],
            ts_us=at_us,
            traits=normalize_record({k: v for k, v in lead.items() if k != "lead_id"}),
        )
        for lead in leads
    ]


def reference(
    book: Playbook, data: Company, as_of_us: int, with_attributes: bool = True
) -> dict[str, ScoredLead]:
    by_lead: dict[str, list[Event]] = defaultdict(list)
    for row in data.events:
        by_lead[row["lead_id"]].append(
            Event.create(
                row["lead_id"], row["event"], row["timestamp"], row["event_id"], {"url": row["url"]}
            )
        )
    attrs: dict[str, dict[str, Any]] = {
        lead["lead_id"]: {k: v for k, v in lead.items() if k != "lead_id"} for lead in data.leads
    }
    ids = set(by_lead) | (set(attrs) if with_attributes else set())
    return {
        lead: score_lead_reference(
            book,
            lead,
            by_lead.get(lead, []),
            attrs.get(lead, {}) if with_attributes else {},
            as_of_us,
        )
        for lead in ids
    }
