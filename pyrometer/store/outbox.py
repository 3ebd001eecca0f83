"""The transactional outbox: notifications written with the change that caused them.

:func:`enqueue` runs inside the caller's write transaction, so a notification exists if
and only if the transition (or assignment, or breach) that caused it was committed. The
delivery worker (:mod:`pyrometer.service.delivery`) sends the rows afterwards, with
retries; a receiver's trouble never reaches the transaction that wrote them.

One notification gets one ``message_id`` (the Standard Webhooks ``webhook-id``) shared by
every endpoint it goes to and kept across retries, so a receiver can drop duplicates.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.store.tables import deliveries, webhooks

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
AFTER_COMMIT = "pyrometer.after_commit"  # Connection.info key: callbacks run after commit


@dataclass(frozen=True, slots=True)
class Notification:
    """Something that happened, as a webhook announces it: ``type`` such as ``lead.hot``,
    the lead it is about, and the ``data`` object of the payload."""

    type: str
    lead_id: str | None
    data: Mapping[str, Any]


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def subscribers(conn: Connection) -> list[tuple[str, frozenset[str]]]:
    """The live webhooks and the event types each wants (``*``: every type)."""
    query = sa.select(webhooks.c.id, webhooks.c.events).where(webhooks.c.deleted_us.is_(None))
    return [(row.id, frozenset(row.events)) for row in conn.execute(query)]


def payload_text(note: Notification, now_us: int) -> str:
    """The JSON body sent, byte for byte what is signed."""
    body = {"type": note.type, "timestamp": iso(now_us), "data": dict(note.data)}
    return orjson.dumps(body).decode()


def enqueue(
    conn: Connection,
    notes: Sequence[Notification],
    now_us: int,
    hooks: Sequence[tuple[str, frozenset[str]]] | None = None,
) -> int:
    """Write one delivery per notification per webhook that wants its type; returns how
    many. ``hooks``: :func:`subscribers`, if the caller read them already."""
    if not notes:
        return 0
    if hooks is None:
        hooks = subscribers(conn)
    rows = []
    for note in notes:
        wanted = [hook_id for hook_id, types in hooks if note.type in types or "*" in types]
        if not wanted:
            continue
        message_id, text = new_message_id(), payload_text(note, now_us)
        for hook_id in wanted:
            rows.append(
                {
                    "webhook_id": hook_id,
                    "message_id": message_id,
                    "event_type": note.type,
                    "lead_id": note.lead_id,
                    "payload": text,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_us": now_us,
                    "created_us": now_us,
                }
            )
    if rows:
        conn.execute(deliveries.insert(), rows)
        wake = conn.info.get(AFTER_COMMIT)
        if wake is not None:
            wake.append("outbox")
    return len(rows)
