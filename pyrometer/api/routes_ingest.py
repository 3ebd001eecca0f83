"""Segment-compatible ingest: ``/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/batch``.

A request is one transaction: every message in it is stored and scored, or none is. A
message whose ``messageId`` was seen before counts as a duplicate and changes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from pyrometer.api.auth import require
from pyrometer.api.convert import split_batch, to_identify, to_track
from pyrometer.api.deps import service_of
from pyrometer.api.schemas import BatchIn, IdentifyIn, IngestOut, PageIn, TrackIn
from pyrometer.service.ingest import ingest
from pyrometer.service.keys import Scope

router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(require(Scope.INGEST))])


@router.post("/track", response_model=IngestOut)
def track(message: TrackIn, request: Request) -> IngestOut:
    """Record an event a person did (`userId` is the lead; else `anonymousId`)."""
    service = service_of(request)
    result = ingest(service, [to_track(message, service.clock())], [])
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/page", response_model=IngestOut)
def page(message: PageIn, request: Request) -> IngestOut:
    """Record a page view (a `page_view` event with `properties.url`)."""
    service = service_of(request)
    result = ingest(service, [to_track(message, service.clock())], [])
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/identify", response_model=IngestOut)
def identify(message: IdentifyIn, request: Request) -> IngestOut:
    """Set a lead's traits; with `anonymousId`, that visitor's events become the lead's."""
    service = service_of(request)
    result = ingest(service, [], [to_identify(message, service.clock())])
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/batch", response_model=IngestOut)
def batch(body: BatchIn, request: Request) -> IngestOut:
    """Many messages (`{"batch": [...]}`), accepted whole or rejected whole."""
    service = service_of(request)
    tracks, identifies = split_batch(body.batch, service.clock())
    result = ingest(service, tracks, identifies)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)
