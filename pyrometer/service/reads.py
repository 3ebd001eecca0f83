"""Reading leads: one lead explained, pages of leads, all scored as of now.

Scores in the store are as of each lead's last activity; here they are decayed to the
read time, in Python for a lead and in SQL (``fit + e · 2^((anchor − now) / H)``) for
filtering and sorting a list, with the same formula so both agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.fit import fit_lines
from pyrometer.core.ledger import revalue
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import iso
from pyrometer.service import lead_pages, nurture
from pyrometer.service.cursors import BadCursor, decode_cursor, encode_cursor
from pyrometer.service.lead_filters import lead_filters
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import LeadRecord, as_of, current, replay
from pyrometer.store import assignments, pages, repo, touches
from pyrometer.store.pages import Position
from pyrometer.store.tables import leads

_Page = TypeVar("_Page", bound=dict[str, Any] | None)


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


def get_lead(
    service: Service,
    lead_id: str,
    ledger_limit: int = lead_pages.DEFAULT_LIMIT,
    events_limit: int = lead_pages.DEFAULT_LIMIT,
    transitions_limit: int = lead_pages.DEFAULT_LIMIT,
) -> dict[str, Any] | None:
    """One lead: scores, attributes, and the first page of its ledger and of its events
    (newest first; ``ledger_next`` and ``events_next`` continue them) and its latest
    transitions (in time order; ``transitions_before`` continues with older ones)."""
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        found = current_record(service, conn, lead_id, now)
        if found is None:
            return None
        record, book = found
        scored = current(book, record.state, now)
        at = as_of(record.state, now)
        # The ledger's first page and the events' are of the same newest events: one read.
        newest = pages.events_before(conn, lead_id, max(ledger_limit, events_limit) + 1)
        lines, ledger_next = lead_pages.ledger_page(
            conn, book, record.state, ledger_limit, newest=newest
        )
        shown, events_next = lead_pages.events_page(conn, lead_id, events_limit, newest=newest)
        changes, older = lead_pages.transitions_page(conn, lead_id, transitions_limit)
        ledger = [line.to_dict() for line in fit_lines(book, record.attributes)]
        ledger += [line.to_dict() for line in revalue(book, lines, at)]
        held = assignments.current(conn, [lead_id]).get(lead_id)
        return {
            **lead_summary(record, scored),
            "assigned_at": iso(held.at_us) if held is not None else None,
            "assignment_reason": held.reason if held is not None else None,
            "assignment": assignment_dict(held) if held is not None else None,
            "touches": [t.as_json() for t in touches.lead_touches(conn, lead_id, limit=50)],
            "as_of": iso(at),
            "attributes": dict(record.attributes),
            "playbook_version": record.playbook_version,
            "next_decay_change": iso(record.next_decay_us),
            "ledger": ledger,
            "ledger_next": _page_cursor(lead_id, at, ledger_next, "ledger"),
            "transitions": [t.to_dict() for t in changes],
            "transitions_before": _page_cursor(lead_id, at, older, "transitions"),
            "events": [event_dict(e) for e in shown],
            "events_next": _page_cursor(lead_id, at, events_next, "events"),
            "nurture": nurture.lead_nurture(conn, lead_id),
        }

    return _signed(
        service, service.read(work), ("ledger_next", "transitions_before", "events_next")
    )


def assignment_dict(row: assignments.AssignmentRow) -> dict[str, Any]:
    """The assignment in force as the API shows it: who, by which rule, and the
    speed-to-lead clock (``clock_started_at`` is the routing transition's time)."""
    return {
        "rep": row.rep_id,
        "rule": row.rule,
        "reason": row.reason,
        "cause": row.cause,
        "assigned_at": iso(row.at_us),
        "clock_started_at": iso(row.clock_us),
        "sla_due_at": iso(row.sla_due_us),
        "first_touch_at": iso(row.first_touch_us),
        "breached_at": iso(row.breached_us),
    }


def current_record(
    service: Service, conn: Connection, lead_id: str, now: int
) -> tuple[LeadRecord, Playbook] | None:
    """The lead's record under the playbook in force. A lead that rescoring after a
    publish has not reached yet is replayed under the new version here (the one read
    that costs the whole log, and only until the rescoring job gets to it)."""
    record = lead_pages.read_lead(conn, lead_id)
    if record is None:
        return None
    version, book = service.playbooks.active(conn)
    if record.playbook_version != version:
        log = repo.lead_events(conn, lead_id)
        record = replay(book, version, record, log, now, "read").record
    return record, book


def event_dict(event: Event) -> dict[str, Any]:
    """An event as the API shows it (lead pages and the GDPR export alike)."""
    return {
        "event_id": event.event_id,
        "event": event.name,
        "timestamp": iso(event.ts_us),
        "properties": dict(event.properties),
    }


def _page_cursor(
    lead_id: str, at_us: int, position: tuple[int, str | int] | None, kind: str
) -> dict[str, Any] | None:
    """What a cursor of a lead's ledger, events or transitions says (signed by
    :func:`_signed` after the read, as the lead list's are): as of ``at_us``, from
    ``position`` (a time and an event or row id) on, for this lead only."""
    if position is None:
        return None
    return {
        "t": at_us,
        "v": position[0],
        "id": str(position[1]),
        "s": kind,
        "l": _lead_tag(lead_id),
    }


def _lead_tag(lead_id: str) -> str:
    """Binds a page cursor to its lead (on another lead's route it would start at a
    foreign position and time) without spelling the id, often an e-mail, into a URL."""
    return hashlib.sha256(lead_id.encode()).hexdigest()[:16]


def _signed(service: Service, page: _Page, names: tuple[str, ...] = ("next_cursor",)) -> _Page:
    """``page`` with its cursors (``names``) signed, after the read transaction: the first
    signature ever made writes the store's key."""
    if page is not None:
        for name in names:
            if page[name] is not None:
                page[name] = encode_cursor(service, page[name])
    return page


def _page_position(
    service: Service, lead_id: str, cursor: str | None, kind: str
) -> tuple[int | None, tuple[int, str] | None]:
    if cursor is None:
        return None, None
    data = _decode(service, cursor)
    if data.get("l") != _lead_tag(lead_id):
        raise BadCursor("not a cursor of this lead")
    if (
        data["s"] != kind
        or not all(_is_time(data[n]) for n in "tv")
        or not isinstance(data["id"], str)
    ):
        raise BadCursor(f"not a cursor of a lead's {kind}")
    return int(data["t"]), (int(data["v"]), data["id"])


def _is_time(value: Any) -> bool:
    """An integer time the store can compare with (a BIGINT on PostgreSQL)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**62


def _event_position(
    service: Service, lead_id: str, cursor: str | None, kind: str
) -> tuple[int | None, Position | None]:
    at_us, found = _page_position(service, lead_id, cursor, kind)
    return at_us, Position(*found) if found is not None else None


def lead_ledger(
    service: Service, lead_id: str, cursor: str | None, limit: int
) -> dict[str, Any] | None:
    """A page of the lead's ledger (engagement lines, newest event first; the first page
    starts with the fit lines), valued as of the first page's time."""
    at_us, before = _event_position(service, lead_id, cursor, "ledger")
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        found = current_record(service, conn, lead_id, now)
        if found is None:
            return None
        record, book = found
        at = at_us if at_us is not None else as_of(record.state, now)
        lines, position = lead_pages.ledger_page(conn, book, record.state, limit, before)
        items = [] if before else [line.to_dict() for line in fit_lines(book, record.attributes)]
        items += [line.to_dict() for line in revalue(book, lines, at)]
        return {
            "lead_id": lead_id,
            "as_of": iso(at),
            "items": items,
            "next_cursor": _page_cursor(lead_id, at, position, "ledger"),
        }

    return _signed(service, service.read(work))


def lead_event_page(
    service: Service, lead_id: str, cursor: str | None, limit: int
) -> dict[str, Any] | None:
    """A page of the lead's events, newest first."""
    at_us, before = _event_position(service, lead_id, cursor, "events")
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        if not repo.existing_leads(conn, [lead_id]):
            return None
        shown, position = lead_pages.events_page(conn, lead_id, limit, before)
        at = at_us if at_us is not None else now
        return {
            "lead_id": lead_id,
            "items": [event_dict(e) for e in shown],
            "next_cursor": _page_cursor(lead_id, at, position, "events"),
        }

    return _signed(service, service.read(work))


def lead_transition_page(
    service: Service, lead_id: str, cursor: str | None, limit: int
) -> dict[str, Any] | None:
    """The lead's transitions before the cursor's (the latest without one), in time
    order; ``next_cursor`` continues with older ones."""
    at_us, found = _page_position(service, lead_id, cursor, "transitions")
    if found is not None and not (found[1].isascii() and found[1].isdigit() and len(found[1]) < 19):
        raise BadCursor("not a cursor of a lead's transitions")
    before = (found[0], int(found[1])) if found is not None else None
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any] | None:
        if not repo.existing_leads(conn, [lead_id]):
            return None
        changes, older = lead_pages.transitions_page(conn, lead_id, limit, before)
        return {
            "lead_id": lead_id,
            "items": [t.to_dict() for t in changes],
            "next_cursor": _page_cursor(
                lead_id, at_us if at_us is not None else now, older, "transitions"
            ),
        }

    return _signed(service, service.read(work))


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
    """Filters of the lead list; a filter given several values matches any of them."""

    temperature: tuple[str, ...] = ()
    stage: tuple[str, ...] = ()
    funnel: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    suppressed: bool | None = None
    open: bool | None = None  # not a customer, not disqualified, not suppressed
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
        select = select.where(*lead_filters(book, query, conn.dialect.name))
        if query.min_score is not None:
            select = select.where(score >= query.min_score)
        if query.max_score is not None:
            select = select.where(score <= query.max_score)
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

    return _signed(service, service.read(work))
