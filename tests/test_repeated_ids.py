"""An event id seen twice is one event, the first, in every engine: random streams with
repeated ids (identical, or under another lead, name or time) score alike in the
reference, the batch engine (SQL and native pass 1) and the incremental scorer fed the
event log (the first of each id) in any order."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from conftest import PASS1, batch_score
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_equivalence import (
    DAY_US,
    EVENTS,
    START_US,
    assert_same,
    incremental_score,
    playbooks,
    streams,
)

from pyrometer.core.events import distinct_events
from pyrometer.core.model import Event
from pyrometer.core.reference import score_reference


@st.composite
def repeated(draw: st.DrawFn) -> tuple[list[Event], dict]:
    """A stream with some events sent again: as they were, or with another lead, name
    or time, anywhere in the stream (before the original too)."""
    events, leads = draw(streams())
    events = list(events)
    for _ in range(draw(st.integers(0, 8)) if events else 0):
        original = draw(st.sampled_from(events))
        change = draw(st.sampled_from(["same", "lead", "name", "time"]))
        again = original
        if change == "lead":
            again = replace(original, lead_id=draw(st.sampled_from(["a", "b", "c", "e"])))
        elif change == "name":
            again = replace(original, name=draw(st.sampled_from(EVENTS)))
        elif change == "time":
            again = replace(original, ts_us=original.ts_us + draw(st.integers(-3, 3)) * DAY_US)
        events.insert(draw(st.integers(0, len(events))), again)
    return events, leads


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(
    playbook=playbooks(),
    stream=repeated(),
    as_of_days=st.integers(0, 420),
    seed=st.integers(),
    slices=st.sampled_from([None, 2]),
)
@pytest.mark.parametrize("native", PASS1)
def test_repeated_ids_score_once_everywhere(
    playbook, stream, as_of_days, seed, slices, native
) -> None:
    events, leads = stream
    as_of_us = START_US + as_of_days * DAY_US // 2
    firsts: dict[str, Event] = {}
    for event in events:
        firsts.setdefault(event.event_id, event)
    expected = score_reference(playbook, list(firsts.values()), leads, as_of_us)
    assert score_reference(playbook, events, leads, as_of_us) == expected

    batch = batch_score(playbook, events, leads, as_of_us, slices=slices, native=native)
    assert set(batch) == set(expected)
    for lead, want in expected.items():
        assert_same(want, batch[lead], "batch")
    if native:
        return
    logged = distinct_events(events)
    assert logged == list(firsts.values())
    incremental = incremental_score(playbook, logged, leads, as_of_us, random.Random(seed))
    for lead, want in expected.items():
        assert_same(want, incremental[lead][0], "incremental")


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=20)
@given(playbook=playbooks(), stream=repeated(), as_of_days=st.integers(0, 420))
def test_explain_shows_each_repeated_id_once(playbook, stream, as_of_days) -> None:
    """The ledger of ``explain`` has one line per (rule, event id), as the reference's."""
    events, leads = stream
    as_of_us = START_US + as_of_days * DAY_US // 2
    expected = score_reference(playbook, events, leads, as_of_us)
    explained = batch_score(playbook, events, leads, as_of_us, explain=True)
    assert set(explained) == set(expected)
    for lead, want in expected.items():
        got = explained[lead]
        assert sorted((x.rule, x.event_id, x.points) for x in got.engagement_lines) == sorted(
            (x.rule, x.event_id, x.points) for x in want.engagement_lines
        )
        assert_same(want, got, "explain")
