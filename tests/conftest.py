"""Shared helpers: run the DuckDB batch engine over in-memory events and leads."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import settings

from pyrometer.core.conditions import normalize_record
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.engines import native as native_ext
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, EventTable, LeadTable
from pyrometer.engines.native.build import compiler
from pyrometer.engines.sql_conditions import quote_ident

# The suite must stay well under 20 minutes on two cores, so CI runs as many examples as a
# developer does; `HYPOTHESIS_PROFILE=thorough` runs five times as many where a test sets
# no count of its own.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Both ways of running pass 1: in SQL, and as pyrometer's C aggregate (skipped only when
# there is no C compiler; a build or load failure then fails the tests).
PASS1 = [
    pytest.param(False, id="sql"),
    pytest.param(
        True,
        id="native",
        marks=pytest.mark.skipif(compiler() is None, reason="no C compiler for the native pass"),
    ),
]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def event_table(con: duckdb.DuckDBPyConnection, events: Iterable[Event]) -> EventTable:
    """Register events (with all their properties as text columns) as a DuckDB table."""
    events = list(events)
    keys = sorted({key for event in events for key in event.properties})
    columns: dict[str, list[Any]] = {"lead_id": [], "event": [], "ts_us": [], "event_id": []}
    for key in keys:
        columns["p_" + key] = []
    for event in events:
        columns["lead_id"].append(event.lead_id)
        columns["event"].append(event.name)
        columns["ts_us"].append(event.ts_us)
        columns["event_id"].append(event.event_id)
        for key in keys:
            value = event.properties.get(key)
            columns["p_" + key].append(None if value is None else str(value))
    schema = pa.schema(
        [
            ("lead_id", pa.string()),
            ("event", pa.string()),
            ("ts_us", pa.int64()),
            ("event_id", pa.string()),
        ]
        + [("p_" + key, pa.string()) for key in keys]
    )
    con.register("test_events", pa.table(columns, schema=schema))
    return EventTable("test_events", {key: quote_ident("p_" + key) for key in keys})


def lead_table(
    con: duckdb.DuckDBPyConnection, leads: Mapping[str, Mapping[str, Any]]
) -> LeadTable | None:
    if not leads:
        return None
    normalized = {lead: normalize_record(attrs) for lead, attrs in leads.items()}
    keys = sorted({key for attrs in normalized.values() for key in attrs})
    columns: dict[str, list[Any]] = {"lead_id": list(normalized)}
    for key in keys:
        columns["a_" + key] = [
            None if attrs.get(key) is None else str(attrs[key]) for attrs in normalized.values()
        ]
    schema = pa.schema([("lead_id", pa.string())] + [("a_" + key, pa.string()) for key in keys])
    con.register("test_leads", pa.table(columns, schema=schema))
    return LeadTable("test_leads", {key: quote_ident("a_" + key) for key in keys})


def batch_score(
    playbook: Playbook,
    events: Iterable[Event],
    leads: Mapping[str, Mapping[str, Any]],
    as_of_us: int,
    explain: bool = False,
    slices: int | None = None,
    native: bool = False,
) -> dict[str, ScoredLead]:
    """``native``: pass 1 as the C aggregate (an error when it does not load)."""
    con = native_ext.connect() if native else duckdb.connect()
    events = list(events)
    table = event_table(con, events) if events else None
    leads_t = lead_table(con, leads)
    scorer = DuckDBBatchScorer(playbook, con, slices=slices, native=native)
    if explain:
        ids = sorted({e.lead_id for e in events if e.ts_us <= as_of_us} | set(leads))
        return scorer.explain(table, leads_t, as_of_us, ids)
    return scorer.score(table, leads_t, as_of_us)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not there (the shared/ folder sits beside the repo)")
    return SHARED_DATA


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, every Spark test runs on one worker, so that the run starts one
    Spark cluster and one session, not one per worker (``--dist loadgroup``); they are
    handed out first, so that the slowest group does not start last."""
    spark = [item for item in items if "spark_engine" in item.path.parts]
    for item in spark:
        item.add_marker(pytest.mark.xdist_group("spark"))
    items[:] = spark + [item for item in items if "spark_engine" not in item.path.parts]
