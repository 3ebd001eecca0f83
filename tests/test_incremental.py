"""The incremental scorer: transitions, decay crossings in closed form, stored state."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyrometer.core.incremental import (
    LeadState,
    apply_attributes,
    apply_event,
    decay_transitions,
    new_state,
    next_decay_transition_us,
    snapshot,
)
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.timeutil import to_us

BOOK = default_playbook()
DAY = 86_400_000_000


def feed(events: list[Event], attrs: dict | None = None) -> tuple[LeadState, list]:
    state = apply_attributes(BOOK, new_state("x"), attrs or {}, 0).state
    transitions = []
    for event in events:
        step = apply_event(BOOK, state, event)
        state = step.state
        transitions += step.transitions
    return state, transitions


def test_hot_lead_transitions_are_dated_and_caused() -> None:
    events = [
        Event.create("x", "demo_request", "2026-11-23T09:00:00Z", "d"),
        Event.create("x", "pricing_page_view", "2026-11-23T09:01:00Z", "p1"),
        Event.create("x", "pricing_page_view", "2026-11-23T09:02:00Z", "p2"),
        Event.create("x", "pricing_page_view", "2026-11-23T09:03:00Z", "p3"),
    ]
    state, transitions = feed(events)
    seen = [(t.kind, t.old, t.new, t.cause) for t in transitions]
    assert seen == [
        ("temperature", "cold", "warm", "event:d"),
        ("stage", "lead", "mql", "event:p1"),
        ("temperature", "warm", "hot", "event:p3"),
    ]
    assert transitions[-1].at_us == to_us("2026-11-23T09:03:00Z")
    # Cooling happens by decay alone: the next change is tomorrow at midnight UTC.
    assert next_decay_transition_us(BOOK, state) == to_us("2026-11-24T00:00:00Z")
    assert snapshot(BOOK, state, to_us("2026-11-23T23:59:59Z")).temperature == "hot"
    assert snapshot(BOOK, state, to_us("2026-11-24T00:00:00Z")).temperature == "warm"


@given(
    points=st.lists(
        st.sampled_from(
            [
                "demo_request",
                "pricing_page_view",
                "contact_sales",
                "whitepaper_download",
                "unsubscribe",
                "purchase",
            ]
        ),
        min_size=1,
        max_size=8,
    ),
    fit_title=st.sampled_from(["CEO", "Student", ""]),
    horizon=st.integers(1, 400),
)
def test_decay_transitions_match_a_day_by_day_scan(points, fit_title, horizon) -> None:
    events = [
        Event.create("x", name, "2026-01-01T10:00:00Z", f"e{i}") for i, name in enumerate(points)
    ]
    state, _ = feed(events, {"job_title": fit_title})
    until = to_us("2026-01-01T10:00:00Z") + horizon * DAY
    found = [(t.at_us, t.kind, t.old, t.new) for t in decay_transitions(BOOK, state, until)]
    expected = []
    before = snapshot(BOOK, state, to_us("2026-01-01T10:00:00Z"))
    day = to_us("2026-01-02T00:00:00Z")
    while day <= until:
        now = snapshot(BOOK, state, day)
        for kind in ("temperature", "stage"):
            if getattr(now, kind) != getattr(before, kind):
                expected.append((day, kind, str(getattr(before, kind)), str(getattr(now, kind))))
        before, day = now, day + DAY
    assert found == expected
    upcoming = next_decay_transition_us(BOOK, state)
    if expected:
        assert upcoming == expected[0][0]
    # Asked again after each change it reported, it walks through all of them.
    times, at = [], None
    while (at := next_decay_transition_us(BOOK, state, at)) is not None and at <= until:
        times.append(at)
    assert times == sorted({t for t, *_ in expected})


def test_state_survives_a_round_trip_through_json() -> None:
    import json

    events = [
        Event.create("x", "page_view", f"2026-03-0{d}T1{h}:00:00Z", f"v{d}{h}", {"url": "/blog"})
        for d in range(1, 4)
        for h in range(7)
    ]
    events.append(Event.create("x", "sales_accepted", "2026-03-04T10:00:00Z", "s"))
    state, _ = feed(events, {"email": "a@b.example"})
    again = LeadState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    late = Event.create("x", "page_view", "2026-03-01T09:00:00Z", "late", {"url": "/x"})
    assert apply_event(BOOK, again, late) == apply_event(BOOK, state, late)


def test_reading_before_the_latest_event_is_refused() -> None:
    state, _ = feed([Event.create("x", "demo_request", "2026-11-23T09:00:00Z", "d")])
    try:
        snapshot(BOOK, state, to_us("2026-11-22T00:00:00Z"))
    except ValueError as exc:
        assert "event log" in str(exc)
    else:
        raise AssertionError("a snapshot in the past must be refused")
