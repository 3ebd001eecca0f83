"""Leads: a filtered, sorted, paginated list; one lead explained; sales changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AfterValidator

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of, unprocessable
from pyrometer.api.schemas import MAX_ID, LeadUpdate, StageMove, _check_text, _lead_id
from pyrometer.core.playbook import Stage, Temperature
from pyrometer.core.timeutil import to_us
from pyrometer.service import leads as lead_changes
from pyrometer.service.keys import Scope
from pyrometer.service.reads import BadCursor, LeadQuery, get_lead, list_leads

router = APIRouter(prefix="/v1/leads", tags=["leads"])

LeadId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID),
    AfterValidator(_check_text),
    AfterValidator(_lead_id),  # trimmed, NFC: the id ingest stored
]
Text = Annotated[
    str | None, Query(max_length=MAX_ID), AfterValidator(lambda v: v and _check_text(v))
]
Score = Annotated[float | None, Query(allow_inf_nan=False)]


@router.get("", dependencies=[Depends(require(Scope.READ))])
def leads_list(
    request: Request,
    temperature: Temperature | None = None,
    stage: Stage | None = None,
    owner: Text = None,
    source: Text = None,
    min_score: Score = None,
    max_score: Score = None,
    q: Annotated[
        str | None,
        Query(max_length=MAX_ID, description="Text in the lead id or attributes"),
        AfterValidator(lambda v: v and _check_text(v)),
    ] = None,
    sort: Literal["score", "-score", "last_activity", "-last_activity"] = "-score",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    """Leads scored as of now; pass `next_cursor` back as `cursor` for the next page."""
    query = LeadQuery(
        temperature=temperature.value if temperature else None,
        stage=stage.value if stage else None,
        owner=owner,
        source=source,
        min_score=min_score,
        max_score=max_score,
        q=q,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    try:
        return list_leads(service_of(request), query)
    except BadCursor as exc:
        detail = [{"loc": ["query", "cursor"], "msg": str(exc), "type": "bad_cursor"}]
        raise HTTPException(status_code=400, detail=detail) from None


@router.get("/{lead_id}", dependencies=[Depends(require(Scope.READ))])
def lead_detail(lead_id: LeadId, request: Request) -> dict[str, Any]:
    """Score, fit, engagement, temperature, stage, ledger, transitions and events."""
    found = get_lead(service_of(request), lead_id)
    if found is None:
        raise not_found(f"lead {lead_id!r}")
    return found


@router.patch("/{lead_id}", dependencies=[Depends(require(Scope.ADMIN))])
def lead_update(lead_id: LeadId, body: LeadUpdate, request: Request) -> dict[str, Any]:
    """Merge attributes (fit is rescored; `null` removes one); set owner, source, consent."""
    service = service_of(request)
    fields = body.model_fields_set
    try:
        lead_changes.update_lead(
            service,
            lead_id,
            attributes=body.attributes,
            **{
                name: getattr(body, name)
                for name in ("owner", "source", "consent")
                if name in fields
            },
        )
    except lead_changes.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    return lead_detail(lead_id, request)


@router.post("/{lead_id}/stage", dependencies=[Depends(require(Scope.ADMIN))])
def lead_stage(lead_id: LeadId, body: StageMove, request: Request) -> dict[str, Any]:
    """Sales moves the lead: `sales_accepted`, `won`, `lost`, `disqualified`..."""
    service = service_of(request)
    at: datetime | None = body.at
    at_us = to_us(at) if at is not None else None
    if at_us is not None and at_us > service.clock():
        raise unprocessable(["body", "at"], "must not be in the future")
    try:
        lead_changes.move_stage(service, lead_id, body.stage, at_us)
    except lead_changes.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    except lead_changes.NotInPlaybook as exc:
        raise unprocessable(["body", "stage"], str(exc)) from None
    return lead_detail(lead_id, request)
