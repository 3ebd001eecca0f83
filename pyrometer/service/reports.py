"""Reports: how many leads, and how many of them bought, by temperature, stage and source.

The cohort is the leads first seen in the period: a lead is first seen at its first
event, or when its row was made if that came earlier (a lead known by its attributes
before it did anything). Not the row's time alone: ``pyrometer import`` of a year of
history makes every row today. A lead converted when its stage moved to ``customer``
before the period's end. Temperature and stage are the leads' current
ones. Transition counts show the movement inside the period (e.g. how many became hot).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads, transitions


def summary(service: Service, since_us: int, until_us: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        # Each lead's first event: one seek on the (lead_id, ts_us) index per lead.
        first_event = (
            sa.select(sa.func.min(events.c.ts_us))
            .where(events.c.lead_id == leads.c.lead_id)
            .scalar_subquery()
        )
        cohort = sa.select(
            leads.c.lead_id,
            leads.c.temperature,
            leads.c.stage,
            leads.c.source,
            leads.c.created_us,
            first_event.label("first_event_us"),
        ).subquery()
        first_seen = sa.case(
            (cohort.c.first_event_us < cohort.c.created_us, cohort.c.first_event_us),
            else_=cohort.c.created_us,
        )
        converted = (
            sa.select(transitions.c.id)
            .where(
                transitions.c.lead_id == cohort.c.lead_id,
                transitions.c.kind == "stage",
                transitions.c.new == "customer",
                transitions.c.at_us < until_us,
            )
            .exists()
        )
        in_period = sa.and_(first_seen >= since_us, first_seen < until_us)
        # One pass over the leads, grouped by all three; each dimension is summed here.
        rows = conn.execute(
            sa.select(
                cohort.c.temperature,
                cohort.c.stage,
                cohort.c.source,
                sa.func.count().label("leads"),
                sa.func.sum(sa.case((converted, 1), else_=0)).label("converted"),
            )
            .where(in_period)
            .group_by(cohort.c.temperature, cohort.c.stage, cohort.c.source)
        ).all()
        groups: dict[str, list[dict[str, Any]]] = {}
        for name in ("temperature", "stage", "source"):
            counts: dict[str | None, list[int]] = {}
            for r in rows:
                count = counts.setdefault(r._mapping[name], [0, 0])
                count[0] += r.leads
                count[1] += int(r.converted or 0)
            groups[name] = [
                {
                    "value": value,
                    "leads": n,
                    "converted": won,
                    "conversion_rate": round(won / n, 4) if n else 0,
                }
                for value, (n, won) in sorted(counts.items(), key=_none_last)
            ]
        moves = conn.execute(
            sa.select(transitions.c.kind, transitions.c.new, sa.func.count().label("n"))
            .where(transitions.c.at_us >= since_us, transitions.c.at_us < until_us)
            .group_by(transitions.c.kind, transitions.c.new)
            .order_by(transitions.c.kind, transitions.c.new)
        ).all()
        total = sum(g["leads"] for g in groups["temperature"])
        won = sum(g["converted"] for g in groups["temperature"])
        return {
            "since": iso(since_us),
            "until": iso(until_us),
            "leads": total,
            "converted": won,
            "conversion_rate": round(won / total, 4) if total else 0,
            "by_temperature": groups["temperature"],
            "by_stage": groups["stage"],
            "by_source": groups["source"],
            "transitions": [{"kind": m.kind, "to": m.new, "count": m.n} for m in moves],
        }

    return service.read(work)


def _none_last(item: tuple[str | None, Any]) -> tuple[bool, str]:
    return (item[0] is None, item[0] or "")
