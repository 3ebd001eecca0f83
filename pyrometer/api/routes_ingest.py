"""Segment-compatible ingest: ``/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/alias``,
``/v1/batch``.

Every message of a request is stored and scored, or none is; the answer comes after the
commit. Requests arriving together share a transaction (see
:mod:`pyrometer.service.grouping`). A message whose ``messageId`` was seen before counts
as a duplicate and changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, get_type_hints

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from pyrometer.api.auth import require
from pyrometer.api.convert import alias_to_identify, split_batch, to_identify, to_track
from pyrometer.api.deps import service_of
from pyrometer.api.schemas import AliasIn, BatchIn, IdentifyIn, IngestOut, PageIn, TrackIn
from pyrometer.service.grouping import GroupCommitter
from pyrometer.service.inputs import Identify, IngestResult, Refusal, Track
from pyrometer.service.keys import Scope


class _JsonBodyRoute(APIRoute):
    """Parses and validates a JSON body in one step (pydantic's own JSON parser), instead
    of ``json.loads`` and then validating the Python objects: about half the cost on a
    500-event batch. Only a body that validates takes this path; anything else goes the
    usual way, so every error answer is exactly FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        hints = get_type_hints(self.endpoint)
        models = [t for t in hints.values() if isinstance(t, type) and issubclass(t, BaseModel)]
        if len(models) != 1:
            return handler
        model = models[0]

        async def route_handler(request: Request) -> Response:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json" or (
                kind.startswith("application/") and kind.endswith("+json")
            ):
                # What Request.json() returns from now on; FastAPI's validation of a model
                # instance as that model keeps it as it is.
                with contextlib.suppress(ValidationError):
                    request._json = model.model_validate_json(await request.body())
            return await handler(request)

        return route_handler


router = APIRouter(
    prefix="/v1",
    tags=["ingest"],
    dependencies=[Depends(require(Scope.INGEST))],
    route_class=_JsonBodyRoute,
)


Loc = list[str | int]


async def ingest(
    request: Request,
    tracks: list[Track],
    identifies: list[Identify],
    locs: list[Loc] | None = None,
    batch: bool = False,
) -> Response:
    """Through the app's group committer: requests arriving together share a commit.

    The handlers are ``async``: the wait for the commit holds no thread, and the answer,
    three numbers, is written directly (its schema is ``IngestOut``).

    An identify or alias that would merge two known leads is refused on its own (``locs``:
    the field of each of ``identifies`` that names the other lead): a single call answers
    ``409``; a batch stores its other messages and answers ``200`` with ``refused``.
    """
    committer: GroupCommitter = request.app.state.committer
    result: IngestResult = await committer.submit_async(tracks, identifies)
    if result.refused:
        return _refused(result, identifies, locs or [], batch)
    body = b'{"success":true,"accepted":%d,"duplicates":%d}' % (
        result.accepted,
        result.duplicates,
    )
    return Response(content=body, media_type="application/json")


def _refused(
    result: IngestResult, identifies: list[Identify], locs: list[Loc], batch: bool
) -> Response:
    where: dict[str, Loc] = {}
    for ident, loc in zip(identifies, locs, strict=False):
        where.setdefault(ident.message_id, loc)

    def problem(refusal: Refusal) -> dict[str, object]:
        loc = where.get(refusal.message_id, ["body"])
        if refusal.kind == "too_many_attributes":  # the traits, not the other lead's id
            loc = [*list(loc)[:-1], "traits"] if len(loc) > 1 else ["body", "traits"]
        return {
            "loc": loc,
            "messageId": refusal.message_id,
            "msg": refusal.reason,
            "type": refusal.kind,
        }

    problems = [problem(refusal) for refusal in result.refused]
    if not batch:
        merge = any(refusal.kind == "merge_refused" for refusal in result.refused)
        status = 409 if merge else 422
        return Response(orjson.dumps({"detail": problems}), status, media_type="application/json")
    body = {
        "success": True,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "refused": problems,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.post("/track", response_model=IngestOut)
async def track(message: TrackIn, request: Request) -> Response:
    """Record an event a person did (`userId` is the lead; else `anonymousId`)."""
    return await ingest(request, [to_track(message, service_of(request).clock())], [])


@router.post("/page", response_model=IngestOut)
async def page(message: PageIn, request: Request) -> Response:
    """Record a page view (a `page_view` event with `properties.url`)."""
    return await ingest(request, [to_track(message, service_of(request).clock())], [])


_MERGE_REFUSED = {
    409: {
        "description": "The call would merge two known leads (`merge_refused`, naming the "
        "field); nothing of it was stored"
    },
    422: {
        "description": "Bad input, or traits that would give the lead more than 1,000 "
        "attributes (`too_many_attributes`, naming `traits`); nothing of it was stored"
    },
}


@router.post("/identify", response_model=IngestOut, responses=_MERGE_REFUSED)
async def identify(message: IdentifyIn, request: Request) -> Response:
    """Set a lead's traits; with `anonymousId`, that visitor's events become the lead's."""
    identify = to_identify(message, service_of(request).clock())
    return await ingest(request, [], [identify], [["body", "anonymousId"]])


@router.post("/alias", response_model=IngestOut, responses=_MERGE_REFUSED)
async def alias(message: AliasIn, request: Request) -> Response:
    """`previousId` was `userId` all along: its events become the lead's, as with identify."""
    aliased = alias_to_identify(message, service_of(request).clock())
    return await ingest(request, [], [aliased], [["body", "previousId"]])


@router.post("/batch", response_model=IngestOut)
async def batch(body: BatchIn, request: Request) -> Response:
    """Many messages (`{"batch": [...]}`), accepted whole or rejected whole; only an
    identify or alias that would merge two known leads, or give a lead more than 1,000
    attributes, is refused on its own (listed in `refused`, the batch's other messages
    stored)."""
    tracks, identifies = split_batch(body.batch, service_of(request).clock())
    locs: list[Loc] = [
        ["body", "batch", index, "previousId" if isinstance(item, AliasIn) else "anonymousId"]
        for index, item in enumerate(body.batch)
        if isinstance(item, IdentifyIn | AliasIn)
    ]
    return await ingest(request, tracks, identifies, locs, batch=True)
