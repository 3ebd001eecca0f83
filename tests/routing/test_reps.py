"""Reps: parsing with errors naming the field, working hours, time zones."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.core.timeutil import parse_time_us
from pyrometer.routing.reps import Rep, RepError, WorkingHours, parse_rep


def rep(**fields: object) -> Rep:
    return parse_rep({"id": "kim", "name": "Kim", "email": "kim@example.com", **fields})


def test_a_rep_with_every_field_parses() -> None:
    kim = rep(
        capacity=40,
        territory={"Country": ["LT", "LV", "EE"]},
        timezone="Europe/Vilnius",
        hours="09:00-17:00",
    )
    assert kim.capacity == 40 and kim.timezone == "Europe/Vilnius"
    assert kim.hours == WorkingHours(start=9 * 3600, end=17 * 3600)
    assert kim.covers({"country": "lt"}) and not kim.covers({"country": "DE"})
    assert not kim.covers({})


def test_a_rep_round_trips_through_plain_data() -> None:
    kim = rep(
        capacity=40,
        territory={"country": ["LT", "LV"], "company_size": {"gte": 500, "not": {"missing": True}}},
        timezone="America/New_York",
        hours="22:00-24:00",
        away=True,
    )
    assert parse_rep(json.loads(json.dumps(kim.to_dict()))) == kim
    assert parse_rep(rep().to_dict()) == rep()


def test_bad_fields_are_named() -> None:
    with pytest.raises(RepError) as caught:
        parse_rep(
            {
                "id": "kim smith",
                "name": " ",
                "email": "kim",
                "capacity": 0,
                "territory": {"country": {"gtx": 5}},
                "timezone": "Europe/Atlantis",
                "hours": "9am-5pm",
                "colour": "red",
            }
        )
    fields = [field for field, _ in caught.value.problems]
    assert fields == [
        "id",
        "name",
        "email",
        "capacity",
        "territory.country.gtx",
        "timezone",
        "hours",
        "colour",
    ]
    text = str(caught.value)
    assert "unknown time zone 'Europe/Atlantis'" in text
    assert "expected a time like 09:00, got '9am'" in text


def test_a_bad_regex_in_a_territory_is_named() -> None:
    with pytest.raises(RepError) as caught:
        rep(territory={"email": {"regex": "(?<=x)y"}})
    assert caught.value.problems[0][0] == "territory.email.regex"


@pytest.mark.parametrize("text", ["09:00", "25:00-26:00", "09:60-17:00", "09:00-09:00", "x-y"])
def test_bad_working_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        WorkingHours.parse(text)


def test_whole_day_and_night_shift_hours() -> None:
    assert WorkingHours.parse("00:00-24:00").contains(0)
    assert WorkingHours.parse("00:00-24:00").contains(86_399.9)
    night = WorkingHours.parse("22:00-06:00")
    assert night.crosses_midnight
    assert night.contains(23 * 3600) and night.contains(3600) and night.contains(22 * 3600)
    assert not night.contains(6 * 3600) and not night.contains(12 * 3600)


@given(
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 24),
    st.integers(0, 59),
    st.integers(0, 86_399),
)
def test_working_hours_parse_back_and_contain_their_start(
    h1: int, m1: int, h2: int, m2: int, second: int
) -> None:
    if h2 == 24:
        m2 = 0
    text = f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if start == end % 86_400 and not (start == 0 and end == 86_400):
        with pytest.raises(ValueError):
            WorkingHours.parse(text)
        return
    hours = WorkingHours.parse(text)
    assert str(hours) == text
    assert hours.contains(start)
    assert not hours.contains(end % 86_400) or (start == 0 and end == 86_400)
    # A range and its complement (the same clock times, swapped) split the day.
    if end != 86_400 and start != 0:
        rest = WorkingHours.parse(f"{h2:02d}:{m2:02d}-{h1:02d}:{m1:02d}")
        assert hours.contains(second) != rest.contains(second)


def test_working_hours_are_read_on_the_reps_own_clock() -> None:
    vilnius = rep(timezone="Europe/Vilnius", hours="09:00-17:00")
    new_york = rep(id="lee", timezone="America/New_York", hours="09:00-17:00")
    night = rep(id="max", timezone="America/New_York", hours="22:00-06:00")
    # 2026-12-01T12:00Z is 14:00 in Vilnius (UTC+2) and 07:00 in New York (UTC-5).
    noon = parse_time_us("2026-12-01T12:00:00Z")
    assert vilnius.in_hours(noon) and not new_york.in_hours(noon) and not night.in_hours(noon)
    # 2026-12-02T04:00Z is 06:00 in Vilnius and 23:00 the day before in New York.
    late = parse_time_us("2026-12-02T04:00:00Z")
    assert not vilnius.in_hours(late) and not new_york.in_hours(late) and night.in_hours(late)
    # Summer time: 2026-07-01T06:30Z is 09:30 in Vilnius (UTC+3), not 08:30.
    assert vilnius.in_hours(parse_time_us("2026-07-01T06:30:00Z"))
    assert not vilnius.in_hours(parse_time_us("2026-12-01T06:30:00Z"))
    assert rep().in_hours(late)  # no hours: always reachable
