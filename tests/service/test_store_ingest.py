"""The store and the ingest path, below HTTP: scores equal the reference, duplicates are
no-ops, events may arrive in any order, and the migrations build exactly the models."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pyrometer.core.playbook import default_playbook
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads, metadata, transitions
from service.conftest import Clock
from service.helpers import company, identifies_of, reference, tracks_of


def _table_counts(service: Service) -> dict[str, object]:
    def work(conn: sa.Connection) -> dict[str, object]:
        return {
            t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
            for t in (events, leads, transitions)
        }

    return service.read(work)


def test_scores_equal_the_reference_in_any_arrival_order(service: Service, clock: Clock) -> None:
    data = company(25, clock.now_us)
    rows = list(data.events)
    random.Random(5).shuffle(rows)
    ingest(service, [], identifies_of(data.leads, clock.now_us - 10**9))
    tracks = tracks_of(rows)
    for start in range(0, len(tracks), 97):
        result = ingest(service, tracks[start : start + 97], [])
        assert result.duplicates == 0
    clock.advance(3 * 86_400)  # read three days later: everyone has cooled a little
    expected = reference(default_playbook(), data, clock.now_us)
    for lead_id, ref in expected.items():
        got = get_lead(service, lead_id)
        assert got is not None
        assert got["score"] == pytest.approx(round(ref.score, 4), abs=1e-4), lead_id
        assert got["fit"] == pytest.approx(round(ref.fit, 4), abs=1e-4)
        assert got["temperature"] == str(ref.temperature)
        assert got["stage"] == str(ref.stage)
        assert got["event_count"] == ref.event_count
        assert len(got["events"]) == ref.event_count
        ledger_total = sum(line["value"] for line in got["ledger"])
        assert ledger_total == pytest.approx(ref.score, abs=1e-6)
        assert sorted(
            (x["rule"], x["event_id"], x["points"])
            for x in got["ledger"]
            if x["kind"] == "engagement"
        ) == sorted((x.rule, x.event_id, x.points) for x in ref.engagement_lines)


def test_a_repeated_message_id_changes_nothing(service: Service, clock: Clock) -> None:
    data = company(5, clock.now_us)
    tracks = tracks_of(data.events)
    first = ingest(service, tracks, [])
    assert first.accepted == len(tracks) and first.duplicates == 0
    before = _table_counts(service)
    clock.advance(60)
    again = ingest(service, tracks[:10] + tracks[:10], [])
    assert again.accepted == 0 and again.duplicates == 20
    assert _table_counts(service) == before


def test_a_repeated_id_within_one_request_counts_once(service: Service, clock: Clock) -> None:
    track = Track("same", "demo_request", clock.now_us, user_id="ann")
    result = ingest(service, [track, track], [])
    assert result.accepted == 1
    lead = get_lead(service, "ann")
    assert lead is not None and lead["event_count"] == 1 and lead["score"] == 20


def test_migrations_build_exactly_the_models(service: Service) -> None:
    with service.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
