"""The accepted range of times is defined once (core.timeutil) and every time renders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.core.timeutil import (
    MAX_US,
    MIN_US,
    TimeRangeError,
    check_us,
    iso,
    parse_time_us,
    parse_timestamp,
    to_us,
)


def test_the_range_is_1900_to_2199() -> None:
    assert iso(MIN_US) == "1900-01-01T00:00:00Z"
    assert iso(MAX_US) == "2199-12-31T23:59:59.999999Z"
    assert check_us(MIN_US) == MIN_US and check_us(MAX_US) == MAX_US
    for outside in (MIN_US - 1, MAX_US + 1):
        with pytest.raises(TimeRangeError, match="from 1900-01-01T00:00:00Z"):
            check_us(outside)


def test_year_0_in_utc_is_refused_and_named() -> None:
    # Valid text, but year 0 once the +14:00 offset is taken off.
    with pytest.raises(TimeRangeError, match=r"got 0000-12-31T10:00:00Z"):
        parse_time_us("0001-01-01T00:00:00+14:00")
    with pytest.raises(TimeRangeError):
        parse_time_us("9999-12-31T23:59:59-14:00")  # year 10000 in UTC
    assert parse_time_us("2026-11-23T10:00:00Z") == to_us("2026-11-23T10:00:00Z")


@given(st.datetimes(timezones=st.just(UTC)))
def test_iso_of_any_datetime_is_its_isoformat(moment: datetime) -> None:
    us = to_us(moment)
    assert parse_timestamp(iso(us) or "") == moment


@given(st.integers(min_value=-(10**19), max_value=10**19))
def test_iso_renders_any_integer_and_counts_days_exactly(us: int) -> None:
    """Rows stored before the range was enforced still render: years outside 1..9999 in
    ISO 8601's expanded form, one day after is always the next calendar day."""
    text = iso(us)
    assert text is not None and text.endswith("Z")
    following = iso(us + 86_400_000_000)
    assert following is not None
    if -62_135_596_800_000_000 <= us <= 253_402_214_400_000_000:  # datetime's own range
        expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
        assert text == expected.isoformat().replace("+00:00", "Z")
    time_of_day = text.rsplit("T", 1)[1]
    assert following.rsplit("T", 1)[1] == time_of_day
