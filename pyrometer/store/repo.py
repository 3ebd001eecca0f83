"""Reading and writing the store's rows; each function does one statement's worth of work.

Callers own the transaction. Functions that change a lead expect the caller to hold the
lead's lock (:func:`lock_leads`): ``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
write transaction itself (``BEGIN IMMEDIATE``) already excludes every other writer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.incremental import LeadState
from pyrometer.core.model import Event, Transition
from pyrometer.store.engine import is_postgres, json_loads
from pyrometer.store.pg_bulk import bulk_insert, bulk_update
from pyrometer.store.records import Change, LeadRecord
from pyrometer.store.tables import events, identities, leads, transitions

_CHUNK = 500  # rows per IN (...) list: well under every driver's parameter limit


# The hot statements are built once: building one costs more than running it.
_LEAD_COLUMNS = (  # the order of _lead_params
    "attributes",
    "source",
    "owner",
    "consent",
    "created_us",
    "updated_us",
    "playbook_version",
    "state",
    "fit",
    "anchor_step",
    "engagement_at_anchor",
    "temperature",
    "stage",
    "last_activity_us",
    "event_count",
    "decay_checked_us",
    "next_decay_us",
)
assert set(_LEAD_COLUMNS) == {c.name for c in leads.columns} - {"lead_id"}
_JSON_COLUMNS = {c.name for c in leads.columns if isinstance(c.type, sa.JSON)}


# Lead columns with an index of their own. SQLite updates an index whenever its column is
# SET, even to the value it had, which cost about half of a lead's UPDATE: save_rows
# leaves out the indexed columns a row does not change.
_INDEXED = tuple(name for name in _LEAD_COLUMNS if any(name in ix.columns for ix in leads.indexes))
_ROW_AT = {name: 1 + n for n, name in enumerate(_LEAD_COLUMNS)}  # position in a LeadRow
_UPDATE_SQL: dict[tuple[str, ...], tuple[str, list[int]]] = {}


def lead_row_positions() -> Mapping[str, int]:
    """Where each column is in a :data:`LeadRow` (``lead_id`` is at 0)."""
    return _ROW_AT


def _update_lead_sql(changed: tuple[str, ...]) -> tuple[str, list[int]]:
    """SQLite: the lead UPDATE setting every column but the indexed ones not in
    ``changed``, as driver SQL run with executemany (without SQLAlchemy's per-row work,
    which cost more than the statement itself), and the LeadRow positions of its
    parameters. JSON columns get JSON text, as SQLAlchemy's JSON type would write it."""
    found = _UPDATE_SQL.get(changed)
    if found is None:
        names = [n for n in _LEAD_COLUMNS if n not in _INDEXED or n in changed]
        sql = f"UPDATE leads SET {', '.join(f'{n} = ?' for n in names)} WHERE lead_id = ?"
        found = _UPDATE_SQL[changed] = (sql, [_ROW_AT[n] for n in names] + [0])
    return found


# PostgreSQL: one statement per request for each kind of row (see pyrometer.store.pg_bulk).
_PG_INSERT_LEADS = bulk_insert(
    leads, ("lead_id", *_LEAD_COLUMNS), " ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id"
)
_PG_UPDATE_LEADS = bulk_update(leads, "lead_id", _LEAD_COLUMNS)


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of ``size``: one ``IN (...)`` list or multi-row statement each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def record_of(row: Any, state: LeadState | None = None) -> LeadRecord:
    """A lead row as a record; ``state``: the row's state, already read by the caller."""
    m = row._mapping
    return LeadRecord(
        lead_id=m["lead_id"],
        attributes=m["attributes"] or {},
        source=m["source"],
        owner=m["owner"],
        consent=m["consent"],
        created_us=m["created_us"],
        updated_us=m["updated_us"],
        playbook_version=m["playbook_version"],
        state=state if state is not None else LeadState.from_dict(m["state"]),
        temperature=m["temperature"],
        stage=m["stage"],
        decay_checked_us=m["decay_checked_us"],
        next_decay_us=m["next_decay_us"],
    )


def _lead_params(record: LeadRecord) -> tuple[Any, ...]:
    """A lead's values in :data:`_LEAD_COLUMNS` order, JSON columns as JSON text.

    The state is the store's own document and goes through orjson; the attributes are
    the standard library's text, as real UTF-8 (``ensure_ascii=False``).
    """
    state = record.state
    return (
        json.dumps(dict(record.attributes), ensure_ascii=False) if record.attributes else "{}",
        record.source,
        record.owner,
        record.consent,
        record.created_us,
        record.updated_us,
        record.playbook_version,
        orjson.dumps(state.to_dict()).decode(),
        state.fit,
        state.anchor_step,
        state.engagement_at_anchor,
        record.temperature,
        record.stage,
        state.last_activity_us,
        state.event_count,
        record.decay_checked_us,
        record.next_decay_us,
    )


def _insert_leads_sql(count: int, returning: bool) -> str:
    """SQLite: one multi-row INSERT of leads."""
    one = "(" + ", ".join(["?"] * (1 + len(_LEAD_COLUMNS))) + ")"
    tail = " ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id" if returning else ""
    return (
        f"INSERT INTO leads (lead_id, {', '.join(_LEAD_COLUMNS)}) "
        f"VALUES {', '.join([one] * count)}{tail}"
    )


LeadRow = tuple[Any, ...]  # lead_id, then the values of _LEAD_COLUMNS


def lead_row(record: LeadRecord) -> LeadRow:
    """A lead as the row :func:`create_lead_rows` and :func:`save_rows` store."""
    return (record.lead_id, *_lead_params(record))


def create_leads(conn: Connection, blanks: Sequence[LeadRecord]) -> set[str]:
    """Create the leads that do not exist yet, in id order (so concurrent callers agree);
    returns the ids this call created (and so holds locked until it commits)."""
    return create_lead_rows(conn, [lead_row(r) for r in blanks])


def create_lead_rows(conn: Connection, rows: Sequence[LeadRow]) -> set[str]:
    """:func:`create_leads` for rows already made by :func:`lead_row`."""
    ordered = sorted(rows, key=lambda row: row[0])
    if is_postgres(conn):
        return {row[0] for row in _PG_INSERT_LEADS.run(conn, ordered)}
    created: set[str] = set()
    for chunk in chunks(ordered, 200):
        sql = _insert_leads_sql(len(chunk), returning=True)
        params = tuple(v for row in chunk for v in row)
        created.update(row[0] for row in conn.exec_driver_sql(sql, params))
    return created


def existing_leads(conn: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Which of these leads exist (no lock taken)."""
    ids = sorted(set(lead_ids))
    if is_postgres(conn):
        sql = "SELECT lead_id FROM leads WHERE lead_id = ANY(%b)"
        return {row[0] for row in conn.exec_driver_sql(sql, (ids,))}
    found: set[str] = set()
    for chunk in chunks(ids):
        sql = f"SELECT lead_id FROM leads WHERE lead_id IN ({', '.join(['?'] * len(chunk))})"
        found.update(row[0] for row in conn.exec_driver_sql(sql, tuple(chunk)))
    return found


_RECORD_COLUMNS = (
    "lead_id",
    "attributes",
    "source",
    "owner",
    "consent",
    "created_us",
    "updated_us",
    "playbook_version",
    "state",
    "temperature",
    "stage",
    "decay_checked_us",
    "next_decay_us",
    "last_activity_us",  # not part of the record (the state has it): for save_rows
)


def _read_sql(dialect: str, count: int, lock: bool) -> str:
    """Driver SQL for the hot reads of ingest (SQLAlchemy's row processing cost more).

    JSON columns come back as their text on both stores (PostgreSQL ``json`` keeps the
    text it was given), so two reads of a row compare equal exactly when it is unchanged.
    """
    if dialect == "postgresql":
        columns = [f"{c}::text" if c in _JSON_COLUMNS else c for c in _RECORD_COLUMNS]
        where = "lead_id = ANY(%b)"  # one text for any number of ids: prepared once
    else:
        columns = list(_RECORD_COLUMNS)
        where = f"lead_id IN ({', '.join(['?'] * count)})"
    tail = " FOR UPDATE" if lock and dialect == "postgresql" else ""
    return f"SELECT {', '.join(columns)} FROM leads WHERE {where} ORDER BY lead_id{tail}"


RawLead = tuple[Any, ...]
_RAW_AT = {name: n for n, name in enumerate(_RECORD_COLUMNS)}  # position in a RawLead
assert set(_INDEXED) <= set(_RAW_AT)


def read_leads_raw(conn: Connection, lead_ids: Iterable[str], lock: bool) -> dict[str, RawLead]:
    """Leads' rows as the driver gives them, in id order; ``lock``: ``SELECT ... FOR
    UPDATE`` on PostgreSQL (a fixed order cannot deadlock). :func:`record_of_raw` reads one.
    """
    ids = sorted(set(lead_ids))
    out: dict[str, RawLead] = {}
    if not ids:
        return out
    dialect = conn.dialect.name
    if dialect == "postgresql":
        batches: Iterable[tuple[str, Any]] = [(_read_sql(dialect, 0, lock), (ids,))]
    else:
        batches = ((_read_sql(dialect, len(c), lock), tuple(c)) for c in chunks(ids))
    for sql, params in batches:
        for row in conn.exec_driver_sql(sql, params):
            out[row[0]] = tuple(row)
    return out


def json_text(value: Any) -> str:
    """JSON text as the standard library writes it (``NaN`` stays ``NaN``, which the store
    then refuses), with orjson's speed whenever the two agree in meaning."""
    try:
        text = orjson.dumps(value)
    except TypeError:  # integers past 64 bits, keys that are not text...
        return json.dumps(value, ensure_ascii=False)
    if b"null" in text and _has_nan(value):  # orjson writes NaN and infinities as null
        return json.dumps(value, ensure_ascii=False)
    return text.decode()


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nan(v) for v in value)
    return False


def _json(value: Any) -> Any:
    """SQLite hands JSON columns back as text, psycopg already decoded."""
    return json_loads(value) if isinstance(value, str) else value


def record_of_raw(row: RawLead) -> LeadRecord:
    (lead_id, attributes, source, owner, consent, created, updated, version, state) = row[:9]
    temperature, stage, checked, next_decay = row[9:13]
    return LeadRecord(
        lead_id=lead_id,
        attributes=_json(attributes) or {},
        source=source,
        owner=owner,
        consent=None if consent is None else bool(consent),
        created_us=created,
        updated_us=updated,
        playbook_version=version,
        state=LeadState.from_dict(_json(state)),
        temperature=temperature,
        stage=stage,
        decay_checked_us=checked,
        next_decay_us=next_decay,
    )


def lock_leads(conn: Connection, lead_ids: Iterable[str]) -> dict[str, LeadRecord]:
    """Lock and read leads, in id order (a fixed order cannot deadlock)."""
    return {lead: record_of_raw(row) for lead, row in read_leads_raw(conn, lead_ids, True).items()}


def read_lead(conn: Connection, lead_id: str) -> LeadRecord | None:
    row = conn.execute(sa.select(leads).where(leads.c.lead_id == lead_id)).first()
    return record_of(row) if row is not None else None


def attribute_keys(conn: Connection, lead_ids: Iterable[str]) -> dict[str, set[str]]:
    """The names of the attributes each of these leads has (leads that do not exist are
    left out; no lock taken)."""
    ids = sorted(set(lead_ids))
    out: dict[str, set[str]] = {}
    for chunk in chunks(ids):
        query = sa.select(leads.c.lead_id, leads.c.attributes).where(leads.c.lead_id.in_(chunk))
        for lead_id, attributes in conn.execute(query):
            out[lead_id] = set(_json(attributes) or {})
    return out


def resolve_subjects(conn: Connection, subjects: Iterable[str]) -> dict[str, str]:
    """Anonymous ids that an identify call has linked to a lead, and that lead."""
    ids = sorted(set(subjects))
    out: dict[str, str] = {}
    for chunk in chunks(ids):
        query = sa.select(identities.c.anonymous_id, identities.c.lead_id).where(
            identities.c.anonymous_id.in_(chunk)
        )
        out.update({a: lead for a, lead in conn.execute(query)})
    return out


_EVENT_COLUMNS = ("event_id", "lead_id", "subject", "name", "ts_us", "properties", "received_us")


def _insert_events_sql(count: int) -> str:
    """SQLite: one multi-row INSERT as driver SQL (half the cost of SQLAlchemy's per-row
    work)."""
    one = "(" + ", ".join(["?"] * len(_EVENT_COLUMNS)) + ")"
    return (
        f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES {', '.join([one] * count)} "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


_PG_INSERT_EVENTS = bulk_insert(
    events, _EVENT_COLUMNS, " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Append events; returns the ids that were new (a known id is silently a no-op)."""
    params = [
        (
            row["event_id"],
            row["lead_id"],
            row["subject"],
            row["name"],
            row["ts_us"],
            json_text(row["properties"]),
            row["received_us"],
        )
        for row in rows
    ]
    if is_postgres(conn):
        return {r[0] for r in _PG_INSERT_EVENTS.run(conn, params)}
    new: set[str] = set()
    for chunk in chunks(params):
        sql = _insert_events_sql(len(chunk))
        flat = tuple(value for row in chunk for value in row)
        new.update(r[0] for r in conn.exec_driver_sql(sql, flat))
    return new


# The events columns :func:`event_of` reads, in the order an Event takes them.
EVENT_COLUMNS = (
    events.c.lead_id,
    events.c.name,
    events.c.ts_us,
    events.c.event_id,
    events.c.properties,
)


def event_of(row: Any) -> Event:
    """A row of :data:`EVENT_COLUMNS` as an Event."""
    return Event(row.lead_id, row.name, row.ts_us, row.event_id, row.properties or {})


def lead_events(conn: Connection, lead_id: str) -> list[Event]:
    query = (
        sa.select(*EVENT_COLUMNS)
        .where(events.c.lead_id == lead_id)
        .order_by(events.c.ts_us, events.c.event_id)
    )
    return [event_of(row) for row in conn.execute(query)]


def save_changes(
    conn: Connection,
    changes: Sequence[Change],
    recorded_us: int,
    new: Set[str] = frozenset(),
    written: Set[str] = frozenset(),
) -> None:
    """Store lead records and their transitions, a few statements in all.

    Records of leads in ``new`` are inserted (the caller made sure they do not exist yet),
    those in ``written`` are stored already (only their transitions are appended), the
    others updated. The ledger is not stored: a read derives it from the event log.
    """
    rows = [lead_row(c.record) for c in changes if c.record.lead_id not in written]
    save_rows(
        conn,
        [row for row in rows if row[0] not in new],
        [row for row in rows if row[0] in new],
        [transition_row(t) for c in changes for t in c.transitions],
        recorded_us,
    )


TransitionRow = tuple[str, int, str, str, str, str]  # lead_id, at_us, kind, old, new, cause


def transition_row(t: Transition) -> TransitionRow:
    return (t.lead_id, t.at_us, t.kind, t.old, t.new, t.cause[:250])


def save_rows(
    conn: Connection,
    updates: Sequence[LeadRow],
    inserts: Sequence[LeadRow],
    transition_rows: Sequence[TransitionRow],
    recorded_us: int,
    stored: Mapping[str, RawLead] | None = None,
) -> None:
    """Update and insert lead rows (:func:`lead_row`) and append transitions.

    ``stored``: the updated leads' rows as this transaction read them
    (:func:`read_leads_raw`), if known; SQLite then leaves the indexes of the columns a
    row does not change alone.
    """
    timed = [(*row, recorded_us) for row in transition_rows]
    if is_postgres(conn):
        # An UPDATE there writes a new row version into every index anyway.
        _PG_UPDATE_LEADS.run(conn, updates)
        _PG_INSERT_LEADS.run(conn, inserts)
        _PG_INSERT_TRANSITIONS.run(conn, timed)
        return
    groups: dict[tuple[str, ...], list[LeadRow]] = {}
    for row in updates:
        old = stored.get(row[0]) if stored is not None else None
        if old is None:
            changed = _INDEXED
        else:
            changed = tuple(n for n in _INDEXED if row[_ROW_AT[n]] != old[_RAW_AT[n]])
        groups.setdefault(changed, []).append(row)
    for changed, rows in groups.items():
        sql, positions = _update_lead_sql(changed)
        conn.exec_driver_sql(sql, [tuple(row[i] for i in positions) for row in rows])
    for chunk in chunks(inserts, 200):
        sql = _insert_leads_sql(len(chunk), returning=False)
        conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row))
    if timed:
        conn.exec_driver_sql(
            f"INSERT INTO transitions ({', '.join(_TRANSITION_COLUMNS)}) "
            f"VALUES ({', '.join(['?'] * len(_TRANSITION_COLUMNS))})",
            timed,
        )


_TRANSITION_COLUMNS = ("lead_id", "at_us", "kind", '"old"', '"new"', "cause", "recorded_us")
_PG_INSERT_TRANSITIONS = bulk_insert(transitions, [name.strip('"') for name in _TRANSITION_COLUMNS])


def append_transitions(conn: Connection, items: Sequence[Transition], recorded_us: int) -> None:
    save_rows(conn, (), (), [transition_row(t) for t in items], recorded_us)


def lead_transitions(conn: Connection, lead_id: str) -> list[Transition]:
    query = (
        sa.select(transitions)
        .where(transitions.c.lead_id == lead_id)
        .order_by(transitions.c.at_us, transitions.c.id)
    )
    return [
        Transition(r.lead_id, r.at_us, r.kind, r.old, r.new, r.cause) for r in conn.execute(query)
    ]
