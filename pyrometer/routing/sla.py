"""When a routed lead's first sales touch is due: the speed-to-lead clock.

The documents' figure is 5 minutes from the moment the lead turned hot. By default the clock
runs on wall time: a lead routed at 16:58 is due at 17:03 even if the rep leaves at 17:00,
because the buyer does not wait for office hours. With ``routing.sla_working_hours`` the
clock runs only inside the rep's working hours, in the rep's time zone, so the same lead is
due at 09:03 the next morning. Every day is a working day (as :mod:`.reps` says): a rep off
for the weekend is marked away, and routing sends their new leads elsewhere.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from pyrometer.core.playbook import Routing
from pyrometer.routing.reps import DAY_SECONDS, Rep, WorkingHours


def sla_deadline_us(policy: Routing, routed_at_us: int, rep: Rep | None) -> int:
    """The instant the first touch is due for a lead routed to ``rep`` at ``routed_at_us``.

    Without ``sla_working_hours``, or for the unassigned queue (``rep`` ``None``) or a rep
    without hours, it is ``routed_at_us + sla``.
    """
    if not policy.sla_working_hours or rep is None or rep.hours is None:
        return routed_at_us + policy.sla_us
    remaining = policy.sla_us
    now = routed_at_us
    while True:
        start, end = _interval_at(rep, rep.hours, now)
        now = max(now, start)
        if now + remaining <= end:
            return now + remaining
        remaining -= end - now
        now = end


def _interval_at(rep: Rep, hours: WorkingHours, at_us: int) -> tuple[int, int]:
    """The working interval (UTC microseconds) containing ``at_us``, or the next one."""
    today = rep.local(at_us).date()
    intervals = []
    for offset in (-1, 0, 1, 2):
        day = today + timedelta(days=offset)
        start = _local_us(rep, day, hours.start)
        end_day = day + timedelta(days=1) if hours.crosses_midnight else day
        end = _local_us(rep, end_day, hours.end)
        if end > start:
            intervals.append((start, end))
    return min((pair for pair in intervals if pair[1] > at_us), key=lambda pair: pair[0])


def _local_us(rep: Rep, day: date, second_of_day: int) -> int:
    """A wall-clock time on ``day`` in the rep's zone, as UTC microseconds (24:00 is the
    next midnight; a time a DST jump skips is read with the offset before the jump)."""
    day += timedelta(days=second_of_day // DAY_SECONDS)
    second = second_of_day % DAY_SECONDS
    clock = time(second // 3600, second % 3600 // 60, second % 60)
    local = datetime.combine(day, clock, tzinfo=rep.zone)
    return round(local.timestamp() * 1_000_000)
