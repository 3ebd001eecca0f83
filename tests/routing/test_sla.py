"""When the first touch is due: wall time by default, the rep's working hours on request."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.playbook import Routing
from pyrometer.core.timeutil import iso, parse_time_us
from pyrometer.routing.reps import Rep, parse_rep
from pyrometer.routing.sla import sla_deadline_us

MINUTE = 60_000_000
WALL = Routing()
HOURS = Routing(sla_working_hours=True)


def rep(timezone: str = "Europe/Vilnius", hours: str | None = "09:00-17:00") -> Rep:
    data = {"id": "kim", "name": "Kim", "email": "kim@example.com", "timezone": timezone}
    return parse_rep({**data, "hours": hours} if hours else data)


def test_the_default_sla_is_5_minutes_of_wall_time() -> None:
    at = parse_time_us("2026-12-01T14:58:00Z")  # 16:58 in Vilnius
    assert sla_deadline_us(WALL, at, rep()) == at + 5 * MINUTE
    assert sla_deadline_us(HOURS, at, None) == at + 5 * MINUTE  # the unassigned queue
    assert sla_deadline_us(HOURS, at, rep(hours=None)) == at + 5 * MINUTE


def test_in_working_hours_a_lead_routed_at_16_58_is_due_at_09_03_next_day() -> None:
    at = parse_time_us("2026-12-01T14:58:00Z")  # 16:58 in Vilnius (UTC+2)
    assert iso(sla_deadline_us(HOURS, at, rep())) == "2026-12-02T07:03:00Z"  # 09:03 local
    # Routed in the evening or the night: the whole 5 minutes start at 09:00.
    evening = parse_time_us("2026-12-01T20:00:00Z")
    assert iso(sla_deadline_us(HOURS, evening, rep())) == "2026-12-02T07:05:00Z"
    early = parse_time_us("2026-12-02T03:00:00Z")  # 05:00 local
    assert iso(sla_deadline_us(HOURS, early, rep())) == "2026-12-02T07:05:00Z"
    # Inside the hours it is plain wall time.
    noon = parse_time_us("2026-12-01T10:00:00Z")
    assert sla_deadline_us(HOURS, noon, rep()) == noon + 5 * MINUTE
    # Every day is a working day: Saturday 2026-12-05 16:58 is due Sunday 09:03.
    saturday = parse_time_us("2026-12-05T14:58:00Z")
    assert iso(sla_deadline_us(HOURS, saturday, rep())) == "2026-12-06T07:03:00Z"


def test_night_shift_hours_across_midnight_in_new_york() -> None:
    owl = rep("America/New_York", "22:00-06:00")
    at = parse_time_us("2026-12-02T10:58:00Z")  # 05:58 in New York (UTC-5)
    assert iso(sla_deadline_us(HOURS, at, owl)) == "2026-12-03T03:03:00Z"  # 22:03 local
    midnight = parse_time_us("2026-12-02T04:58:00Z")  # 23:58: the clock runs past 00:00
    assert sla_deadline_us(HOURS, midnight, owl) == midnight + 5 * MINUTE


def test_a_long_sla_spans_several_working_days() -> None:
    policy = Routing(sla="20h", sla_working_hours=True)
    at = parse_time_us("2026-12-01T07:00:00Z")  # 09:00 Vilnius: 8 + 8 + 4 hours
    assert iso(sla_deadline_us(policy, at, rep())) == "2026-12-03T11:00:00Z"  # 13:00 local


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 365 * 24 * 60),
    st.integers(1, 600),
    st.sampled_from(["Europe/Vilnius", "America/New_York", "Asia/Kolkata", "UTC"]),
    st.sampled_from(["09:00-17:00", "22:00-06:00", "00:00-24:00", "08:30-12:15"]),
)
def test_the_working_hours_clock_counts_exactly_the_sla_in_hours(
    minute: int, sla_minutes: int, zone: str, hours: str
) -> None:
    """Counting minute by minute from the routing time, the deadline is the instant the
    SLA's minutes of working time have passed (and it is never earlier than wall time)."""
    someone = rep(zone, hours)
    at = parse_time_us("2026-01-01T00:00:00Z") + minute * MINUTE
    policy = Routing(sla=f"{sla_minutes}m", sla_working_hours=True)
    due = sla_deadline_us(policy, at, someone)
    assert due >= at + sla_minutes * MINUTE
    counted, t = 0, at
    while counted < sla_minutes:
        counted += someone.in_hours(t)
        t += MINUTE
    assert due == t
    assert someone.in_hours(due - 1)
