"""The stored state holds a bounded set of cap windows, and late events, merges and the
admin's merge still score exactly as the reference over the whole log (both stores)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from pyrometer.core.incremental import MAX_WINDOWS, apply_attributes, apply_event, new_state
from pyrometer.core.reference import score_lead_reference
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.merge import merge_leads
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import Change, current
from pyrometer.store import repo
from service.conftest import START, Clock

DAY = 86_400_000_000
HOUR = 3_600_000_000


def _history(lead: str, days: int, prefix: str) -> list[Track]:
    """Three capped pricing visits a day (the cap is 30 a day: all count), and a blog view."""
    tracks = []
    for day in range(days):
        at = START - (days - day) * DAY
        for n in range(3):
            tracks.append(Track(f"{prefix}{day}-{n}", "pricing_page_view", at + n, user_id=lead))
        tracks.append(
            Track(f"{prefix}{day}-b", "page_view", at + 9, user_id=lead, properties={"url": "/b"})
        )
    return tracks


def _check(service: Service, lead: str) -> None:
    """The stored lead scores as the reference over its whole log, with few windows."""
    now = service.clock()
    with service.engine.connect() as conn:
        book = service.playbooks.active(conn)[1]
        record = repo.read_lead(conn, lead)
        events = repo.lead_events(conn, lead)
    assert record is not None
    expected = score_lead_reference(book, lead, events, record.attributes, now)
    scored = current(book, record.state, now)
    assert abs(scored.engagement - expected.engagement) < 1e-9, (scored, expected)
    assert scored.event_count == expected.event_count == len(events)
    per_rule = Counter(rule for rule, _ in record.state.windows)
    assert max(per_rule.values(), default=0) <= MAX_WINDOWS, per_rule


def test_late_events_in_sealed_windows_score_exactly(service: Service, clock: Clock) -> None:
    ingest(service, _history("ann", 60, "h"), [])
    _check(service, "ann")
    # Late: a 4th visit on a day 40 days back (over the cap: 0 points), and a visit on a
    # day that had none of that rule (10 points), sent alone and in a big batch.
    late = [
        Track("late-1", "pricing_page_view", START - 40 * DAY + 5, user_id="ann"),
        Track("late-2", "pricing_page_view", START - 40 * DAY - 1, user_id="ann"),
    ]
    ingest(service, late[:1], [])
    _check(service, "ann")
    filler = [Track(f"f{n}", "email_open", START - n, user_id=f"other-{n}") for n in range(80)]
    ingest(service, [late[1], *filler], [])  # 64 or more: scored ahead, falls back
    _check(service, "ann")


def test_merges_fold_into_sealed_state_exactly(service: Service, clock: Clock) -> None:
    ingest(service, _history("bo", 60, "h"), [])
    visits = [
        # An hour before bo's visits of those days: first in the window, bo's third drops out.
        Track(f"v{n}", "pricing_page_view", START - n * 10 * DAY - HOUR, anonymous_id="visitor")
        for n in range(5)
    ]
    ingest(service, visits, [])
    ingest(service, [], [Identify("id-1", "bo", START, anonymous_id="visitor")])
    _check(service, "bo")
    # The admin's merge of another known lead with old history, both ways round in size.
    ingest(service, _history("bo-work", 20, "w"), [])
    merge_leads(service, "bo", "bo-work", "test")
    _check(service, "bo")
    ingest(service, _history("big", 90, "g"), [])
    clock.advance(60)
    merge_leads(service, "bo", "big", "test")  # "big" has more events: bo's fold into it
    _check(service, "bo")
    with service.engine.connect() as conn:
        assert repo.read_lead(conn, "big") is None
        assert {e.event_id for e in repo.lead_events(conn, "bo")} >= {"v0", "w0-0", "g0-0"}


def test_a_state_stored_before_sealing_is_sealed_on_its_next_change(
    service: Service, clock: Clock
) -> None:
    ingest(service, _history("cy", 40, "h"), [])
    with service.engine.begin() as conn:  # as an earlier version stored it: every window
        record = repo.read_lead(conn, "cy")
        assert record is not None
        book = service.playbooks.active(conn)[1]
        full = apply_attributes(book, new_state("cy"), {}, 0).state
        for event in repo.lead_events(conn, "cy"):
            full = apply_event(book, full, event).state
        assert not full.sealed and len(full.windows) == 80
        repo.save_changes(conn, [Change(replace(record, state=full))], clock())
    ingest(service, [Track("new", "pricing_page_view", START, user_id="cy")], [])
    _check(service, "cy")
