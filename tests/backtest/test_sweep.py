"""One pass per lead gives, at every as-of time, exactly what scoring at that time gives."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_equivalence import DAY_US, START_US, playbooks, streams

from pyrometer.backtest.sweep import as_of_grid, sweep
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=80, deadline=None)
@given(
    playbook=playbooks(),
    stream=streams(),
    start_days=st.integers(-5, 30),
    every=st.sampled_from([DAY_US // 3, DAY_US, 4 * DAY_US]),
    count=st.integers(1, 40),
)
def test_sweep_equals_scoring_each_as_of_time_separately(
    playbook, stream, start_days, every, count
) -> None:
    events, leads = stream
    start = START_US + start_days * DAY_US
    times = as_of_grid(start, start + (count - 1) * every, every)
    timelines = {t.lead_id: t for t in sweep(playbook, events, leads, times)}
    # Bands alone (binary search between events) are the bands of scoring every time.
    bands = {
        t.lead_id: (t.first_step, t.bands) for t in sweep(playbook, events, leads, times, False)
    }
    assert bands == {lead: (t.first_step, t.bands) for lead, t in timelines.items()}
    for step, as_of in enumerate(times):
        expected = score_reference(playbook, events, leads, as_of)
        observed = {lead for lead, t in timelines.items() if t.at(step) is not None}
        # Observed: the leads with an event by then (leads with attributes only are not).
        assert observed == {lead for lead, s in expected.items() if s.event_count > 0}
        for lead in observed:
            timeline = timelines[lead]
            want = expected[lead]
            assert timeline.at(step) == str(want.temperature), (lead, as_of)
            got = timeline.scores[step - timeline.first_step]
            assert math.isclose(got, want.score, rel_tol=1e-9, abs_tol=1e-9)


def test_a_lead_heats_then_cools_as_its_demo_request_fades() -> None:
    book = default_playbook()  # demo 20 + contact sales 25 + pricing 10 = 55: hot at 50
    day = START_US
    events = [
        Event.create("a", "demo_request", day + 3600_000_000, "e1"),
        Event.create("a", "contact_sales", day + 7200_000_000, "e2"),
        Event.create("a", "pricing_page_view", day + 7300_000_000, "e3"),
    ]
    times = as_of_grid(day - DAY_US, day + 60 * DAY_US, DAY_US)
    (timeline,) = sweep(book, events, {}, times)
    assert timeline.first_step == 2  # not seen before its first event (1 h after step 1)
    assert timeline.at(1) is None
    assert timeline.at(2) == "hot"
    # Half-life 30 days: 55 falls under 50 after a few days, under 20 after ~44 days.
    assert timeline.temperatures[-1] == "cold"
    assert "warm" in timeline.temperatures
    assert list(timeline.scores) == sorted(timeline.scores, reverse=True)


def test_grid_rejects_a_backwards_range() -> None:
    with pytest.raises(ValueError, match="ends before"):
        as_of_grid(10, 5, 1)
    with pytest.raises(ValueError, match="positive"):
        as_of_grid(0, 5, 0)
