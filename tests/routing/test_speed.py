"""Speed-to-lead figures: percentiles as a sorted list defines them, shares that are
shares, and everyone's figures the sum of the reps'."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from pyrometer.routing.speed import (
    FIVE_MINUTES_US,
    Routed,
    nearest_rank,
    speed_by_rep,
    speed_of,
)

MINUTE = 60_000_000


@st.composite
def routed(draw: st.DrawFn) -> Routed:
    clock = draw(st.integers(0, 10**12))
    wait = draw(st.none() | st.integers(0, 60 * MINUTE))
    due = clock + draw(st.integers(1, 30 * MINUTE))
    return Routed(
        draw(st.sampled_from(["ana", "kim", "lee", None])),
        clock,
        None if wait is None else clock + wait,
        due,
        draw(st.booleans()),
    )


rows_strategy = st.lists(routed(), max_size=60)


@given(st.lists(st.integers(-(10**9), 10**9), min_size=1), st.integers(1, 100))
def test_nearest_rank_is_the_sorted_lists_value(values: list[int], percent: int) -> None:
    ordered = sorted(values)
    value = nearest_rank(ordered, percent)
    # The smallest value with at least percent% of the values at or below it.
    at_or_below = sum(1 for v in ordered if v <= value)
    assert at_or_below * 100 >= percent * len(ordered)
    assert sum(1 for v in ordered if v < value) * 100 < percent * len(ordered)
    assert value == ordered[math.ceil(percent * len(ordered) / 100) - 1]


@given(rows_strategy)
def test_median_and_p90_are_the_waits_sorted(rows: list[Routed]) -> None:
    speed = speed_of(rows)
    waits = sorted(r.first_touch_us - r.clock_us for r in rows if r.first_touch_us is not None)
    assert speed.touched == len(waits)
    if not waits:
        assert speed.median_us is None and speed.p90_us is None
        return
    n = len(waits)
    assert speed.median_us == waits[(n + 1) // 2 - 1]
    assert speed.p90_us == waits[math.ceil(0.9 * n) - 1]
    assert waits[0] <= speed.median_us <= speed.p90_us <= waits[-1]


@given(rows_strategy)
def test_shares_are_shares_and_groups_partition_the_rows(rows: list[Routed]) -> None:
    speed = speed_of(rows)
    for share in (speed.within_sla_share, speed.touched_share):
        assert share is None if not rows else 0 <= share <= 1
    assert speed.within_sla <= speed.touched <= speed.routed == len(rows)
    groups = (speed.within_5_minutes, speed.later, speed.not_touched)
    assert sum(g.leads for g in groups) == len(rows)
    assert sum(g.converted for g in groups) == sum(r.converted for r in rows)
    assert speed.not_touched.leads == len(rows) - speed.touched
    for group in groups:
        assert group.rate is None if group.leads == 0 else 0 <= group.rate <= 1
    fast = [r for r in rows if r.first_touch_us is not None]
    fast = [r for r in fast if r.first_touch_us - r.clock_us <= FIVE_MINUTES_US]
    assert speed.within_5_minutes.leads == len(fast)


@given(rows_strategy)
def test_overall_counts_are_the_sum_of_the_reps(rows: list[Routed]) -> None:
    by_rep, overall = speed_by_rep(rows)
    assert set(by_rep) == {r.rep for r in rows}
    for name in ("routed", "touched", "within_sla"):
        assert getattr(overall, name) == sum(getattr(s, name) for s in by_rep.values())
    for group in ("within_5_minutes", "later", "not_touched"):
        parts = [getattr(s, group) for s in by_rep.values()]
        assert getattr(overall, group).leads == sum(p.leads for p in parts)
        assert getattr(overall, group).converted == sum(p.converted for p in parts)
    assert overall == speed_of(rows)


def test_a_small_case_by_hand() -> None:
    rows = [
        Routed("ana", 0, 2 * MINUTE, 5 * MINUTE, True),
        Routed("ana", 0, None, 5 * MINUTE, False),
        Routed("kim", 0, 10 * MINUTE, 5 * MINUTE, False),
        Routed("kim", 0, 5 * MINUTE, 5 * MINUTE, True),  # at the due time: within
    ]
    by_rep, overall = speed_by_rep(rows)
    assert (overall.routed, overall.touched, overall.within_sla) == (4, 3, 2)
    assert (overall.median_us, overall.p90_us) == (5 * MINUTE, 10 * MINUTE)
    assert overall.within_5_minutes.rate == 1.0 and overall.later.rate == 0.0
    assert by_rep["ana"].later.rate is None
    assert by_rep["kim"].median_us == 5 * MINUTE
