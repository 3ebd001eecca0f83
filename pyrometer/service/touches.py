"""Sales touches: a rep's call, e-mail, meeting or note, and the speed-to-lead clock it stops.

A touch comes from ``POST /v1/leads/{id}/touches`` (:func:`add_touch`) or from a tracked
event named ``sales_touch`` (:func:`record_tracked`, called by both ingest write paths in
their own transaction, so the touch exists if and only if the event was stored). Either
way the first touch at or after the lead's clock start stops the clock of the assignment
in force (``first_touch_us``); a touch before the clock started is history, not an
answer, and a touch never routes or assigns a lead.

Any touch stops the clock, whoever made it: the buyer's wait ends when anyone from sales
answers, not only the rep the lead was given to. The rep named need not be a routing rep.

A ``sales_touch`` event cannot be refused (ingest has already accepted it), so its
properties are taken leniently: ``kind`` outside call, email, meeting, note (or missing)
is stored as ``note``, the catch-all; ``rep`` and ``outcome`` are kept as text (cut to
200 and 2,000 characters). The event itself is stored as sent, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.timeutil import iso
from pyrometer.service.runtime import Service
from pyrometer.store import touches as store
from pyrometer.store.assignments import AssignmentRow
from pyrometer.store.touches import KINDS, MAX_OUTCOME, TouchRow

EVENT = "sales_touch"  # the tracked event that is a touch (its normalised name)
FALLBACK_KIND = "note"


class UnknownLead(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Touched:
    """A stored touch, and the assignment whose running clock it stopped (``None``: it
    stopped none; the lead was not waiting, or the touch came before the clock started)."""

    touch: TouchRow
    stopped: AssignmentRow | None

    def as_json(self) -> dict[str, Any]:
        clock = None
        if self.stopped is not None and self.stopped.clock_us is not None:
            waited = self.touch.at_us - self.stopped.clock_us
            due = self.stopped.sla_due_us
            clock = {
                "rep": self.stopped.rep_id,
                "started_at": iso(self.stopped.clock_us),
                "sla_due_at": iso(due),
                "seconds_to_first_touch": waited / 1e6,
                "within_sla": due is not None and self.touch.at_us <= due,
            }
        return {
            "touch": self.touch.as_json(),
            "stopped_clock": self.stopped is not None,
            "clock": clock,
        }


def _touch(
    conn: Connection,
    lead_id: str,
    kind: str,
    rep: str | None,
    at_us: int,
    outcome: str | None,
    event_id: str | None,
    now_us: int,
) -> Touched:
    """Store a touch of a lead the caller has locked, and stop its clock."""
    held = store.stop_clock(conn, lead_id, at_us)
    row = store.insert(
        conn,
        lead_id=lead_id,
        rep_id=rep,
        kind=kind,
        at_us=at_us,
        outcome=outcome,
        event_id=event_id,
        recorded_us=now_us,
    )
    return Touched(row, held if held is not None and held.waiting else None)


def add_touch(
    service: Service,
    lead_id: str,
    kind: str,
    rep: str,
    at_us: int | None = None,
    outcome: str | None = None,
) -> Touched:
    """Record a touch (``at_us`` default: now); :class:`UnknownLead` if there is no such
    lead. ``kind`` is one of :data:`KINDS` (the API validates it)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")

    def work(conn: Connection) -> Touched:
        if not store.lock_lead(conn, lead_id):
            raise UnknownLead(lead_id)
        now = service.clock()
        when = now if at_us is None else at_us
        return _touch(conn, lead_id, kind, rep, when, outcome, None, now)

    return service.write(work)


def record_tracked(
    conn: Connection, rows: Iterable[Mapping[str, Any]], new_ids: Collection[str], now_us: int
) -> int:
    """Ingest's hook: each newly stored ``sales_touch`` event (a row of ``new_ids``; a
    duplicate message is not new) becomes a touch, in the ingest transaction, which holds
    the leads' locks. Called after routing acted on the same write, so a lead that turned
    hot in this very batch has its clock to stop. Returns how many touches were stored."""
    stored = 0
    for row in sorted(
        (r for r in rows if r["name"] == EVENT and r["event_id"] in new_ids),
        key=lambda r: (r["ts_us"], r["event_id"]),
    ):
        props = row.get("properties") or {}
        kind = props.get("kind")
        kind = kind.strip().lower() if isinstance(kind, str) else None
        _touch(
            conn,
            row["lead_id"],
            kind if kind in KINDS else FALLBACK_KIND,
            _text(props.get("rep"), 200),
            row["ts_us"],
            _text(props.get("outcome"), MAX_OUTCOME),
            row["event_id"],
            now_us,
        )
        stored += 1
    return stored


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None
