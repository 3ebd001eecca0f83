"""Reports over a period: leads and conversion by temperature, stage and source."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pyrometer.api.auth import require
from pyrometer.api.deps import service_of, unprocessable
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import Timestamp
from pyrometer.core.timeutil import MIN_US, to_us
from pyrometer.service.keys import Scope
from pyrometer.service.reports import summary
from pyrometer.service.runtime import Service
from pyrometer.service.speed_report import speed_to_lead
from pyrometer.service.unknown_events import unknown_events_report

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(no_unknown_query)])
DAY_US = 86_400_000_000


@router.get("/summary", dependencies=[Depends(require(Scope.READ))])
def report_summary(
    request: Request, since: Timestamp | None = None, until: Timestamp | None = None
) -> dict[str, Any]:
    """Leads first seen in [since, until) (default: the last 30 days), converted or not."""
    service = service_of(request)
    return summary(service, *_period(service, since, until))


def _period(service: Service, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """[since, until) in microseconds; the default is the 30 days up to now."""
    until_us = to_us(until) if until is not None else service.clock() + 1
    # The default period does not start before the accepted range of times.
    since_us = to_us(since) if since is not None else max(until_us - 30 * DAY_US, MIN_US)
    if since_us >= until_us:
        raise unprocessable(["query", "since"], "must be before 'until'")
    return since_us, until_us


@router.get("/speed-to-lead", dependencies=[Depends(require(Scope.READ))])
def report_speed_to_lead(
    request: Request, since: Timestamp | None = None, until: Timestamp | None = None
) -> dict[str, Any]:
    """How fast leads routed in [since, until) (default: the last 30 days; by when their
    speed-to-lead clock started) were touched, per rep and overall: routed, touched,
    median and p90 seconds to the first touch, the share touched within the SLA, and the
    conversion (the lead is a customer now) of leads touched within 5 minutes, later, or
    never. `definitions` in the answer spells out each figure."""
    service = service_of(request)
    return speed_to_lead(service, *_period(service, since, until))


@router.get("/unknown-events", dependencies=[Depends(require(Scope.READ))])
def report_unknown_events(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Stored events that no rule, stage or suppression of the playbook in force knows
    (worth 0 points): per name, how many and when first and last seen."""
    return unknown_events_report(service_of(request), limit)
