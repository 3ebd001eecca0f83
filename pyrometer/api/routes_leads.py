"""Leads: a filtered, sorted, paginated list; one lead explained, its ledger and events
a page at a time; sales changes; erasure and export (GDPR)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AfterValidator, StringConstraints

from pyrometer.api.auth import presented_key, require
from pyrometer.api.deps import not_found, service_of, unprocessable
from pyrometer.api.fast_json import JSONBytes
from pyrometer.api.lead_paths import LeadId
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import MAX_ID, LeadUpdate, StageMove, _check_text
from pyrometer.core.playbook import Stage, Temperature
from pyrometer.core.timeutil import to_us
from pyrometer.service import erasure, lead_pages, models
from pyrometer.service import leads as lead_changes
from pyrometer.service.keys import Scope
from pyrometer.service.lead_filters import BadFilter
from pyrometer.service.merge import actor_of
from pyrometer.service.reads import (
    BadCursor,
    LeadQuery,
    get_lead,
    lead_event_page,
    lead_ledger,
    lead_transition_page,
    list_leads,
)
from pyrometer.service.runtime import Service

router = APIRouter(prefix="/v1/leads", tags=["leads"], dependencies=[Depends(no_unknown_query)])

Text = Annotated[
    str | None, Query(max_length=MAX_ID), AfterValidator(lambda v: v and _check_text(v))
]
Score = Annotated[float | None, Query(allow_inf_nan=False)]
MAX_VALUES = 100  # values of one repeated filter
Value = Annotated[str, StringConstraints(max_length=MAX_ID), AfterValidator(_check_text)]
Many = Annotated[list[Value] | None, Query(max_length=MAX_VALUES)]
PageLimit = Annotated[int, Query(ge=1, le=lead_pages.MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=2000)]


@router.get("", dependencies=[Depends(require(Scope.READ))])
def leads_list(
    request: Request,
    temperature: Annotated[list[Temperature] | None, Query(max_length=MAX_VALUES)] = None,
    stage: Annotated[list[Stage] | None, Query(max_length=MAX_VALUES)] = None,
    funnel: Many = None,
    owner: Many = None,
    source: Many = None,
    suppressed: bool | None = None,
    open_: Annotated[
        bool | None,
        Query(alias="open", description="true: not a customer, not disqualified, not suppressed"),
    ] = None,
    min_score: Score = None,
    max_score: Score = None,
    q: Annotated[
        str | None,
        Query(max_length=MAX_ID, description="Text in the lead id or an attribute value"),
        AfterValidator(lambda v: v and _check_text(v)),
    ] = None,
    p_convert_gte: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="Only leads whose probability under the active model is at least this",
        ),
    ] = None,
    sort: Literal[
        "score", "-score", "last_activity", "-last_activity", "p_convert", "-p_convert"
    ] = "-score",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Leads scored as of now; pass `next_cursor` back as `cursor` for the next page.

    A filter given more than once (`stage=sql&stage=mql`) matches any of its values."""
    query = LeadQuery(
        temperature=tuple(t.value for t in temperature or ()),
        stage=tuple(s.value for s in stage or ()),
        funnel=tuple(funnel or ()),
        owner=tuple(owner or ()),
        source=tuple(source or ()),
        suppressed=suppressed,
        open=open_,
        min_score=min_score,
        max_score=max_score,
        q=q,
        p_convert_gte=p_convert_gte,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    service = service_of(request)
    try:
        page = list_leads(service, query)
    except BadCursor as exc:
        raise bad_cursor(exc) from None
    except BadFilter as exc:
        raise unprocessable(["query", exc.field], str(exc)) from None
    models.annotate(service, page["items"])
    return page


@router.get(
    "/{lead_id}",
    response_class=JSONBytes,
    response_model=None,
    dependencies=[Depends(require(Scope.READ))],
)
def lead_detail(
    lead_id: LeadId,
    request: Request,
    ledger_limit: PageLimit = lead_pages.DEFAULT_LIMIT,
    events_limit: PageLimit = lead_pages.DEFAULT_LIMIT,
    transitions_limit: PageLimit = lead_pages.DEFAULT_LIMIT,
) -> JSONBytes:
    """Score, fit, engagement, temperature, stage, and the first page of the ledger and
    of the events (newest first) and of the transitions (the latest, in time order):
    `ledger_next`, `events_next` and `transitions_before` continue them at
    `/v1/leads/{lead_id}/ledger`, `/events` and `/transitions`."""
    return JSONBytes(_lead(request, lead_id, ledger_limit, events_limit, transitions_limit))


def _lead(request: Request, lead_id: str, *limits: int) -> dict[str, Any]:
    """The lead as :func:`get_lead` gives it (``limits``: its page sizes), or 404."""
    service = service_of(request)
    found = get_lead(service, lead_id, *limits)
    if found is None:
        raise not_found(f"lead {lead_id!r}")
    models.annotate(service, [found])
    return found


def bad_cursor(exc: BadCursor) -> HTTPException:
    """400 naming the cursor: one this server did not sign, or one of another list."""
    detail = [{"loc": ["query", "cursor"], "msg": str(exc), "type": "bad_cursor"}]
    return HTTPException(status_code=400, detail=detail)


def _page(
    read: Callable[[Service, str, str | None, int], dict[str, Any] | None],
    request: Request,
    lead_id: str,
    cursor: str | None,
    limit: int,
) -> JSONBytes:
    """One page of a lead's ledger, events or transitions."""
    try:
        found = read(service_of(request), lead_id, cursor, limit)
    except BadCursor as exc:
        raise bad_cursor(exc) from None
    if found is None:
        raise not_found(f"lead {lead_id!r}")
    return JSONBytes(found)


@router.get(
    "/{lead_id}/ledger",
    response_class=JSONBytes,
    response_model=None,
    dependencies=[Depends(require(Scope.READ))],
)
def lead_ledger_page(
    lead_id: LeadId,
    request: Request,
    cursor: Cursor = None,
    limit: PageLimit = lead_pages.DEFAULT_LIMIT,
) -> JSONBytes:
    """A page of the lead's ledger, newest event first (the first page starts with the fit
    lines); all pages are valued as of the first page's time."""
    return _page(lead_ledger, request, lead_id, cursor, limit)


@router.get(
    "/{lead_id}/events",
    response_class=JSONBytes,
    response_model=None,
    dependencies=[Depends(require(Scope.READ))],
)
def lead_events_page(
    lead_id: LeadId,
    request: Request,
    cursor: Cursor = None,
    limit: PageLimit = lead_pages.DEFAULT_LIMIT,
) -> JSONBytes:
    """A page of the lead's events, newest first."""
    return _page(lead_event_page, request, lead_id, cursor, limit)


@router.get(
    "/{lead_id}/transitions",
    response_class=JSONBytes,
    response_model=None,
    dependencies=[Depends(require(Scope.READ))],
)
def lead_transitions_page(
    lead_id: LeadId,
    request: Request,
    cursor: Cursor = None,
    limit: PageLimit = lead_pages.DEFAULT_LIMIT,
) -> JSONBytes:
    """The lead's transitions before the cursor's (the latest without one), in time
    order; `next_cursor` continues with older ones."""
    return _page(lead_transition_page, request, lead_id, cursor, limit)


@router.patch("/{lead_id}", dependencies=[Depends(require(Scope.ADMIN))])
def lead_update(lead_id: LeadId, body: LeadUpdate, request: Request) -> dict[str, Any]:
    """Merge attributes (fit is rescored; `null` removes one); set owner, source, consent."""
    service = service_of(request)
    fields = body.model_fields_set
    actor = "unknown"
    if "owner" in fields:
        key = presented_key(request.headers.get("authorization"))
        actor = actor_of(service, key)
    try:
        lead_changes.update_lead(
            service,
            lead_id,
            attributes=body.attributes,
            actor=actor,
            **{
                name: getattr(body, name)
                for name in ("owner", "source", "consent")
                if name in fields
            },
        )
    except lead_changes.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    return _lead(request, lead_id)


@router.post("/{lead_id}/stage", dependencies=[Depends(require(Scope.ADMIN))])
def lead_stage(lead_id: LeadId, body: StageMove, request: Request) -> dict[str, Any]:
    """Sales moves the lead: `sales_accepted`, `won`, `lost`, `disqualified`..."""
    service = service_of(request)
    at: datetime | None = body.at
    at_us = to_us(at) if at is not None else None
    if at_us is not None and at_us > service.clock():
        raise unprocessable(["body", "at"], "must not be in the future")
    try:
        moved = lead_changes.move_stage(service, lead_id, body.stage, at_us)
    except lead_changes.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    except lead_changes.NotInPlaybook as exc:
        raise unprocessable(["body", "stage"], str(exc)) from None
    # A move dated before a later lifecycle event is history, not the stage of today.
    answer = {"effective": moved.effective, **_lead(request, lead_id)}
    if moved.reason is not None:
        answer["reason"] = moved.reason
    return answer


@router.delete("/{lead_id}", dependencies=[Depends(require(Scope.ADMIN))])
def lead_erase(lead_id: LeadId, request: Request) -> dict[str, Any]:
    """Erase the lead (GDPR): its row, events, linked anonymous ids and history, in one
    transaction. The answer is the tombstone kept: when, which key asked, how many rows
    went; never who the lead was. A later event for the same id starts a new lead."""
    key = presented_key(request.headers.get("authorization"))
    try:
        tombstone = erasure.erase_lead(service_of(request), lead_id, "api", key)
    except lead_changes.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    return {"erased": True, "tombstone": tombstone.to_dict()}


@router.get(
    "/{lead_id}/export",
    response_class=JSONBytes,
    response_model=None,
    dependencies=[Depends(require(Scope.READ))],
)
def lead_export(lead_id: LeadId, request: Request) -> JSONBytes:
    """Everything stored about the lead, for the person's right of access: attributes,
    events with their properties (oldest first), linked anonymous ids, the history of its
    temperature and stage, and its scores now."""
    found = erasure.export_lead(service_of(request), lead_id)
    if found is None:
        raise not_found(f"lead {lead_id!r}")
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in lead_id)[:100]
    disposition = f'attachment; filename="lead-{filename}.json"'
    return JSONBytes(found, headers={"Content-Disposition": disposition})
