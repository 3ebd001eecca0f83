"""The dashboard's pure shaping of service answers: countdowns, reasons, chart geometry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.model import Event
from pyrometer.core.playbook import load_playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.dashboard import views

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY_US = 86_400_000_000


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_countdown_runs_then_is_overdue_and_stops_at_the_first_touch() -> None:
    started = NOW - timedelta(minutes=1)
    clock = {"clock_started_at": _iso(started), "sla_due_at": _iso(started + timedelta(minutes=5))}
    assert views.countdown(clock, NOW) == {
        "state": "running",
        "text": "4:00 left",
        "due": clock["sla_due_at"],
    }
    assert views.countdown(clock, NOW + timedelta(minutes=6))["text"] == "2:00 overdue"
    assert views.countdown(clock, NOW + timedelta(days=3))["text"] == "2 days overdue"
    touched = {**clock, "first_touch_at": _iso(started + timedelta(seconds=90))}
    assert views.countdown(touched, NOW)["text"] == "touched after 1 min"
    breached = {**clock, "breached_at": _iso(started + timedelta(minutes=5))}
    assert views.countdown(breached, NOW) == {"state": "breached", "text": "SLA missed"}
    assert views.countdown(None, NOW)["state"] == "none"


def test_top_reasons_are_the_lines_worth_most_today() -> None:
    ledger = [
        {"rule": "a", "value": 3.0},
        {"rule": "b", "value": 20.0},
        {"rule": "c", "value": -5.0},
        {"rule": "d", "value": 8.0},
        {"rule": "e", "value": 0.01},
    ]
    assert [line["rule"] for line in views.top_reasons(ledger)] == ["b", "d", "a"]


def test_a_name_is_read_from_common_attributes_else_the_email_else_the_id() -> None:
    assert (
        views.display_name({"lead_id": "x", "attributes": {"first_name": "Ann", "last_name": "Li"}})
        == "Ann Li"
    )
    assert (
        views.display_name({"lead_id": "x", "attributes": {"email": "a@b.example"}})
        == "a@b.example"
    )
    assert views.display_name({"lead_id": "x", "attributes": {}}) == "x"


BOOK = load_playbook()
NAMES = ["page_view", "pricing_page_view", "email_open", "email_click", "demo_request", "x"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.integers(min_value=0, max_value=45 * DAY_US)),
        max_size=25,
    ),
    st.integers(min_value=0, max_value=DAY_US),
)
def test_the_score_series_is_the_engines_score_at_every_moment(
    happenings: list[tuple[str, int]], offset: int
) -> None:
    """Each point of the chart is what the reference scorer says as of that moment, and
    between two points the score does not move (so drawing steps is drawing the truth)."""
    now = 20_000 * DAY_US + offset
    base = now - 45 * DAY_US
    events = [
        Event.create("L", name, base + at, f"e{i}") for i, (name, at) in enumerate(happenings)
    ]
    attrs = {"job_title": "VP Sales"}
    today = score_lead_reference(BOOK, "L", events, attrs, now).to_dict(ledger=True)
    series = views.score_series(today["ledger"], today["fit"], BOOK.decay, now)
    assert series[0][0] == now - 30 * DAY_US and series[-1][0] == now
    for t, value in series:
        truth = score_lead_reference(BOOK, "L", events, attrs, t).score
        assert abs(value - truth) <= 0.006, (t, value, truth)
    for (t, value), (t_next, _) in itertools.pairwise(series):
        middle = (t + t_next) // 2
        if middle > t:
            truth = score_lead_reference(BOOK, "L", events, attrs, middle).score
            assert abs(value - truth) <= 0.006, (middle, value, truth)


def test_the_chart_draws_steps_not_slopes() -> None:
    chart = views.line_chart([(0, 10.0), (100, 30.0), (200, 30.0)], {"hot": 50.0, "warm": 25.0})
    moves = [tuple(float(n) for n in part[1:].split(",")) for part in chart["path"].split()]
    # Every segment is horizontal or vertical.
    for (x0, y0), (x1, y1) in itertools.pairwise(moves):
        assert x0 == x1 or y0 == y1


@given(
    st.lists(st.floats(min_value=-50, max_value=500), min_size=2, max_size=40),
    st.floats(min_value=1, max_value=80),
)
def test_chart_points_and_reference_lines_stay_inside_the_drawing(
    values: list[float], warm: float
) -> None:
    series = [(i * 1000, v) for i, v in enumerate(values)]
    chart = views.line_chart(series, {"hot": warm + 30, "warm": warm})
    for part in chart["path"].split():
        x, y = (float(n) for n in part[1:].split(","))
        assert chart["x0"] - 0.1 <= x <= chart["x1"] + 0.1
        assert 0 <= y <= chart["base"] + 0.1
    hot, warm_line = chart["lines"]
    assert hot["y"] < warm_line["y"]  # higher score, higher on the page


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=10))
def test_bars_scale_to_the_longest(counts: list[int]) -> None:
    rows = [{"value": str(i), "leads": n} for i, n in enumerate(counts)]
    drawn = views.bars(rows, "value", "leads", width=300)
    assert max(b["length"] for b in drawn) == (300 if max(counts) else 0)
    assert all(0 <= b["length"] <= 300 for b in drawn)


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=24))
def test_span_columns_stay_inside_and_keep_their_proportions(counts: list[tuple[int, int]]) -> None:
    spans = [
        {"start": "2026-11-23T09:00:00Z", "new_leads": a, "temperature:hot": b} for a, b in counts
    ]
    chart = views.span_chart(spans, ["new_leads", "temperature:hot"])
    top = max(max(a, b) for a, b in counts)
    for column in chart["columns"]:
        assert chart["x0"] <= column["x"] and column["x"] + column["width"] <= chart["width"] + 0.1
        assert column["y"] >= 0 and column["y"] + column["height"] <= chart["base"] + 0.1
        if top:
            expected = column["value"] / top * (chart["base"] - 8)
            assert abs(column["height"] - expected) <= 0.06
