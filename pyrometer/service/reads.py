"""Reading leads: one lead explained, pages of leads, all scored as of now.

Scores in the store are as of each lead's last activity; here they are decayed to the
read time, in Python for a lead and in SQL (``fit + e · 2^((anchor − now) / H)``) for
filtering and sorting a list, with the same formula so both agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.fit import fit_lines
from pyrometer.core.ledger import in_event_order, revalue
from pyrometer.core.model import ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import iso
from pyrometer.service.cursors import BadCursor, decode_cursor, encode_cursor
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import LeadRecord, as_of, current, replay
from pyrometer.store import repo
from pyrometer.store.tables import leads

EVENTS_SHOWN = 500


def lead_summary(record: LeadRecord, scored: ScoredLead) -> dict[str, Any]:
    summary = scored.to_dict()
    summary["event_count"] = summary.pop("events")
    return {
        **summary,
        "source": record.source,
        "owner": record.owner,
        "consent": record.consent,
        "created": iso(record.created_us),
    }


def get_lead(service: Service, lead_id: str) -> dict[str, Any] | None:
    """Everything about one lead: scores, ledger, transitions, attributes and events."""
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        record = repo.read_lead(conn, lead_id)
        if record is None:
            return None
        version, book = service.playbooks.active(conn)
        # The ledger is the event log replayed (what ingest scored, line by line); a lead
        # that rescoring after a publish has not reached yet is replayed under the new
        # version here, record and all.
        log = repo.lead_events(conn, lead_id)
        change = replay(book, version, record, log, now, "read")
        if record.playbook_version != version:
            record = change.record
        lines = list(change.lines)
        scored = current(book, record.state, now)
        at = as_of(record.state, now)
        valued = in_event_order(revalue(book, lines, at))
        explained = replace(
            scored, engagement_lines=tuple(valued), fit_lines=fit_lines(book, record.attributes)
        )
        shown = log[: -EVENTS_SHOWN - 1 : -1]  # newest first: the log is in event order
        return {
            **lead_summary(record, scored),
            "as_of": iso(at),
            "attributes": dict(record.attributes),
            "playbook_version": record.playbook_version,
            "next_decay_change": iso(record.next_decay_us),
            "ledger": explained.to_dict(ledger=True)["ledger"],
            "transitions": [t.to_dict() for t in repo.lead_transitions(conn, lead_id)],
            "events": [
                {
                    "event_id": e.event_id,
                    "event": e.name,
                    "timestamp": iso(e.ts_us),
                    "properties": dict(e.properties),
                }
                for e in shown
            ],
        }

    return service.read(work)


def score_sql(book: Playbook, now_us: int) -> sa.ColumnElement[float]:
    """A lead's score as of ``now_us`` in SQL: fit plus decayed engagement.

    Engagement that has faded below 2^-60 of itself counts as 0: PostgreSQL raises an
    error on floating-point underflow instead of rounding to zero.
    """
    now_step = book.decay.step_of(now_us)
    inverse = 1.0 / book.decay.half_life_steps
    exponent = (leads.c.anchor_step - now_step) * sa.literal(inverse, sa.Float)
    engagement = leads.c.engagement_at_anchor
    decayed = sa.case(
        (leads.c.anchor_step.is_(None), 0.0),
        (leads.c.anchor_step >= now_step, engagement),
        (sa.or_(exponent < -60, sa.func.abs(engagement) < 1e-200), 0.0),
        else_=engagement * sa.func.power(sa.literal(2.0, sa.Float), exponent),
    )
    return leads.c.fit + decayed


@dataclass(frozen=True)
class LeadQuery:
    temperature: str | None = None
    stage: str | None = None
    owner: str | None = None
    source: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    q: str | None = None
    sort: str = "-score"  # score, -score, last_activity, -last_activity
    limit: int = 50
    cursor: str | None = None


def _decode(service: Service, cursor: str) -> dict[str, Any]:
    data = decode_cursor(service, cursor)  # signed: only this server's cursors get here
    if not {"t", "v", "id", "s"} <= set(data):
        raise BadCursor("not a cursor of the lead list")
    return data


def list_leads(service: Service, query: LeadQuery) -> dict[str, Any]:
    """A page of leads; ``next_cursor`` continues it, all pages scored at the same time."""
    state = _decode(service, query.cursor) if query.cursor else None
    if state is not None and state["s"] != query.sort:
        raise BadCursor("the cursor belongs to another sort order")
    now = int(state["t"]) if state else service.clock()

    def work(conn: Connection) -> dict[str, Any]:
        _, book = service.playbooks.active(conn)
        score = score_sql(book, now)
        key = (
            score
            if query.sort.lstrip("-") == "score"
            else sa.func.coalesce(leads.c.last_activity_us, -1)
        )
        descending = query.sort.startswith("-")
        select = sa.select(leads, score.label("score_now"), key.label("sort_key"))
        for column, value in (
            (leads.c.temperature, query.temperature),
            (leads.c.stage, query.stage),
            (leads.c.owner, query.owner),
            (leads.c.source, query.source),
        ):
            if value is not None:
                select = select.where(column == value)
        if query.min_score is not None:
            select = select.where(score >= query.min_score)
        if query.max_score is not None:
            select = select.where(score <= query.max_score)
        if query.q:
            needle = (
                "%"
                + query.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            text = sa.func.lower(sa.cast(leads.c.attributes, sa.String))
            select = select.where(
                sa.or_(
                    sa.func.lower(leads.c.lead_id).like(needle, escape="\\"),
                    text.like(needle, escape="\\"),
                )
            )
        if state is not None:
            value, last_id = state["v"], state["id"]
            if descending:
                select = select.where(
                    sa.or_(key < value, sa.and_(key == value, leads.c.lead_id > last_id))
                )
            else:
                select = select.where(
                    sa.or_(key > value, sa.and_(key == value, leads.c.lead_id > last_id))
                )
        order = key.desc() if descending else key.asc()
        rows = conn.execute(
            select.order_by(order, leads.c.lead_id.asc()).limit(query.limit + 1)
        ).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = []
        for row in rows:
            record = repo.record_of(row)
            items.append(lead_summary(record, current(book, record.state, now)))
        following = None
        if more and rows:
            last = rows[-1]
            following = {"t": now, "v": last.sort_key, "id": last.lead_id, "s": query.sort}
        return {"as_of": iso(now), "items": items, "next_cursor": following}

    page = service.read(work)
    # Signed after the read: the first signature ever made writes the store's key.
    if page["next_cursor"] is not None:
        page["next_cursor"] = encode_cursor(service, page["next_cursor"])
    return page
