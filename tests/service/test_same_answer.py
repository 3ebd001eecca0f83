"""One file, one answer: ``score``, ``explain``, ``import`` + a service read, and every engine.

Two files a new user brings: a CSV whose rows repeat event ids (an id seen twice is one
event, the first; rows without an id stay distinct), and a Segment export whose visitor
is identified (and aliased) later in the file (the visitor's events are the lead's; its
``identify`` traits are the lead's attributes; two known leads are never merged). The
expected leads are written out by hand as core events and scored by the reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.events import distinct_events
from pyrometer.core.incremental import apply_attributes, apply_event, new_state, snapshot
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import iso
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
from pyrometer.engines.native.build import compiler
from pyrometer.io.readers import open_events
from pyrometer.io.segment import with_traits
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.store import tables
from service.conftest import Clock

DAY = 86_400_000_000


def _at(clock: Clock, days_ago: float) -> str:
    return iso(clock.now_us - int(days_ago * DAY))


def _repeated_ids(tmp: Path, clock: Clock) -> tuple[Path, list[Event], dict[str, dict[str, Any]]]:
    """A CSV with one demo request three times, an id reused by another lead, and two rows
    without an id; the events it means."""
    t = [_at(clock, d) for d in (3, 2.9, 2.5, 2, 1.5)]
    rows = [
        ("a", "Demo Request", t[0], "e1"),
        ("a", "Demo Request", t[0], "e1"),
        ("a", "Demo Request", t[0], "e1"),
        ("a", "Pricing Page View", t[1], "e2"),
        ("b", "Contact Sales", t[2], "e2"),  # e2 again: a's, the first, counts
        ("b", "Whitepaper Download", t[3], ""),  # no id: an event of its own
        ("b", "Whitepaper Download", t[4], ""),
    ]
    path = tmp / "repeated.csv"
    path.write_text(
        "lead_id,event,timestamp,event_id\n" + "".join(",".join(r) + "\n" for r in rows)
    )
    expected = [
        Event.create("a", "demo_request", t[0], "e1"),
        Event.create("a", "pricing_page_view", t[1], "e2"),
        Event.create("b", "whitepaper_download", t[3], "r6"),
        Event.create("b", "whitepaper_download", t[4], "r7"),
    ]
    return path, expected, {}


def _segment(tmp: Path, clock: Clock) -> tuple[Path, list[Event], dict[str, dict[str, Any]]]:
    """A Segment export: a visitor identified later, a known lead an identify tries to
    merge into another, a visitor aliased, a resent message."""
    t = [_at(clock, d) for d in (4, 3.9, 3.8, 3, 2, 1)]
    pricing = {"url": "https://acme.example/pricing"}
    messages: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "v1", "messageId": "m1", "timestamp": t[0],
         "properties": pricing},
        {"type": "track", "anonymousId": "v1", "event": "Demo Request", "messageId": "m2",
         "timestamp": t[1], "properties": {}},
        {"type": "identify", "userId": "ann@acme.example", "anonymousId": "v1",
         "messageId": "m3", "timestamp": t[2],
         "traits": {"Job Title": "VP Sales", "company_size": 250}},
        {"type": "track", "userId": "ann@acme.example", "anonymousId": "v1",
         "event": "Pricing Page View", "messageId": "m4", "timestamp": t[3], "properties": {}},
        # After the identify, still anonymous: the link holds for later events too.
        {"type": "track", "anonymousId": "v1", "event": "Case Study Download",
         "messageId": "m5", "timestamp": t[4], "properties": {}},
        {"type": "track", "userId": "bob@corp.example", "event": "Demo Request",
         "messageId": "m6", "timestamp": t[0], "properties": {}},
        # bob is a known lead: never folded into carl (carl only gets the traits).
        {"type": "identify", "userId": "carl@corp.example", "anonymousId": "bob@corp.example",
         "messageId": "m7", "timestamp": t[3], "traits": {"Job Title": "CEO"}},
        {"type": "track", "anonymousId": "v2", "event": "Contact Sales", "messageId": "m8",
         "timestamp": t[1], "properties": {}},
        {"type": "alias", "userId": "dan@corp.example", "previousId": "v2", "messageId": "m9",
         "timestamp": t[3]},
        # A visitor identified without a userId stays a visitor: a later identify folds it.
        {"type": "identify", "anonymousId": "v3", "messageId": "m10", "timestamp": t[0],
         "traits": {"industry": "Software"}},
        {"type": "track", "anonymousId": "v3", "event": "Webinar Attended", "messageId": "m11",
         "timestamp": t[1], "properties": {}},
        {"type": "identify", "userId": "eve@corp.example", "anonymousId": "v3",
         "messageId": "m12", "timestamp": t[3], "traits": {"Job Title": "CTO"}},
        # m2 resent under another lead: one event, the first.
        {"type": "track", "userId": "dan@corp.example", "event": "Demo Request",
         "messageId": "m2", "timestamp": t[5], "properties": {}},
    ]  # fmt: skip
    path = tmp / "segment.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    expected = [
        Event.create("ann@acme.example", "page_view", t[0], "m1", pricing),
        Event.create("ann@acme.example", "demo_request", t[1], "m2"),
        Event.create("ann@acme.example", "pricing_page_view", t[3], "m4"),
        Event.create("ann@acme.example", "case_study_download", t[4], "m5"),
        Event.create("bob@corp.example", "demo_request", t[0], "m6"),
        Event.create("dan@corp.example", "contact_sales", t[1], "m8"),
        Event.create("eve@corp.example", "webinar_attended", t[1], "m11"),
    ]
    attributes = {
        "ann@acme.example": {"job_title": "VP Sales", "company_size": 250},
        "carl@corp.example": {"job_title": "CEO"},
        "eve@corp.example": {"industry": "Software", "job_title": "CTO"},
    }
    return path, expected, attributes


FILES = {"repeated ids": _repeated_ids, "segment": _segment}


def _incremental(
    events: list[Event], leads: Mapping[str, Mapping[str, Any]], now: int
) -> dict[str, ScoredLead]:
    book = default_playbook()
    states = {
        lead: apply_attributes(book, new_state(lead), a, 0).state for lead, a in leads.items()
    }
    for event in reversed(distinct_events(events)):  # any order
        state = (
            states.get(event.lead_id)
            or apply_attributes(book, new_state(event.lead_id), {}, 0).state
        )
        states[event.lead_id] = apply_event(book, state, event).state
    return {lead: snapshot(book, state, now) for lead, state in states.items()}


def _batch(path: Path, now: int, native: bool) -> dict[str, ScoredLead]:
    con = connect()
    events = open_events(con, path)
    scorer = DuckDBBatchScorer(default_playbook(), con, native=native)
    return scorer.score(events, with_traits(con, None, events.traits), now)


def _summary(lead: ScoredLead | Mapping[str, Any]) -> tuple[Any, ...]:
    got = lead.to_dict() if isinstance(lead, ScoredLead) else lead
    return (
        round(float(got["score"]), 4),
        round(float(got["fit"]), 4),
        got["temperature"],
        got["stage"],
        got["event_count"] if "event_count" in got else got["events"],
    )


@pytest.mark.parametrize("kind", list(FILES))
def test_one_file_one_answer_everywhere(
    kind: str, store_url: str, tmp_path: Path, clock: Clock
) -> None:
    path, events, leads = FILES[kind](tmp_path, clock)
    now = clock.now_us
    expected = {
        lead: _summary(scored)
        for lead, scored in score_reference(default_playbook(), events, leads, now).items()
    }
    assert {
        lead: _summary(scored) for lead, scored in _incremental(events, leads, now).items()
    } == expected
    for native in (False, True) if compiler() else (False,):
        got = _batch(path, now, native)
        assert {lead: _summary(scored) for lead, scored in got.items()} == expected, native

    runner = CliRunner()
    as_of = ["--as-of", iso(now)]
    result = runner.invoke(app, ["score", str(path), "--json", *as_of])
    assert result.exit_code == 0, result.output
    assert {row["lead_id"]: _summary(row) for row in json.loads(result.stdout)} == expected
    for lead in expected:
        result = runner.invoke(app, ["explain", lead, str(path), "--json", *as_of])
        assert result.exit_code == 0, result.output
        explained = json.loads(result.stdout)
        assert _summary(explained) == expected[lead], lead
        lines = [line for line in explained["ledger"] if line["kind"] == "engagement"]
        assert {line["event"] for line in lines} <= {e.name for e in events if e.lead_id == lead}

    result = runner.invoke(app, ["import", str(path), "--database", store_url])
    assert result.exit_code == 0, result.output
    service = Service.open(store_url, clock)
    try:
        for lead, summary in expected.items():
            got = get_lead(service, lead)
            assert got is not None, lead
            assert _summary(got) == summary, lead
            assert got["attributes"] == leads.get(lead, {}), lead
        for visitor in ("v1", "v2", "v3"):  # folded into their leads
            assert get_lead(service, visitor) is None
    finally:
        service.close()


def test_a_segment_export_imported_twice_changes_nothing(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    path, _, _ = _segment(tmp_path, clock)
    runner = CliRunner()
    snapshots = []
    for _ in range(2):
        result = runner.invoke(app, ["import", str(path), "--database", store_url])
        assert result.exit_code == 0, result.output
        service = Service.open(store_url, clock)
        try:
            snapshots.append(
                service.read(
                    lambda conn: {
                        t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
                        for t in (
                            tables.events,
                            tables.leads,
                            tables.transitions,
                            tables.identities,
                        )
                    }
                )
            )
        finally:
            service.close()
    assert "imported 0 new events" in result.output
    assert snapshots[0] == snapshots[1]
    assert {row.anonymous_id: row.lead_id for row in snapshots[0]["identities"]} == {
        "v1": "ann@acme.example",
        "v2": "dan@corp.example",
        "v3": "eve@corp.example",
    }
