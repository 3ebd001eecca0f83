"""Reports over a period: leads and conversion by temperature, stage and source."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pyrometer.api.auth import require
from pyrometer.api.deps import service_of, unprocessable
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import Timestamp
from pyrometer.core.timeutil import MIN_US, to_us
from pyrometer.service.keys import Scope
from pyrometer.service.reports import summary
from pyrometer.service.unknown_events import unknown_events_report

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(no_unknown_query)])
DAY_US = 86_400_000_000


@router.get("/summary", dependencies=[Depends(require(Scope.READ))])
def report_summary(
    request: Request, since: Timestamp | None = None, until: Timestamp | None = None
) -> dict[str, Any]:
    """Leads first seen in [since, until) (default: the last 30 days), converted or not."""
    service = service_of(request)
    until_us = to_us(until) if until is not None else service.clock() + 1
    # The default period does not start before the accepted range of times.
    since_us = to_us(since) if since is not None else max(until_us - 30 * DAY_US, MIN_US)
    if since_us >= until_us:
        raise unprocessable(["query", "since"], "must be before 'until'")
    return summary(service, since_us, until_us)


@router.get("/unknown-events", dependencies=[Depends(require(Scope.READ))])
def report_unknown_events(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Stored events that no rule, stage or suppression of the playbook in force knows
    (worth 0 points): per name, how many and when first and last seen."""
    return unknown_events_report(service_of(request), limit)
