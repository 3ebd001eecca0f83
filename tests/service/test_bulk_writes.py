"""Ingest's bulk statements: PostgreSQL's one-statement-per-kind writes (arrays through
``unnest``) and SQLite's lead updates that leave unchanged indexed columns out store
exactly what row-by-row statements would."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa

from pyrometer.service.ingest import SCORE_AHEAD_MIN, ingest
from pyrometer.service.runtime import Service
from pyrometer.store import repo
from pyrometer.store.tables import events, leads, transitions
from service.conftest import Clock
from service.helpers import company, tracks_of


def _rows(service: Service, table: sa.Table) -> list[Any]:
    def work(conn: sa.Connection) -> list[Any]:
        return conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()

    return service.read(work)


def _lead_row(lead_id: str, **changes: Any) -> repo.LeadRow:
    values: dict[str, Any] = {
        "attributes": '{"job_title": "VP \\"Sales\\"", "note": "back\\\\slash, ü, {x}"}',
        "source": None,
        "owner": "o'neil",
        "consent": None,
        "created_us": 1,
        "updated_us": 2,
        "playbook_version": 1,
        "state": json.dumps({"lead_id": lead_id, "windows": [["a", 1, [[1, 'e"1', "n"]]]]}),
        "fit": 0,  # an int where the column is a float: a sum of no fit rules
        "anchor_step": None,
        "engagement_at_anchor": 2.5,
        "temperature": "cold",
        "stage": "lead",
        "last_activity_us": 2**60,
        "event_count": 0,
        "decay_checked_us": -(2**62),
        "next_decay_us": None,
    }
    values.update(changes)
    return (lead_id, *(values[name] for name in repo._LEAD_COLUMNS))


def test_postgres_bulk_statements_store_every_value_and_report_new_rows(
    store_url: str, clock: Clock
) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's bulk statements")
    service = Service.open(store_url, clock)
    try:
        first = [_lead_row("b"), _lead_row("a", consent=True, fit=1.5, next_decay_us=7)]

        def create(conn: sa.Connection) -> tuple[set[str], set[str]]:
            made = repo.create_lead_rows(conn, first)
            again = repo.create_lead_rows(conn, [_lead_row("a"), _lead_row("c", consent=False)])
            return made, again

        assert service.write(create) == ({"a", "b"}, {"c"})

        def update(conn: sa.Connection) -> None:
            repo.save_rows(
                conn,
                [_lead_row("b", state='{"x": "\\u00fc"}', stage="mql", anchor_step=2**40)],
                [_lead_row("d")],
                [("b", 5, "stage", "lead", "mql", 'event:e"1'), ("d", 6, "kind", "o", "n", "")],
                99,
            )

        service.write(update)
        stored = {row.lead_id: row for row in _rows(service, leads)}
        assert set(stored) == {"a", "b", "c", "d"}
        assert stored["a"].consent is True and stored["a"].fit == 1.5
        assert stored["a"].next_decay_us == 7
        assert stored["c"].consent is False and stored["c"].fit == 0.0
        assert stored["a"].attributes == {"job_title": 'VP "Sales"', "note": "back\\slash, ü, {x}"}
        assert stored["b"].state == {"x": "ü"} and stored["b"].stage == "mql"
        assert stored["b"].anchor_step == 2**40 and stored["b"].owner == "o'neil"
        assert stored["d"].last_activity_us == 2**60 and stored["d"].source is None
        assert stored["a"].state["windows"] == [["a", 1, [[1, 'e"1', "n"]]]]
        moves = [
            (t.lead_id, t.at_us, t.old, t.new, t.cause, t.recorded_us)
            for t in _rows(service, transitions)
        ]
        assert moves == [("b", 5, "lead", "mql", 'event:e"1', 99), ("d", 6, "o", "n", "", 99)]

        rows = [
            {
                "event_id": f"e{n}",
                "lead_id": "a",
                "subject": "a",
                "name": "page_view",
                "ts_us": n,
                "properties": {"url": f'/p"{n}'},
                "received_us": 3,
            }
            for n in (3, 1, 2)
        ]
        assert service.write(lambda conn: repo.insert_events(conn, rows[:2])) == {"e3", "e1"}
        assert service.write(lambda conn: repo.insert_events(conn, rows)) == {"e2"}
        stored_events = _rows(service, events)  # in seq order: the order inserted
        assert [e.event_id for e in stored_events] == ["e3", "e1", "e2"]
        assert [e.properties["url"] for e in stored_events] == ['/p"3', '/p"1', '/p"2']
    finally:
        service.close()


def test_sqlite_updates_without_unchanged_indexed_columns_store_the_same_rows(
    tmp_path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same groups ingested twice, once with every column of every lead SET: the
    stores end up identical, and most updates did leave indexed columns out."""
    data = company(40, clock.now_us)
    rows = list(data.events)
    random.Random(11).shuffle(rows)
    tracks = tracks_of(rows)
    step = SCORE_AHEAD_MIN
    assert len(tracks) > 5 * step
    save_rows = repo.save_rows
    left_out: list[int] = []

    def counting(*args: Any, stored: Any = None, **kwargs: Any) -> None:
        updates = args[1]
        if stored is not None:
            left_out.extend(
                len(repo._INDEXED)
                - sum(r[repo._ROW_AT[n]] != stored[r[0]][repo._RAW_AT[n]] for n in repo._INDEXED)
                for r in updates
            )
        save_rows(*args, stored=stored, **kwargs)

    def full(*args: Any, stored: Any = None, **kwargs: Any) -> None:
        save_rows(*args, **kwargs)

    stores = []
    for name, spy in (("partial", counting), ("full", full)):
        monkeypatch.setattr(repo, "save_rows", spy)
        service = Service.open(f"sqlite:///{tmp_path / name}.db", clock)
        start_us = clock.now_us
        for start in range(0, len(tracks), step):
            ingest(service, tracks[start : start + step], [])
            clock.advance(3600)
        stores.append({t.name: _rows(service, t) for t in (leads, events, transitions)})
        service.close()
        clock.now_us = start_us
    assert stores[0] == stores[1]
    assert left_out and sum(1 for n in left_out if n == len(repo._INDEXED)) > len(left_out) / 4
