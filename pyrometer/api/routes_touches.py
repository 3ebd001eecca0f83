"""Sales touches over HTTP: a rep called, e-mailed, met or noted something about a lead.

``POST /v1/leads/{id}/touches`` records one (the admin scope, as every other change to a
lead); the first touch at or after the lead's speed-to-lead clock start stops the clock,
and the answer says whether this one did. A tracked ``sales_touch`` event does the same
through ingest (:mod:`pyrometer.service.touches`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of, unprocessable
from pyrometer.api.lead_paths import LeadId
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import MAX_ID, Timestamp, _check_text
from pyrometer.core.timeutil import to_us
from pyrometer.service.scopes import Scope
from pyrometer.service.touches import UnknownLead, add_touch
from pyrometer.store.touches import MAX_OUTCOME

router = APIRouter(
    prefix="/v1/leads",
    tags=["leads"],
    dependencies=[Depends(require(Scope.ADMIN)), Depends(no_unknown_query)],
)


class TouchIn(BaseModel):
    """A sales touch: what kind, by whom, when (default: now), and how it went."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["call", "email", "meeting", "note"]
    rep: Annotated[
        str,
        Field(min_length=1, max_length=MAX_ID, description="Who touched the lead (a rep id)."),
        AfterValidator(_check_text),
    ]
    at: Timestamp | None = None
    outcome: Annotated[str, Field(max_length=MAX_OUTCOME), AfterValidator(_check_text)] | None = (
        None
    )


@router.post("/{lead_id}/touches", status_code=status.HTTP_201_CREATED)
def lead_touch(lead_id: LeadId, body: TouchIn, request: Request) -> dict[str, Any]:
    """Record a touch; `stopped_clock` says whether it stopped the lead's speed-to-lead
    clock (the first touch at or after the clock start of the assignment in force), and
    `clock` then gives the wait and whether it was within the SLA."""
    service = service_of(request)
    rep = body.rep.strip()
    if not rep:
        raise unprocessable(["body", "rep"], "must not be blank")
    at_us = to_us(body.at) if body.at is not None else None
    if at_us is not None and at_us > service.clock():
        raise unprocessable(["body", "at"], "must not be in the future")
    try:
        touched = add_touch(service, lead_id, body.kind, rep, at_us, body.outcome)
    except UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    return {"lead": lead_id, **touched.as_json()}
