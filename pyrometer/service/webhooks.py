"""Managing webhooks: add, list, get, delete, send a test, list and retry deliveries.

A webhook is validated here before anything is stored (:class:`WebhookError` names each
bad field, as ``events[2]``), and its signing secret is made here: ``whsec_`` and the
base64 of 24 random bytes, the form the Standard Webhooks libraries read. The secret is
returned once, by :func:`add_webhook`; nothing else shows it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection

from pyrometer.service.runtime import Service
from pyrometer.store import webhooks as store
from pyrometer.store.outbox import (
    DEAD,
    DELIVERED,
    PENDING,
    Notification,
    new_message_id,
    payload_text,
)

EVENT_TYPES = (
    "lead.hot",
    "lead.warmed",
    "lead.cooled",
    "lead.stage_changed",
    "lead.assigned",
    "sla.breached",
    "nurture.task",  # a nurture sequence's `task` step: a to-do for the lead's owner
    "nurture.webhook",  # a nurture sequence's `webhook` step
    "webhook.test",
)
ALL = "*"
MAX_URL = 2_000
MAX_DESCRIPTION = 500
SECRET_BYTES = 24
TEST_EVENT = "webhook.test"


class WebhookError(ValueError):
    """A webhook that cannot be stored: ``problems`` are (field, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems))


class NotRetryable(ValueError):
    """A delivery that cannot be sent again (still pending, or its webhook is deleted)."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(10)


def check_url(url: Any) -> list[tuple[str, str]]:
    """Problems with a webhook URL: http(s), a host, at most :data:`MAX_URL` characters."""
    if not isinstance(url, str) or not url:
        return [("url", "expected an http(s) URL")]
    if len(url) > MAX_URL:
        return [("url", f"at most {MAX_URL:,} characters (got {len(url):,})")]
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return [("url", "a URL cannot hold spaces or control characters")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        return [("url", f"not a URL ({exc})")]
    if parts.scheme.lower() not in ("http", "https"):
        return [("url", f"expected http or https, got {parts.scheme or 'no scheme'!r}")]
    if not parts.hostname:
        return [("url", "the URL has no host")]
    return []


def check_events(events: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """The event types asked for, in order without repeats, and the problems found."""
    if not isinstance(events, list) or not events:
        known = ", ".join((*EVENT_TYPES, ALL))
        return [], [("events", f"expected a non-empty list of event types ({known})")]
    problems: list[tuple[str, str]] = []
    chosen: list[str] = []
    for i, kind in enumerate(events):
        if kind != ALL and kind not in EVENT_TYPES:
            shown = repr(kind)[:80]
            problems.append(
                (f"events[{i}]", f"unknown event type {shown}; known: {', '.join(EVENT_TYPES)}, *")
            )
        elif kind not in chosen:
            chosen.append(kind)
    return chosen, problems


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """A webhook just added, with its secret (shown this once)."""

    webhook: store.WebhookRow
    secret: str


def add_webhook(
    service: Service, url: Any, events: Any, description: str | None = None
) -> NewWebhook:
    """Store a new webhook; :class:`WebhookError` naming each bad field, nothing stored."""
    problems = check_url(url)
    chosen, event_problems = check_events(events)
    problems += event_problems
    if description is not None and len(description) > MAX_DESCRIPTION:
        problems.append(("description", f"at most {MAX_DESCRIPTION} characters"))
    if problems:
        raise WebhookError(problems)
    row = store.WebhookRow(
        new_webhook_id(), url, chosen, new_secret(), description, service.clock(), None
    )
    service.write(lambda conn: store.insert_webhook(conn, row))
    return NewWebhook(row, row.secret)


def list_webhooks(service: Service) -> list[store.WebhookRow]:
    return service.read(store.live_webhooks)


def get_webhook(service: Service, webhook_id: str) -> store.WebhookRow | None:
    return service.read(lambda conn: store.webhook_row(conn, webhook_id))


def delete_webhook(service: Service, webhook_id: str) -> bool:
    """Soft-delete: its pending deliveries are given up; whether there was one."""
    return service.write(lambda conn: store.delete_webhook(conn, webhook_id, service.clock()))


def send_test(service: Service, webhook_id: str) -> int | None:
    """Queue a ``webhook.test`` message for this webhook alone; the delivery's id, or None
    if there is no such webhook."""

    def work(conn: Connection) -> int | None:
        hook = store.webhook_row(conn, webhook_id)
        if hook is None:
            return None
        now = service.clock()
        note = Notification(
            TEST_EVENT,
            None,
            {"webhook": {"id": hook.id}, "message": "a test message from Pyrometer"},
        )
        return store.insert_delivery(
            conn,
            {
                "webhook_id": hook.id,
                "message_id": new_message_id(),
                "event_type": TEST_EVENT,
                "lead_id": None,
                "payload": payload_text(note, now),
                "status": PENDING,
                "attempts": 0,
                "next_attempt_us": now,
                "created_us": now,
            },
        )

    return service.write(work)


def deliveries_of(
    service: Service, webhook_id: str, limit: int, before_id: int | None
) -> list[store.DeliveryRow] | None:
    """A page of a webhook's deliveries, newest first (a deleted webhook's too); None if
    there never was such a webhook."""

    def work(conn: Connection) -> list[store.DeliveryRow] | None:
        if store.webhook_row(conn, webhook_id, include_deleted=True) is None:
            return None
        return store.delivery_page(conn, webhook_id, limit, before_id)

    return service.read(work)


def retry_delivery(service: Service, delivery_id: int) -> store.DeliveryRow | None:
    """Queue a dead or delivered delivery again, same message id, attempts from 0; None if
    there is no such delivery, :class:`NotRetryable` if it is pending or its webhook is
    deleted."""

    def work(conn: Connection) -> store.DeliveryRow | None:
        row = store.delivery_row(conn, delivery_id)
        if row is None:
            return None
        if row.status not in (DEAD, DELIVERED):
            raise NotRetryable(f"delivery {delivery_id} is still {row.status}")
        if store.webhook_row(conn, row.webhook_id) is None:
            raise NotRetryable(f"the webhook {row.webhook_id} of delivery {delivery_id} is deleted")
        store.requeue(conn, delivery_id, service.clock())
        return store.delivery_row(conn, delivery_id)

    return service.write(work)
