"""The model registry and the training inputs, in SQL (issue #14).

``models`` keeps every trained version with its figures and its safe bytes (LightGBM text
and JSON, never pickle); at most one is active. ``lead_predictions`` caches each lead's
probability under the active model, keyed by the lead's ``updated_us``. The training
inputs (each lead's attributes, its first moves to customer, disqualified and MQL, and its
events) are read here as plain rows for :mod:`pyrometer.predictive.store_training`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.store.pg_bulk import bulk_insert
from pyrometer.store.repo import chunks
from pyrometer.store.tables import events, lead_predictions, leads, models, transitions


@dataclass(frozen=True)
class ModelRow:
    version: int
    created_us: int
    job_id: int | None
    active: bool
    activated_us: int | None
    outcomes: int
    metrics: dict[str, Any]


_SUMMARY = [c for c in models.c if c.name != "artifact"]


def _row(row: Any) -> ModelRow:
    return ModelRow(
        version=row.version,
        created_us=row.created_us,
        job_id=row.job_id,
        active=bool(row.active),
        activated_us=row.activated_us,
        outcomes=row.outcomes,
        metrics=dict(row.metrics),
    )


def add_model(
    conn: Connection,
    created_us: int,
    job_id: int | None,
    outcomes: int,
    metrics: dict[str, Any],
    artifact: bytes,
) -> int:
    """Store a trained model as the next version (inactive); its number."""
    latest = conn.execute(sa.select(sa.func.max(models.c.version))).scalar_one()
    version = int(latest or 0) + 1
    conn.execute(
        models.insert().values(
            version=version,
            created_us=created_us,
            job_id=job_id,
            active=False,
            activated_us=None,
            outcomes=outcomes,
            metrics=metrics,
            artifact=artifact,
        )
    )
    return version


def list_models(conn: Connection) -> list[ModelRow]:
    rows = conn.execute(sa.select(*_SUMMARY).order_by(models.c.version.desc()))
    return [_row(r) for r in rows]


def get_model(conn: Connection, version: int) -> ModelRow | None:
    row = conn.execute(sa.select(*_SUMMARY).where(models.c.version == version)).first()
    return None if row is None else _row(row)


def artifact(conn: Connection, version: int) -> bytes | None:
    found = conn.execute(sa.select(models.c.artifact).where(models.c.version == version)).first()
    return None if found is None else bytes(found[0])


def active_version(conn: Connection) -> int | None:
    found = conn.execute(sa.select(models.c.version).where(models.c.active.is_(True))).first()
    return None if found is None else int(found[0])


def activate(conn: Connection, version: int, now_us: int) -> bool:
    """Make ``version`` the only active model; ``False`` if there is no such version."""
    if get_model(conn, version) is None:
        return False
    conn.execute(
        models.update()
        .where(models.c.active.is_(True), models.c.version != version)
        .values(active=False)
    )
    conn.execute(
        models.update()
        .where(models.c.version == version, models.c.active.is_(False))
        .values(active=True, activated_us=now_us)
    )
    return True


def cached_predictions(
    conn: Connection, lead_ids: Iterable[str], version: int
) -> dict[str, tuple[int, int, float, list[dict[str, Any]] | None]]:
    """``lead_id → (lead_updated_us, computed_us, p_convert, factors)`` under ``version``;
    ``factors`` is ``None`` where only the probability was computed (by a write)."""
    ids = list(lead_ids)
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            lead_predictions.c.lead_id,
            lead_predictions.c.lead_updated_us,
            lead_predictions.c.computed_us,
            lead_predictions.c.p_convert,
            lead_predictions.c.factors,
        ).where(lead_predictions.c.lead_id.in_(ids), lead_predictions.c.model_version == version)
    )
    return {
        r.lead_id: (
            r.lead_updated_us,
            r.computed_us,
            r.p_convert,
            None if r.factors is None else list(r.factors),
        )
        for r in rows
    }


_PREDICTION_COLUMNS = (
    "lead_id",
    "model_version",
    "lead_updated_us",
    "p_convert",
    "computed_us",
    "factors",
)
_PREDICTION_UPSERT = " ON CONFLICT (lead_id) DO UPDATE SET " + ", ".join(
    f"{name} = excluded.{name}" for name in _PREDICTION_COLUMNS[1:]
)
_PG_SAVE_PREDICTIONS = bulk_insert(lead_predictions, _PREDICTION_COLUMNS, _PREDICTION_UPSERT)
_SQLITE_SAVE_PREDICTIONS = (
    f"INSERT INTO lead_predictions ({', '.join(_PREDICTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_PREDICTION_COLUMNS))}){_PREDICTION_UPSERT}"
)


def _json(factors: list[dict[str, Any]] | None) -> str:
    return "null" if factors is None else json.dumps(factors)


def save_predictions(
    conn: Connection,
    version: int,
    computed_us: int,
    rows: list[tuple[str, int, float, list[dict[str, Any]] | None]],
) -> None:
    """Replace the cached ``(lead_id, lead_updated_us, p_convert, factors)`` of these leads.
    ``factors`` ``None`` (stored as JSON null): not computed yet, a read computes them.

    An upsert: two reads of one lead may compute its probability at the same time. Driver
    SQL (one array per column on PostgreSQL): a write with probability bands saves the
    probabilities of every lead it changed, and SQLAlchemy's per-row work cost more than
    the statement."""
    if not rows:
        return
    # Sorted by lead: concurrent upserts of overlapping leads take their locks in one order.
    values = [
        (lead_id, version, updated, float(p), computed_us, _json(factors))
        for lead_id, updated, p, factors in sorted(rows, key=lambda r: r[0])
    ]
    if conn.dialect.name == "postgresql":
        _PG_SAVE_PREDICTIONS.run(conn, values)
    else:
        conn.exec_driver_sql(_SQLITE_SAVE_PREDICTIONS, values)


@dataclass(frozen=True)
class TrainingRows:
    leads: list[tuple[str, dict[str, Any], int]]  # lead_id, attributes, created_us
    first_stage: dict[tuple[str, str], int]  # (lead_id, stage) → first time it got there
    events: list[tuple[str, str, int]]  # lead_id, name, ts_us


def training_rows(conn: Connection) -> TrainingRows:
    """Every lead, its first move to each stage, and the whole event log."""
    lead_rows = [
        (r.lead_id, dict(r.attributes), int(r.created_us))
        for r in conn.execute(sa.select(leads.c.lead_id, leads.c.attributes, leads.c.created_us))
    ]
    first = conn.execute(
        sa.select(transitions.c.lead_id, transitions.c.new, sa.func.min(transitions.c.at_us))
        .where(transitions.c.kind == "stage")
        .group_by(transitions.c.lead_id, transitions.c.new)
    )
    first_stage = {(r[0], r[1]): int(r[2]) for r in first}
    log = [
        (r.lead_id, r.name, int(r.ts_us))
        for r in conn.execute(sa.select(events.c.lead_id, events.c.name, events.c.ts_us))
    ]
    return TrainingRows(lead_rows, first_stage, log)


def _raw_rows_by_lead(
    conn: Connection,
    lead_ids: Iterable[str],
    statement: Callable[[str, str, Sequence[str]], tuple[str, list[Any]]],
) -> list[Any]:
    """Rows of a statement about some leads, chunk by chunk of their ids, through the
    driver's own cursor in the caller's transaction: a write that scores the leads it
    changed reads thousands of rows, and SQLAlchemy's result rows cost more than the
    query (about 5 µs a row against 1 µs). ``statement(table, places, chunk)`` gives the
    SQL (``places``: the chunk's parameter marks) and its parameters."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    table = conn.dialect.identifier_preparer.format_table(events)
    cursor = conn.connection.cursor()
    out: list[Any] = []
    try:
        for chunk in chunks(sorted(set(lead_ids))):
            cursor.execute(*statement(table, ", ".join([mark] * len(chunk)), chunk))
            out += cursor.fetchall()
    finally:
        cursor.close()
    return out


def lead_event_rows(conn: Connection, lead_ids: Iterable[str]) -> list[tuple[str, str, int]]:
    """The ``(lead_id, event name, ts_us)`` of these leads' events."""
    return _raw_rows_by_lead(
        conn,
        lead_ids,
        lambda table, places, chunk: (
            f"SELECT lead_id, name, ts_us FROM {table} WHERE lead_id IN ({places})",
            list(chunk),
        ),
    )


def lead_events_after(
    conn: Connection, lead_ids: Iterable[str], after_seq: int
) -> list[tuple[str, str, int, int]]:
    """The ``(lead_id, event name, ts_us, seq)`` of these leads' events stored after
    ``after_seq`` (the events table's own order): what another process added to leads
    a cache here holds. Read by the range of ``seq`` (the primary key), not by lead: a
    lead's index entries are its whole history, the events after a recent ``seq`` are
    a few batches (SQLite is told so: ``+lead_id`` keeps it off the lead index)."""
    lead = "+lead_id" if conn.dialect.name == "sqlite" else "lead_id"
    return _raw_rows_by_lead(
        conn,
        lead_ids,
        lambda table, places, chunk: (
            f"SELECT lead_id, name, ts_us, seq FROM {table} "
            f"WHERE seq > {int(after_seq)} AND {lead} IN ({places})",
            list(chunk),
        ),
    )


def last_event_seq(conn: Connection) -> int:
    """The highest event ``seq`` this transaction sees (0: no event)."""
    found = conn.execute(sa.select(sa.func.max(events.c.seq))).scalar()
    return int(found or 0)


# A lead's event features (pyrometer.predictive.event_features) need counts in windows,
# the latest time and a decayed sum: the database adds them up per lead and event name,
# and only those sums travel. The age in days is computed as the Python code computes it
# (whole seconds plus the rest's fraction, then days), so a window's edge and each
# event's weight 2^(-age / half-life) are the same floats.
EventSums = tuple[str, str, tuple[int, ...], int, float]
"""``(lead_id, event name as stored, counts per window, latest ts_us, decayed sum)``."""


def _summary_sql(postgres: bool, table: str, places: str, windows: int) -> str:
    delta = "(%s - ts_us)" if postgres else "(? - ts_us)"
    seconds = f"({delta} / 1000000)"
    rest = (
        f"(({delta} %% 1000000)::float8 / 1e6::float8)"
        if postgres
        else f"(({delta} % 1000000) / 1e6)"
    )
    age = f"(({seconds} + {rest}) / 86400.0{'::float8' if postgres else ''})"
    mark = "%s" if postgres else "?"
    weight = f"power(2.0{'::float8' if postgres else ''}, -{age} / {mark})"
    counts = ", ".join(
        f"SUM(CASE WHEN {delta} <= {mark} THEN 1 ELSE 0 END)" for _ in range(windows)
    )
    return (
        f"SELECT lead_id, name, {counts}, MAX(ts_us), SUM({weight}) FROM {table} "
        f"WHERE lead_id IN ({places}) AND ts_us <= {mark} GROUP BY lead_id, name"
    )


def lead_event_sums(
    conn: Connection,
    lead_ids: Iterable[str],
    now_us: int,
    windows_days: Iterable[int],
    half_life_days: float,
) -> list[EventSums]:
    """Per lead and event name, of the events at or before ``now_us``: how many lie within
    each window (days, an age equal to the window counts), the latest time and the sum of
    ``2^(-age / half_life_days)``. What :func:`lead_event_rows` gives a model, added up
    in the database: a batch of leads with long histories sends a row per name, not per
    event."""
    postgres = conn.dialect.name == "postgresql"
    windows = [int(w) * 86_400_000_000 for w in windows_days]
    n = len(windows)

    def statement(table: str, places: str, chunk: Sequence[str]) -> tuple[str, list[Any]]:
        # In the order the statement reads them: the windows' deltas, the weight's
        # deltas and half-life, the ids, the time.
        params: list[Any] = []
        for window in windows:
            params += [now_us, window]
        params += [now_us, now_us, float(half_life_days), *chunk, now_us]
        return _summary_sql(postgres, table, places, n), params

    return [
        (row[0], row[1], tuple(int(c) for c in row[2 : 2 + n]), int(row[2 + n]), float(row[3 + n]))
        for row in _raw_rows_by_lead(conn, lead_ids, statement)
    ]


def outcome_count(conn: Connection) -> int:
    """Leads that have reached customer or disqualified: how many outcomes a store knows."""
    return int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(transitions.c.lead_id))).where(
                transitions.c.kind == "stage",
                transitions.c.new.in_(["customer", "disqualified"]),
            )
        ).scalar_one()
    )
