"""The store's side of webhooks and their deliveries, read and written in a caller's
transaction.

The service validates a webhook before it writes one (:mod:`pyrometer.service.webhooks`);
the delivery worker (:mod:`pyrometer.service.delivery`) claims due deliveries with
:func:`claim_due` and records each attempt with :func:`record_attempt`. Claiming moves a
row's ``next_attempt_us`` past a lease instead of marking it taken, so the rows of a
worker killed mid-send come due again by themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.outbox import AFTER_COMMIT, DEAD, DELIVERED, PENDING
from pyrometer.store.tables import deliveries, webhooks

DELETED_ERROR = "webhook deleted"


@dataclass(frozen=True, slots=True)
class WebhookRow:
    """One stored webhook; ``secret`` is only ever shown when it is created."""

    id: str
    url: str
    events: list[str]
    secret: str
    description: str | None
    created_us: int
    deleted_us: int | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery of one notification to one webhook, as the API shows it."""

    id: int
    webhook_id: str
    message_id: str
    event_type: str
    lead_id: str | None
    status: str
    attempts: int
    next_attempt_us: int
    last_status: int | None
    last_error: str | None
    created_us: int
    delivered_us: int | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker has claimed: what it needs to send it, and nothing else."""

    id: int
    url: str
    secret: str
    message_id: str
    payload: str
    attempts: int


def _webhook(row: Any) -> WebhookRow:
    return WebhookRow(
        row.id,
        row.url,
        list(row.events),
        row.secret,
        row.description,
        int(row.created_us),
        None if row.deleted_us is None else int(row.deleted_us),
    )


def insert_webhook(conn: Connection, row: WebhookRow) -> None:
    values = {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "secret": row.secret,
        "description": row.description,
        "created_us": row.created_us,
    }
    conn.execute(webhooks.insert().values(**values))


def live_webhooks(conn: Connection) -> list[WebhookRow]:
    """Every webhook not deleted, oldest first."""
    query = (
        sa.select(webhooks)
        .where(webhooks.c.deleted_us.is_(None))
        .order_by(webhooks.c.created_us, webhooks.c.id)
    )
    return [_webhook(row) for row in conn.execute(query)]


def webhook_row(
    conn: Connection, webhook_id: str, *, include_deleted: bool = False
) -> WebhookRow | None:
    query = sa.select(webhooks).where(webhooks.c.id == webhook_id)
    if not include_deleted:
        query = query.where(webhooks.c.deleted_us.is_(None))
    row = conn.execute(query).first()
    return None if row is None else _webhook(row)


def delete_webhook(conn: Connection, webhook_id: str, now_us: int) -> bool:
    """Soft-delete a live webhook and give up its pending deliveries (dead, with
    :data:`DELETED_ERROR`); whether there was one. Deliveries a worker is sending right
    now may still arrive."""
    gone = conn.execute(
        webhooks.update()
        .where(webhooks.c.id == webhook_id, webhooks.c.deleted_us.is_(None))
        .values(deleted_us=now_us)
    ).rowcount
    if not gone:
        return False
    conn.execute(
        deliveries.update()
        .where(deliveries.c.webhook_id == webhook_id, deliveries.c.status == PENDING)
        .values(status=DEAD, last_error=DELETED_ERROR)
    )
    return True


def insert_delivery(conn: Connection, values: dict[str, Any]) -> int:
    """One pending delivery (a test message); its id. Wakes the worker after commit."""
    result = conn.execute(deliveries.insert().values(**values))
    _wake(conn)
    return int(result.inserted_primary_key[0])


def _wake(conn: Connection) -> None:
    tags = conn.info.get(AFTER_COMMIT)
    if tags is not None:
        tags.append("outbox")


_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.webhook_id,
    deliveries.c.message_id,
    deliveries.c.event_type,
    deliveries.c.lead_id,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_us,
    deliveries.c.last_status,
    deliveries.c.last_error,
    deliveries.c.created_us,
    deliveries.c.delivered_us,
)


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(
        int(row.id),
        row.webhook_id,
        row.message_id,
        row.event_type,
        row.lead_id,
        row.status,
        int(row.attempts),
        int(row.next_attempt_us),
        row.last_status,
        row.last_error,
        int(row.created_us),
        None if row.delivered_us is None else int(row.delivered_us),
    )


def delivery_page(
    conn: Connection, webhook_id: str, limit: int, before_id: int | None = None
) -> list[DeliveryRow]:
    """A webhook's deliveries, newest first, those older than ``before_id`` if given."""
    query = sa.select(*_DELIVERY_COLUMNS).where(deliveries.c.webhook_id == webhook_id)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    query = query.order_by(deliveries.c.id.desc()).limit(limit)
    return [_delivery(row) for row in conn.execute(query)]


def delivery_row(conn: Connection, delivery_id: int) -> DeliveryRow | None:
    row = conn.execute(sa.select(*_DELIVERY_COLUMNS).where(deliveries.c.id == delivery_id)).first()
    return None if row is None else _delivery(row)


def requeue(conn: Connection, delivery_id: int, now_us: int) -> None:
    """Send a delivery again from its first attempt, with the same message id."""
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id)
        .values(status=PENDING, attempts=0, next_attempt_us=now_us, delivered_us=None)
    )
    _wake(conn)


def _due(now_us: int) -> Any:
    return sa.and_(deliveries.c.status == PENDING, deliveries.c.next_attempt_us <= now_us)


def any_due(conn: Connection, now_us: int) -> bool:
    """Whether a delivery is due: a read, so an idle worker's poll takes no write lock."""
    query = sa.select(deliveries.c.id).where(_due(now_us)).limit(1)
    return conn.execute(query).first() is not None


def claim_due(conn: Connection, now_us: int, lease_us: int, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of live webhooks, oldest due first, for
    ``lease_us``: they are not due again until then, so another worker skips them and a
    killed worker's rows come back by themselves.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers claim side by side, each
    skipping the rows another is claiming; on SQLite the write transaction excludes
    every other writer anyway.
    """
    query = (
        sa.select(
            deliveries.c.id,
            webhooks.c.url,
            webhooks.c.secret,
            deliveries.c.message_id,
            deliveries.c.payload,
            deliveries.c.attempts,
        )
        .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
        .where(_due(now_us), webhooks.c.deleted_us.is_(None))
        .order_by(deliveries.c.next_attempt_us, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=deliveries)
    )
    claimed = [
        Claimed(int(r.id), r.url, r.secret, r.message_id, r.payload, int(r.attempts))
        for r in conn.execute(query)
    ]
    if claimed:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([c.id for c in claimed]))
            .values(next_attempt_us=now_us + lease_us)
        )
    return claimed


def record_attempts(conn: Connection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Store what each attempt came to. Each outcome: ``id``, ``attempts``, ``status``
    (delivered, pending or dead), ``next_attempt_us``, ``last_status``, ``last_error``,
    ``delivered_us``. A failure does not revive a delivery that is no longer pending
    (its webhook was deleted meanwhile); a success is recorded whatever happened, since
    the receiver has it."""
    for outcome in outcomes:
        values = {k: v for k, v in outcome.items() if k != "id"}
        query = deliveries.update().where(deliveries.c.id == outcome["id"])
        if outcome["status"] != DELIVERED:
            query = query.where(deliveries.c.status == PENDING)
        conn.execute(query.values(**values))
