"""The admin's explicit merge of two known leads (``identify`` and ``alias`` only fold an
anonymous visitor into a lead), and the audit that records who merged what, when."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from pyrometer.api.auth import presented_key, require
from pyrometer.api.deps import service_of, unprocessable
from pyrometer.api.lead_paths import LeadId
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import MAX_ID, _check_text, _lead_id
from pyrometer.core.timeutil import iso
from pyrometer.service import merge
from pyrometer.service.keys import Scope

router = APIRouter(
    prefix="/v1/leads",
    tags=["leads"],
    dependencies=[Depends(require(Scope.ADMIN)), Depends(no_unknown_query)],
)


class MergeIn(BaseModel):
    """``{"from": "other-lead"}``: the lead that merges into the one in the path."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Annotated[
        str,
        Field(alias="from", min_length=1, max_length=MAX_ID),
        AfterValidator(_check_text),
        AfterValidator(_lead_id),
    ]


@router.post("/{lead_id}/merge")
async def merge_leads(lead_id: LeadId, body: MergeIn, request: Request) -> dict[str, Any]:
    """Merge the lead `from` into this one (admin): its events, transitions and links
    become this lead's, its attributes fill this lead's gaps, and the merge is audited."""
    service = service_of(request)
    actor = await run_in_threadpool(
        merge.actor_of, service, presented_key(request.headers.get("authorization"))
    )
    try:
        done = await run_in_threadpool(merge.merge_leads, service, lead_id, body.from_, actor)
    except merge.SameLead:
        raise unprocessable(["body", "from"], "is the lead itself") from None
    except merge.UnknownLead as exc:
        loc = ["path", "lead_id"] if exc.field == "lead_id" else ["body", "from"]
        raise HTTPException(404, detail=[{"loc": loc, "msg": "no such lead"}]) from None
    return {
        "lead_id": done.lead_id,
        "merged_from": done.merged_from,
        "at": iso(done.at_us),
        "by": done.actor,
        "audit_id": done.audit_id,
        "events_moved": done.events_moved,
        "event_count": done.event_count,
        "temperature": done.temperature,
        "stage": done.stage,
    }


@router.get("/{lead_id}/audit")
def lead_audit(lead_id: LeadId, request: Request) -> dict[str, Any]:
    """Who merged what into this lead, and when (admin)."""
    rows = merge.lead_audit(service_of(request), lead_id)
    return {
        "lead_id": lead_id,
        "items": [
            {
                "id": row["id"],
                "at": iso(row["at_us"]),
                "by": row["actor"],
                "action": row["action"],
                "detail": row["detail"],
            }
            for row in rows
        ],
    }
