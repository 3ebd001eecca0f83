"""Webhooks over HTTP, for the admin scope: add, list, get, delete, test; deliveries.

``POST /v1/webhooks`` answers the signing secret, once; no other answer shows it. A bad
URL or an unknown event type is a 422 whose ``loc`` names the field (``events``, 2).
Deliveries are listed newest first, a page at a time (``limit``, and ``cursor``: the
``next_cursor`` of the page before).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from pyrometer.api.auth import require
from pyrometer.api.convert import FieldErrors
from pyrometer.api.deps import not_found, service_of, unprocessable
from pyrometer.api.query_check import no_unknown_query
from pyrometer.api.schemas import SafeText
from pyrometer.core.timeutil import iso
from pyrometer.service.scopes import Scope
from pyrometer.service.webhooks import (
    EVENT_TYPES,
    NotRetryable,
    WebhookError,
    add_webhook,
    delete_webhook,
    deliveries_of,
    get_webhook,
    list_webhooks,
    retry_delivery,
    send_test,
)
from pyrometer.store.webhooks import DeliveryRow, WebhookRow

router = APIRouter(
    prefix="/v1",
    tags=["webhooks"],
    dependencies=[Depends(require(Scope.ADMIN)), Depends(no_unknown_query)],
)
WebhookId = Annotated[SafeText, Path(min_length=1, max_length=40)]
DeliveryId = Annotated[int, Path(ge=1, le=2**62)]
MAX_PAGE = 200


class WebhookIn(BaseModel):
    """A webhook to add: where to POST, and which event types."""

    model_config = ConfigDict(extra="forbid")

    url: SafeText = Field(description="http(s) URL, at most 2,000 characters.")
    events: list[Any] = Field(
        description=f"Event types: {', '.join(EVENT_TYPES)}, or * for all of them."
    )
    description: Annotated[SafeText, Field(max_length=500)] | None = None


def _field_errors(exc: WebhookError) -> FieldErrors:
    errors = []
    for field, message in exc.problems:
        name, _, index = field.partition("[")
        loc: tuple[str | int, ...] = ("body", name)
        if index:
            loc += (int(index.rstrip("]")),)
        errors.append({"loc": loc, "msg": f"{field}: {message}"})
    return FieldErrors(errors)


def _view(row: WebhookRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "description": row.description,
        "created": iso(row.created_us),
    }


def _delivery(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "message_id": row.message_id,
        "event_type": row.event_type,
        "lead_id": row.lead_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt": iso(row.next_attempt_us) if row.status == "pending" else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created": iso(row.created_us),
        "delivered": iso(row.delivered_us),
    }


@router.post("/webhooks", status_code=status.HTTP_201_CREATED)
def webhooks_add(request: Request, body: WebhookIn) -> dict[str, Any]:
    """Add a webhook. The answer holds its signing ``secret``: store it now, it is never
    shown again."""
    try:
        made = add_webhook(service_of(request), body.url, body.events, body.description)
    except WebhookError as exc:
        raise _field_errors(exc) from None
    return {**_view(made.webhook), "secret": made.secret}


@router.get("/webhooks")
def webhooks_list(request: Request) -> dict[str, Any]:
    """Every webhook not deleted, oldest first (never a secret)."""
    return {"items": [_view(row) for row in list_webhooks(service_of(request))]}


@router.get("/webhooks/{webhook_id}")
def webhooks_get(request: Request, webhook_id: WebhookId) -> dict[str, Any]:
    row = get_webhook(service_of(request), webhook_id)
    if row is None:
        raise not_found(f"webhook {webhook_id}")
    return _view(row)


@router.delete("/webhooks/{webhook_id}")
def webhooks_delete(request: Request, webhook_id: WebhookId) -> dict[str, Any]:
    """Delete a webhook: nothing more is sent to it, its pending deliveries are given up
    (dead, ``webhook deleted``); its deliveries stay listed."""
    if not delete_webhook(service_of(request), webhook_id):
        raise not_found(f"webhook {webhook_id}")
    return {"id": webhook_id, "deleted": True}


@router.post("/webhooks/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED)
def webhooks_test(request: Request, webhook_id: WebhookId) -> dict[str, Any]:
    """Queue a ``webhook.test`` message to this webhook alone."""
    delivery_id = send_test(service_of(request), webhook_id)
    if delivery_id is None:
        raise not_found(f"webhook {webhook_id}")
    return {"delivery_id": delivery_id, "status": "pending"}


@router.get("/webhooks/{webhook_id}/deliveries")
def webhooks_deliveries(
    request: Request,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=30)] = None,
) -> dict[str, Any]:
    """A webhook's deliveries, newest first; ``next_cursor`` pages on (null: the last)."""
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit() or not 0 < int(cursor) < 2**62:
            raise unprocessable(["query", "cursor"], "not a cursor this API gave out")
        before = int(cursor)
    rows = deliveries_of(service_of(request), webhook_id, limit + 1, before)
    if rows is None:
        raise not_found(f"webhook {webhook_id}")
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [_delivery(row) for row in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }


@router.post("/deliveries/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED)
def deliveries_retry(request: Request, delivery_id: DeliveryId) -> dict[str, Any]:
    """Send a dead or delivered delivery again: same ``webhook-id``, attempts from 0."""
    try:
        row = retry_delivery(service_of(request), delivery_id)
    except NotRetryable as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if row is None:
        raise not_found(f"delivery {delivery_id}")
    return _delivery(row)
