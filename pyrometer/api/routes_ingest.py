"""Segment-compatible ingest: ``/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/alias``,
``/v1/batch``.

Every message of a request is stored and scored, or none is; the answer comes after the
commit. Requests arriving together share a transaction (see
:mod:`pyrometer.service.grouping`). A message whose ``messageId`` was seen before counts
as a duplicate and changes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from pyrometer.api.auth import require
from pyrometer.api.convert import alias_to_identify, split_batch, to_identify, to_track
from pyrometer.api.deps import service_of
from pyrometer.api.schemas import AliasIn, BatchIn, IdentifyIn, IngestOut, PageIn, TrackIn
from pyrometer.service.grouping import GroupCommitter
from pyrometer.service.inputs import Identify, IngestResult, Track
from pyrometer.service.keys import Scope

router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(require(Scope.INGEST))])


def ingest(request: Request, tracks: list[Track], identifies: list[Identify]) -> IngestOut:
    """Through the app's group committer: requests arriving together share a commit."""
    committer: GroupCommitter = request.app.state.committer
    result: IngestResult = committer.submit(tracks, identifies)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/track", response_model=IngestOut)
def track(message: TrackIn, request: Request) -> IngestOut:
    """Record an event a person did (`userId` is the lead; else `anonymousId`)."""
    return ingest(request, [to_track(message, service_of(request).clock())], [])


@router.post("/page", response_model=IngestOut)
def page(message: PageIn, request: Request) -> IngestOut:
    """Record a page view (a `page_view` event with `properties.url`)."""
    return ingest(request, [to_track(message, service_of(request).clock())], [])


@router.post("/identify", response_model=IngestOut)
def identify(message: IdentifyIn, request: Request) -> IngestOut:
    """Set a lead's traits; with `anonymousId`, that visitor's events become the lead's."""
    return ingest(request, [], [to_identify(message, service_of(request).clock())])


@router.post("/alias", response_model=IngestOut)
def alias(message: AliasIn, request: Request) -> IngestOut:
    """`previousId` was `userId` all along: its events become the lead's, as with identify."""
    return ingest(request, [], [alias_to_identify(message, service_of(request).clock())])


@router.post("/batch", response_model=IngestOut)
def batch(body: BatchIn, request: Request) -> IngestOut:
    """Many messages (`{"batch": [...]}`), accepted whole or rejected whole."""
    tracks, identifies = split_batch(body.batch, service_of(request).clock())
    return ingest(request, tracks, identifies)
