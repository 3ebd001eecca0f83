"""Nurture over HTTP.

Public (the links in e-mails; a signed token is the only key): the unsubscribe link
(``GET`` shows it done, ``POST`` is RFC 8058's one-click, and both suppress the lead at
once), the open pixel and tracked links (``email_open`` and ``email_click`` events).
With a key: ``GET /v1/sequences/{name}`` (read) for a sequence's counts, and
``POST /v1/nurture/bounces`` (ingest), where a mail provider reports bounces and
complaints.
"""

from __future__ import annotations

import base64
import contextlib
import html
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pyrometer.api.auth import require
from pyrometer.api.deps import not_found, service_of, unprocessable
from pyrometer.api.lead_paths import LeadId
from pyrometer.nurture.links import BadLink, Links
from pyrometer.service import nurture
from pyrometer.service.scopes import Scope

router = APIRouter(prefix="/v1", tags=["nurture"])
public = APIRouter(prefix="/nurture", tags=["nurture"], include_in_schema=False)

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _links(request: Request) -> Links:
    found: Links | None = getattr(request.app.state, "nurture_links", None)
    if found is None:
        settings = nurture.NurtureSettings.from_env(default_public_url=str(request.base_url))
        found = nurture.links_of(service_of(request), settings.public_url)
        request.app.state.nurture_links = found
    return found


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _unsubscribe(request: Request, token: str) -> HTMLResponse:
    try:
        nurture.unsubscribe(service_of(request), _links(request), token)
    except (BadLink, nurture.UnknownSend):
        return _page("Link not valid", "This unsubscribe link is not valid.", 404)
    return _page("Unsubscribed", "You will get no more of these e-mails.")


@public.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_link(token: str, request: Request) -> HTMLResponse:
    """The unsubscribe link: the lead is suppressed at once."""
    return _unsubscribe(request, token)


@public.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_one_click(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click`` in the body)."""
    return _unsubscribe(request, token)


@public.get("/open/{token}.gif")
def open_pixel(token: str, request: Request) -> Response:
    # A pixel always answers: an old or forged one is just not counted.
    with contextlib.suppress(BadLink, nurture.UnknownSend):
        nurture.record_open(service_of(request), _links(request), token)
    return Response(_PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@public.get("/click/{token}")
def tracked_click(token: str, request: Request) -> Response:
    try:
        url = nurture.record_click(service_of(request), _links(request), token)
    except (BadLink, nurture.UnknownSend):
        return _page("Link not valid", "This link is not valid.", 404)
    return RedirectResponse(url, status_code=302)


@router.get("/sequences/{name}", dependencies=[Depends(require(Scope.READ))])
def sequence(name: str, request: Request) -> dict[str, Any]:
    """A sequence's enrolments by status, exits by reason, opens, clicks, replies and
    conversions, and per step its counts (per subject variant, with a 95% interval)."""
    found = nurture.sequence_report(service_of(request), name)
    if found is None:
        raise not_found(f"sequence {name!r}")
    return found


class BounceIn(BaseModel):
    """A bounce or complaint, naming the lead or the e-mail (its Message-ID)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["bounce", "complaint"]
    lead_id: str | None = Field(default=None, max_length=200)
    message_id: str | None = Field(default=None, max_length=300)


@router.post("/nurture/bounces", dependencies=[Depends(require(Scope.INGEST))])
def bounce(body: BounceIn, request: Request) -> dict[str, Any]:
    """The lead's e-mail is blocked (``bounced`` or ``complained``) and its sequences end."""
    if body.lead_id is None and body.message_id is None:
        raise unprocessable(["body", "lead_id"], "give lead_id or message_id")
    try:
        lead_id = nurture.report_bounce(
            service_of(request), body.type, body.lead_id, body.message_id
        )
    except nurture.UnknownSend as exc:
        raise not_found(str(exc)) from None
    return {
        "lead_id": lead_id,
        "blocked": "email",
        "reason": body.type + "d" if body.type == "bounce" else "complained",
    }


class BlockIn(BaseModel):
    """A do-not-contact block set by hand: on ``email`` or ``*`` (every automated
    action), with its reason (``manual`` unless the lead said so another way)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "*"] = "email"
    reason: Literal["manual", "unsubscribed", "bounced", "complained"] = "manual"


@router.post("/leads/{lead_id}/do-not-contact", dependencies=[Depends(require(Scope.ADMIN))])
def block_lead(lead_id: LeadId, body: BlockIn, request: Request) -> dict[str, Any]:
    """Block the lead: its sequences end now and it enrols in none while blocked. A
    channel already blocked keeps its first reason. Answers the lead's blocks."""
    try:
        blocks = nurture.set_block(service_of(request), lead_id, body.channel, body.reason)
    except nurture.UnknownLead:
        raise not_found(f"lead {lead_id!r}") from None
    return {"lead_id": lead_id, "do_not_contact": blocks}


@router.delete(
    "/leads/{lead_id}/do-not-contact/{channel}", dependencies=[Depends(require(Scope.ADMIN))]
)
def unblock_lead(
    lead_id: LeadId, channel: Literal["email", "*"], request: Request
) -> dict[str, Any]:
    """Lift a ``manual`` block (409 for an unsubscribe, bounce or complaint: those stay)."""
    try:
        blocks = nurture.clear_block(service_of(request), lead_id, channel)
    except nurture.UnknownLead as exc:
        raise not_found(str(exc).removesuffix(" not found")) from None
    except nurture.NotManual as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return {"lead_id": lead_id, "do_not_contact": blocks}
