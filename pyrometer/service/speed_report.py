"""The speed-to-lead report: how fast routed leads were touched, per rep, and whether it
paid (``GET /v1/reports/speed-to-lead``).

Rows are the assignments whose clock started in the period (:func:`store.sla.routed`);
the figures are :mod:`pyrometer.routing.speed`'s. A lead *converted* when its stage is
``customer`` now (the default playbook moves it there on ``won`` or ``purchase``):
the report is read after the fact, so a lead routed in the period that became a
customer later still counts as converted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.playbook import Stage
from pyrometer.core.timeutil import iso
from pyrometer.routing.speed import FIVE_MINUTES_US, Conversion, Routed, Speed, speed_by_rep
from pyrometer.service import actions
from pyrometer.service.runtime import Service
from pyrometer.store import sla as store

DEFINITIONS = {
    "routed": "assignments whose speed-to-lead clock started in the period, to a rep or "
    "the unassigned queue; a lead reassigned (after a breach, or by hand while its clock "
    "ran) counts once for each rep it went to",
    "touched": "a sales touch came at or after the clock start",
    "seconds_to_first_touch": "first touch minus clock start (the routing transition's "
    "time), nearest-rank median and 90th percentile",
    "within_sla": "touched by the SLA due time, over all routed",
    "converted": "the lead's stage is customer now",
}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1e6


def _conversion(group: Conversion) -> dict[str, Any]:
    return {
        "leads": group.leads,
        "converted": group.converted,
        "rate": _rate(group.converted, group.leads),
    }


def figures(speed: Speed) -> dict[str, Any]:
    """One rep's (or everyone's) figures as JSON."""
    return {
        "routed": speed.routed,
        "touched": speed.touched,
        "touched_rate": _rate(speed.touched, speed.routed),
        "median_seconds_to_first_touch": _seconds(speed.median_us),
        "p90_seconds_to_first_touch": _seconds(speed.p90_us),
        "touched_within_sla": speed.within_sla,
        "within_sla_rate": _rate(speed.within_sla, speed.routed),
        "conversion": {
            "touched_within_5_minutes": _conversion(speed.within_5_minutes),
            "touched_later": _conversion(speed.later),
            "not_touched": _conversion(speed.not_touched),
        },
    }


def speed_to_lead(service: Service, since_us: int, until_us: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        _, book = service.playbooks.active(conn)
        rows = [
            Routed(
                row.rep_id,
                row.clock_us,
                row.first_touch_us,
                row.sla_due_us,
                row.stage == Stage.CUSTOMER,
            )
            for row in store.routed(conn, since_us, until_us)
        ]
        names = {rep.id: rep.name for rep in actions.active_reps(conn)}
        by_rep, overall = speed_by_rep(rows)
        reps = sorted(by_rep.items(), key=lambda item: (item[0] is None, item[0] or ""))
        return {
            "since": iso(since_us),
            "until": iso(until_us),
            "sla_seconds": book.routing.sla_us / 1e6,
            "fast_touch_seconds": FIVE_MINUTES_US / 1e6,
            "overall": figures(overall),
            "by_rep": [
                {"rep": rep_id, "name": names.get(rep_id) if rep_id else None, **figures(speed)}
                for rep_id, speed in reps
            ],
            "definitions": DEFINITIONS,
        }

    return service.read(work)
