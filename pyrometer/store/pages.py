"""One lead's event log read a page at a time, newest first, with SQL ``LIMIT``.

A lead page must cost the same whatever the lead's history: these reads walk the
``(lead_id, ts_us)`` index from a position backwards and stop after a page, instead of
loading the whole log.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.model import Event, Transition
from pyrometer.store.engine import is_postgres, json_loads
from pyrometer.store.repo import EVENT_COLUMNS, event_of
from pyrometer.store.tables import events, leads, transitions


class Position(NamedTuple):
    """An event's place in a lead's log: its time, then its id (the core's event order)."""

    ts_us: int
    event_id: str


def events_before(
    conn: Connection, lead_id: str, limit: int, before: Position | None = None
) -> list[Event]:
    """Up to ``limit`` of the lead's events, newest first, strictly before ``before``
    (from the newest when ``None``).

    Written so that any plan walks the ``(lead_id, ts_us)`` index backwards and stops
    after ``limit`` rows: no other filter (PostgreSQL's generic plan of a prepared
    statement, made with the average lead's row count, chose to read all of a heavy
    lead's rows and sort them when the names were filtered here too), and the position
    as a bound on ``ts_us`` the index can use.
    """
    query = sa.select(*EVENT_COLUMNS).where(events.c.lead_id == lead_id)
    if before is not None:
        query = query.where(
            events.c.ts_us <= before.ts_us,
            sa.or_(events.c.ts_us < before.ts_us, events.c.event_id < before.event_id),
        )
    query = query.order_by(events.c.ts_us.desc(), events.c.event_id.desc()).limit(limit)
    return [event_of(row) for row in conn.execute(query)]


def events_between(
    conn: Connection, lead_id: str, start_us: int | None, end_us: int | None, names: Collection[str]
) -> list[Event]:
    """The lead's events of these names in ``[start_us, end_us)``, oldest first (a cap
    window, read when the stored state does not hold its ranks)."""
    query = sa.select(*EVENT_COLUMNS).where(
        events.c.lead_id == lead_id, events.c.name.in_(sorted(names))
    )
    if start_us is not None:
        query = query.where(events.c.ts_us >= start_us)
    if end_us is not None:
        query = query.where(events.c.ts_us < end_us)
    query = query.order_by(events.c.ts_us, events.c.event_id)
    return [event_of(row) for row in conn.execute(query)]


def event_name(conn: Connection, event_id: str) -> str | None:
    """The name of the event with this id, if stored."""
    query = sa.select(events.c.name).where(events.c.event_id == event_id)
    return conn.execute(query).scalar_one_or_none()


def lead_row(conn: Connection, lead_id: str) -> sa.Row[Any] | None:
    """The lead's row, its state without the cap windows (:func:`state_windows` reads
    those asked for). A long history keeps thousands of windows; turning them all into
    Python objects cost most of a page's time, holding the GIL that ingest in the same
    process needs, while the database drops them in C (SQLite releases the GIL meanwhile,
    PostgreSQL does it in its own process)."""
    if is_postgres(conn):
        state: Any = sa.literal_column(
            "(SELECT json_object_agg(s.key, s.value) FROM json_each(leads.state) AS s "
            "WHERE s.key <> 'windows')"
        )
    else:
        state = sa.func.json_remove(leads.c.state, "$.windows")
    columns = [c for c in leads.c if c.name != "state"]
    query = sa.select(*columns, sa.type_coerce(state, sa.JSON).label("state"))
    return conn.execute(query.where(leads.c.lead_id == lead_id)).first()


_WINDOWS_SQL = {
    "sqlite": "SELECT json_extract(w.value, '$[0]'), json_extract(w.value, '$[1]'), "
    "json_extract(w.value, '$[2]') FROM leads, json_each(leads.state, '$.windows') AS w "
    "WHERE leads.lead_id = :lead_id AND json_extract(w.value, '$[0]') IN :rules "
    "AND json_extract(w.value, '$[1]') IN :windows",
    "postgresql": "SELECT w ->> 0, (w ->> 1)::bigint, (w -> 2)::text "
    "FROM leads, json_array_elements(leads.state -> 'windows') AS w "
    "WHERE leads.lead_id = :lead_id AND w ->> 0 IN :rules AND (w ->> 1)::bigint IN :windows",
}


def state_windows(
    conn: Connection, lead_id: str, keys: Collection[tuple[str, int]]
) -> dict[tuple[str, int], list[list[Any]]]:
    """These cap windows of the lead's stored state, as stored (``[ts, id, name]`` lists);
    a window the state does not hold is not in the answer."""
    if not keys:
        return {}
    query = sa.text(_WINDOWS_SQL[conn.dialect.name]).bindparams(
        sa.bindparam("rules", expanding=True), sa.bindparam("windows", expanding=True)
    )
    params = {
        "lead_id": lead_id,
        "rules": sorted({rule for rule, _ in keys}),
        "windows": sorted({window for _, window in keys}),
    }
    wanted = set(keys)
    out = {}
    for rule, window, members in conn.execute(query, params):
        key = (str(rule), int(window))
        if key in wanted:
            out[key] = json_loads(members)
    return out


def transitions_before(
    conn: Connection, lead_id: str, limit: int, before: tuple[int, int] | None = None
) -> list[tuple[int, Transition]]:
    """Up to ``limit`` of the lead's transitions with their row ids, newest first,
    strictly before ``before`` (a time and a row id)."""
    query = sa.select(transitions).where(transitions.c.lead_id == lead_id)
    if before is not None:
        at_us, row_id = before
        query = query.where(
            transitions.c.at_us <= at_us,
            sa.or_(transitions.c.at_us < at_us, transitions.c.id < row_id),
        )
    query = query.order_by(transitions.c.at_us.desc(), transitions.c.id.desc()).limit(limit)
    return [
        (r.id, Transition(r.lead_id, r.at_us, r.kind, r.old, r.new, r.cause))
        for r in conn.execute(query)
    ]
