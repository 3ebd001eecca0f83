"""Reports: how many leads, and how many of them bought, by temperature, stage and source.

The cohort is the leads first seen in the period: a lead is first seen at its first
event, or when its row was made if that came earlier (a lead known by its attributes
before it did anything). Not the row's time alone: ``pyrometer import`` of a year of
history makes every row today. A lead converted when its stage moved to ``customer``
before the period's end. Temperature and stage are the leads' current
ones. Transition counts show the movement inside the period (e.g. how many became hot).

``by_first_temperature`` groups the same leads by their temperature at first sight: the
hottest they were in their first 24 hours, which is what a rep saw when the lead arrived
(not the temperature at the end of the day: a lead just over the warm line cools at the
next decay step, often the same night). The current temperature would flatter nobody: a customer's
points fade after it bought, so it lands among the cold. The first day's temperature is
the documents' "warm leads close at about 14.6 %, cold at 1.7 %" measured on the user's
own leads. :func:`over_time` is the period cut into equal spans, with how many leads
arrived and how many turned warm, hot, MQL, SQL and customer in each.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads, transitions

FIRST_SIGHT_US = 86_400_000_000
"""How long after a lead is first seen its "temperature at first sight" is read."""
FLOWS = (
    ("temperature", "warm"),
    ("temperature", "hot"),
    ("stage", "mql"),
    ("stage", "sql"),
    ("stage", "customer"),
)
"""The moves :func:`over_time` counts per span, as (kind, new class)."""


def _cohort(conn: Connection) -> tuple[sa.CTE, sa.ColumnElement[int]]:
    """Every lead with its current classes, source and the moment it was first seen, as a
    materialised CTE: the first-seen time is computed once per lead, not once for each
    place a query reads it (a plain subquery is inlined, and SQLite then repeated the
    per-lead seek for every reference)."""
    # Each lead's first event: one seek on the (lead_id, ts_us) index per lead.
    first_event = (
        sa.select(sa.func.min(events.c.ts_us))
        .where(events.c.lead_id == leads.c.lead_id)
        .scalar_subquery()
    )
    # The earlier of the first event (if any) and the row's creation, the seek read once.
    earlier = sa.func.least if conn.dialect.name == "postgresql" else sa.func.min
    first_seen = earlier(sa.func.coalesce(first_event, leads.c.created_us), leads.c.created_us)
    cohort = (
        sa.select(
            leads.c.lead_id,
            leads.c.temperature,
            leads.c.stage,
            leads.c.source,
            first_seen.label("first_seen_us"),
        )
        .cte("cohort")
        .prefix_with("MATERIALIZED")
    )
    return cohort, cohort.c.first_seen_us


def summary(service: Service, since_us: int, until_us: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        cohort, first_seen = _cohort(conn)
        # Leads start cold; the hottest class any temperature move gave in the first day.
        heat = sa.case((transitions.c.new == "hot", 2), (transitions.c.new == "warm", 1), else_=0)
        hottest = (
            sa.select(sa.func.max(heat))
            .where(
                transitions.c.lead_id == cohort.c.lead_id,
                transitions.c.kind == "temperature",
                transitions.c.at_us <= first_seen + FIRST_SIGHT_US,
            )
            .scalar_subquery()
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
                hottest.label("first_heat"),
                sa.func.count().label("leads"),
                sa.func.sum(sa.case((converted, 1), else_=0)).label("converted"),
            )
            .where(in_period)
            .group_by(cohort.c.temperature, cohort.c.stage, cohort.c.source, hottest)
        ).all()
        named = ("cold", "warm", "hot")
        groups: dict[str, list[dict[str, Any]]] = {}
        for name in ("temperature", "stage", "source", "first_temperature"):
            counts: dict[str | None, list[int]] = {}
            for r in rows:
                value = (
                    named[r.first_heat or 0] if name == "first_temperature" else r._mapping[name]
                )
                count = counts.setdefault(value, [0, 0])
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
            "by_first_temperature": groups["first_temperature"],
            "transitions": [{"kind": m.kind, "to": m.new, "count": m.n} for m in moves],
        }

    return service.read(work)


def _none_last(item: tuple[str | None, Any]) -> tuple[bool, str]:
    return (item[0] is None, item[0] or "")


def over_time(
    service: Service, since_us: int, until_us: int, spans: int = 12
) -> list[dict[str, Any]]:
    """The period cut into ``spans`` equal spans: per span its start, the leads first seen
    in it, and the moves into warm, hot, MQL, SQL and customer recorded in it (a lead that
    turns hot twice counts twice). With no lower bound, the period starts at the first
    lead."""

    def work(conn: Connection) -> list[dict[str, Any]]:
        _, first_seen = _cohort(conn)
        start = since_us
        if start <= 0:
            found = conn.execute(sa.select(sa.func.min(first_seen))).scalar()
            if found is None:
                return []
            start = int(found)
        width = max(-(-(until_us - start) // spans), 1)
        count = -(-(until_us - start) // width)
        rows = [
            {"start": iso(start + i * width), "new_leads": 0}
            | {f"{kind}:{new}": 0 for kind, new in FLOWS}
            for i in range(count)
        ]
        arrived = ((first_seen - start) // width).label("span")
        for span, n in conn.execute(
            sa.select(arrived, sa.func.count())
            .where(first_seen >= start, first_seen < until_us)
            .group_by(arrived)
        ):
            rows[int(span)]["new_leads"] = n
        moved = ((transitions.c.at_us - start) // width).label("span")
        wanted = sa.or_(
            *(sa.and_(transitions.c.kind == k, transitions.c.new == n) for k, n in FLOWS)
        )
        for span, kind, new, n in conn.execute(
            sa.select(moved, transitions.c.kind, transitions.c.new, sa.func.count())
            .where(transitions.c.at_us >= start, transitions.c.at_us < until_us, wanted)
            .group_by(moved, transitions.c.kind, transitions.c.new)
        ):
            rows[int(span)][f"{kind}:{new}"] = n
        return rows

    return service.read(work)
