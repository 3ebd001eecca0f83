"""Reports: how many leads, and how many of them bought, by temperature, stage and source.

The cohort is the leads first seen in the period; a lead converted when its stage moved
to ``customer`` before the period's end. Temperature and stage are the leads' current
ones. Transition counts show the movement inside the period (e.g. how many became hot).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from pyrometer.store.tables import leads, transitions


def summary(service: Service, since_us: int, until_us: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        converted = (
            sa.select(transitions.c.id)
            .where(
                transitions.c.lead_id == leads.c.lead_id,
                transitions.c.kind == "stage",
                transitions.c.new == "customer",
                transitions.c.at_us < until_us,
            )
            .exists()
        )
        in_period = sa.and_(leads.c.created_us >= since_us, leads.c.created_us < until_us)
        groups: dict[str, list[dict[str, Any]]] = {}
        for name, column in (
            ("temperature", leads.c.temperature),
            ("stage", leads.c.stage),
            ("source", leads.c.source),
        ):
            rows = conn.execute(
                sa.select(
                    column.label("value"),
                    sa.func.count().label("leads"),
                    sa.func.sum(sa.case((converted, 1), else_=0)).label("converted"),
                )
                .where(in_period)
                .group_by(column)
                .order_by(column)
            ).all()
            groups[name] = [
                {
                    "value": r.value,
                    "leads": r.leads,
                    "converted": int(r.converted or 0),
                    "conversion_rate": round(int(r.converted or 0) / r.leads, 4) if r.leads else 0,
                }
                for r in rows
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
