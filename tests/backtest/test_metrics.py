"""What a backtest counts, checked against a plain recount and by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.backtest.metrics import (
    DAY_US,
    LeadOutcome,
    Outcome,
    Tally,
    compute,
    converted_within,
    is_open,
    lead_outcomes,
)
from pyrometer.backtest.sweep import Timeline

TIMES = [i * DAY_US for i in range(10)]
HORIZON = 3 * DAY_US


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Timeline], dict[str, LeadOutcome]]:
    timelines, outcomes = [], {}
    for n in range(draw(st.integers(0, 8))):
        lead = f"L{n}"
        first = draw(st.integers(0, 9))
        temps = draw(
            st.lists(
                st.sampled_from(["hot", "warm", "cold"]), min_size=10 - first, max_size=10 - first
            )
        )
        timelines.append(Timeline.of(lead, first, temps))
        kind = draw(st.sampled_from(["open", "won", "lost"]))
        if kind != "open":
            at = draw(st.integers(-1, 12)) * DAY_US + draw(st.sampled_from([0, DAY_US // 2]))
            outcomes[lead] = LeadOutcome(at if kind == "won" else None, at)
    return timelines, outcomes


@given(histories(), st.sampled_from([None, 0.5, 1.0, 2.0]))
def test_tally_equals_a_plain_recount(history, capacity) -> None:
    timelines, outcomes = history
    m = compute(TIMES, timelines, outcomes, HORIZON, capacity)
    # The recount: every (lead, step) pair, open ones only, straight from the definitions.
    rows = []
    for t in timelines:
        for step in range(t.first_step, len(TIMES)):
            if is_open(outcomes.get(t.lead_id), TIMES[step]):
                won = converted_within(outcomes.get(t.lead_id), TIMES[step], HORIZON)
                rows.append((t.lead_id, step, t.at(step), won))
    assert m.observations == len(rows)
    assert m.converted == sum(r[3] for r in rows)
    for band in m.bands:
        mine = [r for r in rows if r[2] == band.band]
        assert band.observations == len(mine)
        assert band.converted == sum(r[3] for r in mine)
        assert band.leads == len({r[0] for r in mine})
        if band.rate is not None and m.base_rate:
            assert math.isclose(band.lift or 0, band.rate / m.base_rate)
    hot_rows = [r for r in rows if r[2] == "hot"]
    if hot_rows:
        assert m.hot_precision == sum(r[3] for r in hot_rows) / len(hot_rows)
    if m.converted:
        assert m.hot_recall == sum(r[3] for r in hot_rows) / m.converted
    by = {(r[0], r[1]): r[2] for r in rows}
    new_hot = [
        sum(
            1
            for (lead, s), temp in by.items()
            if s == step and step > 0 and temp == "hot" and by.get((lead, s - 1)) != "hot"
        )
        for step in range(len(TIMES))
    ]
    assert list(m.new_hot_per_step) == new_hot
    pairs = [(k, v) for k, v in by.items() if (k[0], k[1] - 1) in by]
    if pairs:
        assert m.churn == sum(by[(k[0], k[1] - 1)] != v for k, v in pairs) / len(pairs)

    def won_at(lead: str) -> int | None:
        outcome = outcomes.get(lead)
        return outcome.won_us if outcome else None

    won = {r[0] for r in rows if (w := won_at(r[0])) is not None and w <= TIMES[-1] + HORIZON}
    assert m.won_leads == len(won)
    hot_won = {r[0] for r in rows if r[0] in won and r[2] == "hot"}
    assert m.won_hot_before == len(hot_won)
    firsts = sorted(
        (won_at(lead) - min(TIMES[r[1]] for r in rows if r[0] == lead and r[2] == "hot")) / DAY_US
        for lead in hot_won
    )
    assert list(m.lead_time_days) == firsts
    assert all(d > 0 for d in firsts)
    if capacity is not None:
        assert m.steps_over_capacity == sum(1 for n in new_hot[1:] if n > capacity)
    if len(rows) and m.new_hot_per_day is not None:
        assert math.isclose(m.new_hot_per_day, sum(new_hot) / (len(TIMES) - 1))


@given(histories(), st.integers(0, 8), st.sampled_from([None, 1.0]))
def test_tallies_of_some_leads_merged_count_what_one_tally_counts(history, split, capacity) -> None:
    timelines, outcomes = history
    whole, part, rest = (Tally(TIMES, outcomes, HORIZON, capacity) for _ in range(3))
    for i, timeline in enumerate(timelines):
        whole.add(timeline)
        (part if i < split else rest).add(timeline)
    part.merge(rest)
    assert part.result() == whole.result()
    with pytest.raises(ValueError):
        part.merge(Tally(TIMES[1:], outcomes, HORIZON, capacity))


def test_hand_counted_example() -> None:
    # a: hot from day 1, won on day 2.5 -> hot 1.5 days before.  b: cold, never won.
    # c: warm then lost on day 1.5 -> not counted from day 2.
    timelines = [
        Timeline.of("a", 1, ("hot", "hot", "hot")),
        Timeline.of("b", 0, ("cold",) * 4),
        Timeline.of("c", 0, ("warm", "warm", "hot", "hot")),
    ]
    outcomes = lead_outcomes(
        [
            Outcome("a", "won", int(2.5 * DAY_US)),
            Outcome("c", "lost", int(1.5 * DAY_US)),
            Outcome("a", "won", 9 * DAY_US),  # a later repeat purchase: the first win counts
        ]
    )
    m = compute(TIMES[:4], timelines, outcomes, HORIZON, capacity_per_day=0.5)
    assert m.observations == 2 + 4 + 2  # a at days 1 and 2; b all; c days 0 and 1
    assert (m.band("hot").observations, m.band("hot").converted) == (2, 2)
    assert m.band("warm").converted == 0
    assert m.base_rate == 2 / 8
    assert m.band("hot").lift == 4.0
    assert (m.hot_precision, m.hot_recall) == (1.0, 1.0)
    assert (m.won_leads, m.won_hot_before, m.lead_time_days) == (1, 1, (1.5,))
    assert m.new_hot_per_step == (0, 1, 0, 0)
    assert m.steps_over_capacity == 1
    assert m.churn == 0.0  # a: hot-hot; b: cold x3; c: warm-warm (then closed)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="increase"):
        compute([2, 1], [], {}, HORIZON)
    with pytest.raises(ValueError, match="lead x: unknown temperature"):
        compute(TIMES[:1], [Timeline.of("x", 0, ("boiling",))], {}, HORIZON)
