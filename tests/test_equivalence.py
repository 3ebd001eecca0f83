"""One scoring semantics: reference == incremental (any arrival order) == DuckDB batch."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import pytest
from conftest import PASS1, batch_score
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrometer.core.incremental import apply_attributes, apply_event, new_state, snapshot
from pyrometer.core.ledger import revalue, upsert
from pyrometer.core.model import EngagementLine, Event, ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.core.reference import score_reference

DAY_US = 86_400_000_000
START_US = 1_790_000_000_000_000  # 2026-09-21
EVENTS = (
    "page_view",
    "pricing_page_view",
    "demo_request",
    "email_open",
    "newsletter_signup",
    "unsubscribe",
    "sales_accepted",
    "purchase",
    "lost",
)
URLS = ("https://x.io/pricing", "https://x.io/blog", "/pricing/enterprise", None)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@st.composite
def playbooks(draw: st.DrawFn) -> Playbook:
    """Random playbooks exercising caps (with partial last points), once, negative points."""
    rules: list[dict[str, Any]] = []
    for index, name in enumerate(
        (
            "page_view",
            "pricing_page_view",
            "demo_request",
            "email_open",
            "newsletter_signup",
            "unsubscribe",
            "purchase",
        )
    ):
        if not draw(st.booleans()) and index > 1:
            continue
        rule: dict[str, Any] = {
            "name": f"r{index}",
            "points": draw(st.sampled_from([-7.0, -3.0, 1.0, 2.5, 5.0, 10.0, 20.0])),
        }
        limit = draw(st.sampled_from(["none", "once", "cap"]))
        if limit == "once":
            rule["once"] = True
        elif limit == "cap":
            rule["cap"] = {
                "points": draw(st.sampled_from([1.0, 4.0, 10.0, 12.5, 30.0])),
                "per": draw(st.sampled_from(["1d", "7d", "12h", "ever"])),
            }
        if name == "pricing_page_view":
            rule["match"] = [
                {"event": "pricing_page_view"},
                {"event": "page_view", "where": {"url": {"contains": "/pricing"}}},
            ]
        else:
            rule["event"] = name
        if name == "page_view" and draw(st.booleans()):
            # The exact negation of the pricing rule's condition, as the default playbook.
            rule["where"] = {"url": {"not": {"contains": "/pricing"}}}
        rules.append(rule)
    half_life = draw(st.sampled_from(["1d", "7d", "30d"]))
    step = draw(st.sampled_from(["1s", "1h", "1d"]))
    warm = draw(st.sampled_from([5.0, 10.0, 20.0]))
    data = {
        "decay": {"half_life": half_life, "step": step},
        "engagement": rules,
        "fit": [
            {"name": "boss", "points": 15, "where": {"title": {"regex": r"\b(ceo|vp)\b"}}},
            {"name": "student", "points": -10, "where": {"title": {"contains": "student"}}},
            {"name": "no_title", "points": -2, "where": {"title": {"missing": True}}},
            {"name": "size", "points": 5, "where": {"size": {"gte": 50, "lt": 5000}}},
        ],
        "temperature": {"warm": warm, "hot": warm + draw(st.sampled_from([5.0, 25.0]))},
        "lifecycle": {
            "mql": {"score": {"gte": warm}, "fit": {"gte": 0}},
            "events": {"sales_accepted": "sql", "purchase": "customer", "lost": "lead"},
        },
        "suppression": {"events": ["unsubscribe"], "attributes": [{"dnc": True}]},
    }
    return Playbook.model_validate(data)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Event], dict[str, dict[str, Any]]]:
    n = draw(st.integers(min_value=0, max_value=40))
    events = []
    for i in range(n):
        name = draw(st.sampled_from(EVENTS))
        props = {"url": draw(st.sampled_from(URLS))} if name == "page_view" else {}
        # Coarse times make ties and shared cap windows common.
        ts = START_US + draw(st.integers(0, 40)) * draw(
            st.sampled_from([DAY_US // 4, DAY_US, 5 * DAY_US])
        )
        events.append(
            Event.create(
                draw(st.sampled_from(["a", "b", "c"])),
                name,
                ts,
                f"e{draw(st.integers(0, 999)):03d}-{i}",
                props,
            )
        )
    leads = {}
    for lead in draw(st.lists(st.sampled_from(["a", "b", "d"]), unique=True)):
        leads[lead] = {
            "Title": draw(st.sampled_from(["CEO", "Student", "", "Select", "VP Sales", None])),
            "size": draw(st.sampled_from(["10", "120", "5000", "n/a", None])),
            "DNC": draw(st.sampled_from(["Yes", "No", None])),
        }
    return events, leads


def incremental_score(
    playbook: Playbook,
    events: list[Event],
    leads: dict[str, dict[str, Any]],
    as_of_us: int,
    rng: random.Random,
) -> dict[str, tuple[ScoredLead, dict[tuple[str, str], EngagementLine]]]:
    """Feed the events to the incremental scorer in a shuffled order."""
    from pyrometer.core.conditions import normalize_record

    shuffled = [e for e in events if e.ts_us <= as_of_us]
    rng.shuffle(shuffled)
    states = {}
    books: dict[str, dict[tuple[str, str], EngagementLine]] = {}
    for lead, attrs in leads.items():
        states[lead] = apply_attributes(
            playbook, new_state(lead), normalize_record(attrs), START_US
        ).state
    for event in shuffled:
        state = states.get(event.lead_id)
        if state is None:
            state = apply_attributes(playbook, new_state(event.lead_id), {}, START_US).state
        step = apply_event(playbook, state, event)
        states[event.lead_id] = step.state
        upsert(books.setdefault(event.lead_id, {}), step.lines)
    return {
        lead: (snapshot(playbook, state, as_of_us), books.get(lead, {}))
        for lead, state in states.items()
    }


def assert_same(expected: ScoredLead, actual: ScoredLead, engine: str) -> None:
    label = f"{engine}, lead {expected.lead_id}"
    assert close(expected.fit, actual.fit), label
    assert close(expected.engagement, actual.engagement), (label, expected, actual)
    assert expected.temperature == actual.temperature, label
    assert expected.stage == actual.stage, label
    assert expected.funnel == actual.funnel, label
    assert expected.suppressed == actual.suppressed, label
    assert expected.last_activity_us == actual.last_activity_us, label
    assert expected.event_count == actual.event_count, label


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    playbook=playbooks(),
    stream=streams(),
    as_of_days=st.integers(0, 420),
    seed=st.integers(0, 2**16),
    slices=st.sampled_from([None, 2, 3]),
)
@pytest.mark.parametrize("native", PASS1)
def test_incremental_and_batch_equal_reference(
    playbook, stream, as_of_days, seed, slices, native
) -> None:
    events, leads = stream
    as_of_us = START_US + as_of_days * DAY_US // 2
    expected = score_reference(playbook, events, leads, as_of_us)

    batch = batch_score(playbook, events, leads, as_of_us, slices=slices, native=native)
    assert set(batch) == set(expected)
    for lead, want in expected.items():
        assert_same(want, batch[lead], "batch")
    if native:
        return  # the incremental engine does not depend on how the batch runs pass 1

    incremental = incremental_score(playbook, events, leads, as_of_us, random.Random(seed))
    for lead, want in expected.items():
        got, book = incremental[lead]
        assert_same(want, got, "incremental")
        # The ledger the incremental steps built is the reference ledger, line for line.
        lines = revalue(playbook, book.values(), as_of_us)
        assert {(x.rule, x.event_id): x.points for x in lines} == {
            (x.rule, x.event_id): x.points for x in want.engagement_lines
        }
        assert close(sum(x.value for x in lines), want.engagement)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(playbook=playbooks(), stream=streams(), as_of_days=st.integers(0, 420))
@pytest.mark.parametrize("native", PASS1)
def test_events_around_1970_score_as_reference(playbook, stream, as_of_days, native) -> None:
    """Times before the epoch: days and cap windows must floor, not truncate towards 0
    (the batch engine divides plainly only when no event is older than 1970)."""
    shift = START_US + 10 * DAY_US + DAY_US // 3  # the streams now straddle 1970-01-01
    events = [replace(event, ts_us=event.ts_us - shift) for event in stream[0]]
    as_of_us = START_US + as_of_days * DAY_US // 2 - shift
    expected = score_reference(playbook, events, stream[1], as_of_us)
    batch = batch_score(playbook, events, stream[1], as_of_us, native=native)
    assert set(batch) == set(expected)
    for lead, want in expected.items():
        assert_same(want, batch[lead], "batch")


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(playbook=playbooks(), stream=streams(), as_of_days=st.integers(0, 420))
def test_batch_ledger_equals_reference_and_adds_up(playbook, stream, as_of_days) -> None:
    events, leads = stream
    as_of_us = START_US + as_of_days * DAY_US // 2
    expected = score_reference(playbook, events, leads, as_of_us)
    explained = batch_score(playbook, events, leads, as_of_us, explain=True)
    for lead, want in expected.items():
        got = explained[lead]
        assert [(x.rule, x.event_id, x.points) for x in got.engagement_lines] == [
            (x.rule, x.event_id, x.points)
            for x in sorted(
                want.engagement_lines,
                key=lambda x: (x.ts_us, x.event_id, playbook_rule_index(playbook, x.rule)),
            )
        ]
        total = sum(x.value for x in got.engagement_lines) + sum(x.points for x in got.fit_lines)
        assert close(total, got.score)
        assert {x.rule for x in got.fit_lines} == {x.rule for x in want.fit_lines}


def playbook_rule_index(playbook: Playbook, name: str) -> int:
    return [rule.name for rule in playbook.engagement].index(name)


@given(playbook=playbooks(), stream=streams(), later=st.integers(1, 400))
def test_scores_read_later_have_decayed_and_past_is_unchanged(playbook, stream, later) -> None:
    as_of_us = START_US + 41 * DAY_US
    events = [event for event in stream[0] if event.ts_us <= as_of_us]
    leads = stream[1]
    now = score_reference(playbook, events, leads, as_of_us)
    then = score_reference(playbook, events, leads, as_of_us + later * DAY_US)
    for lead, scored in now.items():
        assert abs(then[lead].engagement) <= abs(scored.engagement) + 1e-9
        assert then[lead].fit == scored.fit
    again = score_reference(playbook, events, leads, as_of_us)
    assert again == now


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25, deadline=None)
@given(
    paths=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 39), st.integers(0, 30)),
        max_size=40,
    ),
    sections=st.sampled_from([3, 12, 40]),
)
@pytest.mark.parametrize("native", PASS1)
def test_many_conditions_on_one_event_name(paths, sections, native) -> None:
    """More conditions on one name than get a table row per combination, or than the
    engine has bits for: same scores."""
    playbook = Playbook.model_validate(
        {
            "decay": {"half_life": "7d", "step": "1d"},
            "engagement": [
                {
                    "name": f"section{i}",
                    "points": 1.0 + i,
                    "event": "page_view",
                    "where": {"url": {"contains": f"/s{i}/"}},
                    **({"cap": {"points": 2.0 + i, "per": "1d"}} if i % 2 else {}),
                }
                for i in range(sections)
            ]
            + [{"name": "any_page", "points": 0.5, "event": "page_view", "cap": {"points": 1}}],
            "temperature": {"warm": 5, "hot": 10},
            "lifecycle": {"mql": {"score": {"gte": 5}}, "events": {}},
        }
    )
    events = [
        Event.create(
            lead, "page_view", START_US + day * DAY_US // 3, f"e{i}", {"url": f"/s{section}/x"}
        )
        for i, (lead, section, day) in enumerate(paths)
    ]
    as_of_us = START_US + 12 * DAY_US
    expected = score_reference(playbook, events, {}, as_of_us)
    batch = batch_score(playbook, events, {}, as_of_us, native=native)
    assert set(batch) == set(expected)
    for lead, want in expected.items():
        assert_same(want, batch[lead], "batch")
