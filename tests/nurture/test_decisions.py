"""The pure nurture decisions: caps, quiet hours, steps, exits, consent, variants."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.core.nurture_spec import Caps, Nurture, QuietHours, Sequence
from pyrometer.nurture import consent, plan, pressure, variants

HOUR = 3_600_000_000
DAY = pressure.DAY_US
T0 = int(datetime(2026, 11, 23, 9, tzinfo=UTC).timestamp() * 1_000_000)


def seq(**extra: object) -> Sequence:
    data = {
        "name": "s",
        "enrol": {"event": "whitepaper_download", "temperature": ["cold"]},
        "steps": [
            {"email": {"subject": "a", "text": "x"}},
            {"wait": "3d"},
            {"wait": "1d"},
            {"task": {"title": "call"}},
        ],
    }
    data.update(extra)
    return Sequence.model_validate(data)


def test_steps_and_waits() -> None:
    s = seq()
    assert plan.start(s, T0) == plan.Position(0, T0)
    assert plan.after(s, 0, T0) == plan.Position(3, T0 + 4 * DAY)
    assert plan.after(s, 3, T0) == plan.Position(None, None)
    opens_with_wait = seq(steps=[{"wait": "2h"}, {"email": {"subject": "a", "text": "x"}}])
    assert plan.start(opens_with_wait, T0) == plan.Position(1, T0 + 2 * HOUR)


def test_enrol_filters_reentry_and_exits() -> None:
    s = seq()
    cold = plan.LeadView("l", "cold", "lead", {})
    download = plan.Trigger(event="whitepaper_download")
    assert plan.should_enrol(s, download, cold, enrolled_before=False, active_now=False)
    assert not plan.should_enrol(s, download, cold, enrolled_before=True, active_now=False)
    assert not plan.should_enrol(s, download, cold, enrolled_before=False, active_now=True)
    warm = plan.LeadView("l", "warm", "lead", {})
    assert not plan.should_enrol(s, download, warm, enrolled_before=False, active_now=False)
    again = seq(reentry=True)
    assert plan.should_enrol(again, download, cold, enrolled_before=True, active_now=False)
    # An enrol event named by an alias fires on the event it stands for.
    alias = seq(enrol={"event": "Whitepaper Downloaded", "temperature": ["cold"]})
    assert not plan.should_enrol(alias, download, cold, False, False)
    means = {"whitepaper_downloaded": "whitepaper_download"}
    assert plan.should_enrol(
        alias, download, cold, False, False, event_name=lambda n: means.get(n, n)
    )
    assert plan.exit_reason(s, "hot", "lead") == "temperature:hot"
    assert plan.exit_reason(s, "warm", "sql") == "stage:sql"
    assert plan.exit_reason(s, "warm", "lead", "email_reply") == "event:email_reply"
    assert plan.exit_reason(s, "warm", "mql") is None


def test_transition_trigger_and_where() -> None:
    s = seq(enrol={"transition": {"from": "warm", "to": "cold"}, "where": {"country": "LT"}})
    move = plan.Trigger(kind="temperature", old="warm", new="cold")
    lead = plan.LeadView("l", "cold", "lead", {"country": "LT"})
    assert plan.should_enrol(s, move, lead, False, False)
    assert not plan.should_enrol(
        s, plan.Trigger(kind="temperature", old="hot", new="cold"), lead, False, False
    )
    assert not plan.should_enrol(
        s, move, plan.LeadView("l", "cold", "lead", {"country": "DE"}), False, False
    )


def test_a_bad_sequence_names_the_field() -> None:
    with pytest.raises(ValueError, match="one of 'wait', 'until', 'email'"):
        Sequence.model_validate({"name": "s", "enrol": {"event": "x"}, "steps": [{}]})
    with pytest.raises(ValueError, match="text: template error"):
        Sequence.model_validate(
            {
                "name": "s",
                "enrol": {"event": "x"},
                "steps": [{"email": {"subject": "a", "text": "{% if %}"}}],
            }
        )
    with pytest.raises(ValueError, match="used twice"):
        Nurture.model_validate({"sequences": [seq().model_dump(by_alias=True)] * 2})


times = st.lists(st.integers(min_value=T0 - 10 * DAY, max_value=T0), max_size=12)


@given(times, st.integers(1, 3), st.integers(1, 6))
def test_cap_free_at_is_the_earliest_time_within_the_caps(
    sent: list[int], per_day: int, per_week: int
) -> None:
    caps = Caps(per_day=per_day, per_week=per_week)
    at = pressure.cap_free_at(T0, sent, caps)
    assert at >= T0

    def fits(t: int) -> bool:
        return (
            sum(1 for s in sent if t - DAY < s <= t) < per_day
            and sum(1 for s in sent if t - pressure.WEEK_US < s <= t) < per_week
        )

    assert fits(at)
    if at > T0:
        assert not fits(at - 1)


@given(st.integers(0, 14 * 24 * 60), st.sampled_from(["UTC", "Europe/Vilnius", "America/New_York"]))
def test_quiet_hours_are_never_broken(minutes: int, zone_name: str) -> None:
    quiet = QuietHours(start="20:00", end="08:00")
    zone = ZoneInfo(zone_name)
    now = T0 + minutes * 60_000_000
    at = pressure.outside_quiet_hours(now, quiet, zone)
    assert now <= at <= now + 13 * HOUR
    local = datetime.fromtimestamp(at / 1e6, UTC).astimezone(zone)
    assert 8 <= local.hour < 20
    if at > now:  # it waited for the end of the quiet hours, exactly
        assert (local.hour, local.minute) == (8, 0)


@given(times, st.integers(0, 7 * 24 * 60))
def test_next_send_at_obeys_both(sent: list[int], minutes: int) -> None:
    caps, quiet, zone = Caps(per_day=1, per_week=2), QuietHours(), ZoneInfo("Europe/Vilnius")
    now = T0 + minutes * 60_000_000
    sent = [s for s in sent if s <= now]
    at = pressure.next_send_at(now, sent, caps, quiet, zone)
    assert pressure.cap_free_at(at, sent, caps) == at
    assert pressure.outside_quiet_hours(at, quiet, zone) == at


def test_consent_rules() -> None:
    ok = {"suppressed": False, "consent": None, "blocks": {}, "address": "a@b.lt"}
    assert consent.contact_refusal("email", **ok) is None
    assert consent.contact_refusal("email", **{**ok, "suppressed": True}) == "suppressed"
    assert consent.contact_refusal("email", **{**ok, "consent": False}) == "no_consent"
    assert consent.contact_refusal("email", **{**ok, "blocks": {"email": "bounced"}}) == "bounced"
    assert consent.contact_refusal("sms", **{**ok, "blocks": {"email": "bounced"}}) is None
    assert consent.contact_refusal("sms", **{**ok, "blocks": {"*": "manual"}}) == "manual"
    assert consent.contact_refusal("email", **{**ok, "address": None}) == "no_address"
    assert consent.email_address("ada@example.com", {}) == "ada@example.com"
    assert consent.email_address("u1", {"email": "x@y.com"}) == "x@y.com"
    assert consent.email_address("u1", {"email": "nope"}) is None


def test_the_winner_needs_enough_sends_and_a_clear_difference() -> None:
    a, b = variants.Tally(300, 90), variants.Tally(300, 45)
    assert variants.winner([a, b], min_sends=200) == 0
    assert variants.winner([a, b], min_sends=400) is None  # not enough sends yet
    assert variants.winner([variants.Tally(300, 50), variants.Tally(300, 45)], 200) is None
    assert variants.choose(2, 1, 0.1) == 1
    assert variants.choose(2, None, 0.1) == 0 and variants.choose(2, None, 0.9) == 1
    low, high = variants.Tally(100, 20).interval()
    assert low < 0.2 < high and low > 0.12 and high < 0.3


@given(st.integers(0, 500), st.integers(1, 500))
def test_interval_contains_the_rate(opens: int, sends: int) -> None:
    tally = variants.Tally(sends, min(opens, sends))
    low, high = tally.interval()
    assert 0 <= low <= tally.rate <= high <= 1


def test_a_standing_condition_holds_on_the_lead_as_it_is() -> None:
    s = seq(
        enrol={
            "condition": {"temperature": ["cold"], "fit": {"gte": 5}, "where": {"country": "LT"}}
        }
    )
    lead = plan.LeadView("a", "cold", "lead", {"country": "LT"}, fit=5.0)
    assert plan.standing([s, seq()]) == (s,)
    assert plan.holds(s, lead)
    assert not plan.holds(s, plan.LeadView("a", "warm", "lead", {"country": "LT"}, fit=9.0))
    assert not plan.holds(s, plan.LeadView("a", "cold", "lead", {"country": "LT"}, fit=4.9))
    assert not plan.holds(s, plan.LeadView("a", "cold", "lead", {"country": "DE"}, fit=9.0))
    assert plan.may_hold(s, "cold", "lead", 7.0) and plan.needs_attributes(s)
    # Once at a time, and once ever unless re-entry; never when it would leave at once.
    assert plan.should_enrol_standing(s, lead, enrolled_before=False, active_now=False)
    assert not plan.should_enrol_standing(s, lead, enrolled_before=True, active_now=False)
    again = s.model_copy(update={"reentry": True})
    assert plan.should_enrol_standing(again, lead, enrolled_before=True, active_now=False)
    assert not plan.should_enrol_standing(again, lead, enrolled_before=True, active_now=True)
    sql = plan.LeadView("a", "cold", "sql", {"country": "LT"}, fit=9.0)
    assert plan.holds(s, sql) and not plan.should_enrol_standing(s, sql, False, False)
    # No trigger fires a standing sequence; ``fit: 5`` is "at least 5".
    assert not plan.triggers(s, plan.Trigger(event="whitepaper_download"))
    short = seq(enrol={"condition": {"fit": 5}})
    assert plan.holds(short, plan.LeadView("a", "hot", "lead", {}, fit=5.0))
    assert not plan.holds(short, plan.LeadView("a", "hot", "lead", {}, fit=4.0))
    with pytest.raises(ValueError, match="one of 'event', 'transition' or 'condition'"):
        seq(enrol={"event": "x", "condition": {"fit": 5}})
