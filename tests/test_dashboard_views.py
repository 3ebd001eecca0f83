"""The dashboard's pure shaping of service answers: countdowns, reasons, chart geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

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


def test_the_score_series_halves_each_half_life_and_starts_at_fit() -> None:
    now = 100 * DAY_US
    ledger = [
        {"kind": "fit", "rule": "f", "points": 5.0, "value": 5.0},
        {"kind": "engagement", "timestamp": "1970-03-22T00:00:00Z", "points": 40.0, "value": 0},
    ]
    series = views.score_series(ledger, 5.0, 10 * DAY_US, now, days=30, points=31)
    assert series[0] == (70 * DAY_US, 5.0)  # before the event: fit alone
    event_day = 80  # 1970-03-22 is day 80
    at_event = dict(series)[event_day * DAY_US]
    assert at_event == 45.0
    assert dict(series)[(event_day + 10) * DAY_US] == 25.0  # one half-life later


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
