"""Bounded cap windows: a state that drops old windows (``seal``) and restores the ones a
late event needs from the events already scored scores exactly as the unbounded state
and the reference, whatever the arrival order, and holds a bounded number of windows."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_equivalence import DAY_US, START_US, assert_same, playbooks

from pyrometer.core.incremental import (
    MAX_WINDOWS,
    LeadState,
    WindowsSealed,
    apply_attributes,
    apply_event,
    new_state,
    restore_windows,
    seal,
    sealed_windows,
    snapshot,
)
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook, default_playbook
from pyrometer.core.reference import score_lead_reference

NAMES = ("page_view", "pricing_page_view", "demo_request", "email_open", "unsubscribe")
URLS = ("https://x.io/pricing", "https://x.io/blog")


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """One lead's events over up to 120 days, with ties and shared windows common."""
    events = []
    for i in range(draw(st.integers(1, 60))):
        name = draw(st.sampled_from(NAMES))
        props = {"url": draw(st.sampled_from(URLS))} if name == "page_view" else {}
        ts = START_US + draw(st.integers(0, 480)) * (DAY_US // 4)
        events.append(Event.create("x", name, ts, f"e{draw(st.integers(0, 99)):02d}-{i}", props))
    return events


def feed_bounded(
    book: Playbook, arrivals: list[Event], max_windows: int = MAX_WINDOWS
) -> tuple[LeadState, LeadState, int]:
    """The same arrivals into an unbounded state and into one sealed after every event
    (restoring what a late event needs from the events it already took); returns both and
    how many restores happened."""
    unbounded = apply_attributes(book, new_state("x"), {}, START_US).state
    bounded = unbounded
    taken: list[Event] = []
    restores = 0
    for event in arrivals:
        unbounded = apply_event(book, unbounded, event).state
        needed = sealed_windows(book, bounded, [event])
        if needed:
            restores += 1
            bounded = restore_windows(book, bounded, [key for key, _, _ in needed], taken)
        bounded = seal(book, apply_event(book, bounded, event).state, max_windows)
        taken.append(event)
    return unbounded, bounded, restores


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    book=playbooks(),
    events=histories(),
    seed=st.integers(0, 2**16),
    max_windows=st.sampled_from([1, 2, 4, 8]),
)
def test_a_sealed_state_scores_as_the_unbounded_one_and_the_reference(
    book: Playbook, events: list[Event], seed: int, max_windows: int
) -> None:
    arrivals = list(events)
    random.Random(seed).shuffle(arrivals)  # out of order, late by up to 120 days
    unbounded, bounded, _ = feed_bounded(book, arrivals, max_windows)
    # Every number the score comes from is the same, bit for bit (same events, same order).
    assert bounded.engagement_at_anchor == unbounded.engagement_at_anchor
    assert bounded.anchor_step == unbounded.anchor_step
    assert (bounded.lifecycle, bounded.suppressed_at_us, bounded.event_count) == (
        unbounded.lifecycle,
        unbounded.suppressed_at_us,
        unbounded.event_count,
    )
    # What the bounded state holds is the unbounded state's, window for window.
    for key, members in bounded.windows.items():
        assert unbounded.windows[key] == members
    as_of = max(e.ts_us for e in events) + DAY_US
    expected = score_lead_reference(book, "x", events, {}, as_of)
    assert_same(expected, snapshot(book, bounded, as_of), "sealed incremental")


def test_windows_stay_bounded_over_a_long_history() -> None:
    book = default_playbook()
    events = [
        Event.create("x", name, START_US + n * DAY_US // 3, f"e{n}", {"url": "/blog"})
        for n in range(3000)  # 1,000 days, three events a day
        for name in ("pricing_page_view", "page_view", "email_open")
    ]
    unbounded, bounded, restores = feed_bounded(book, events)
    assert restores == 0  # in order: nothing late
    per_rule = Counter(rule for rule, _ in bounded.windows)
    assert len(unbounded.windows) > 2500
    assert max(per_rule.values()) <= MAX_WINDOWS
    assert bounded.engagement_at_anchor == unbounded.engagement_at_anchor
    # A late event in a dropped window needs it back, and then scores as before.
    late = Event.create("x", "pricing_page_view", START_US + 10 * DAY_US + 1, "late", {})
    with pytest.raises(WindowsSealed):
        apply_event(book, bounded, late)
    needed = sealed_windows(book, bounded, [late])
    assert [key for key, _, _ in needed] == [("pricing_page", (START_US + 10 * DAY_US) // DAY_US)]
    restored = restore_windows(book, bounded, [key for key, _, _ in needed], events)
    after = seal(book, apply_event(book, restored, late).state)
    assert (
        after.engagement_at_anchor == apply_event(book, unbounded, late).state.engagement_at_anchor
    )
    assert max(Counter(rule for rule, _ in after.windows).values()) <= MAX_WINDOWS


def test_a_state_stored_before_sealing_reads_back_and_seals() -> None:
    book = default_playbook()
    events = [
        Event.create("x", "pricing_page_view", START_US + n * DAY_US, f"e{n}") for n in range(40)
    ]
    state = apply_attributes(book, new_state("x"), {}, START_US).state
    for event in events:
        state = apply_event(book, state, event).state
    old = state.to_dict()
    del old["sealed"]  # as stored by earlier versions
    read = LeadState.from_dict(old)
    assert not read.sealed and len(read.windows) == 40
    sealed = seal(book, read)
    assert len(sealed.windows) == MAX_WINDOWS * 3 // 4
    assert sealed.sealed == {"pricing_page": (START_US + 16 * DAY_US) // DAY_US * DAY_US}
    assert LeadState.from_dict(sealed.to_dict()) == sealed
