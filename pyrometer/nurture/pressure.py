"""Frequency caps and quiet hours: the earliest time a lead may get the next e-mail.

A step that would break them is not dropped: it waits for the time this returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pyrometer.core.nurture_spec import Caps, QuietHours

DAY_US = 86_400_000_000
WEEK_US = 7 * DAY_US


def cap_free_at(now_us: int, sent_us: Iterable[int], caps: Caps | None) -> int:
    """The earliest time at or after ``now_us`` when one more send keeps at most
    ``per_day`` sends in any 24 hours and ``per_week`` in any 7 days (rolling windows)."""
    if caps is None:
        return now_us
    times = sorted(t for t in sent_us if t > now_us - WEEK_US)
    at = now_us
    while True:
        moved = at
        for limit, span in ((caps.per_day, DAY_US), (caps.per_week, WEEK_US)):
            if limit is None:
                continue
            recent = [t for t in times if at - span < t <= at]
            if len(recent) >= limit:
                # Free once the oldest send that keeps the window full has left it.
                moved = max(moved, recent[len(recent) - limit] + span)
        if moved == at:
            return at
        at = moved


def zone_of(quiet: QuietHours, attributes: dict[str, object] | None) -> ZoneInfo:
    """The lead's time zone: its attribute if a known IANA name, else the default."""
    name = (attributes or {}).get(quiet.timezone_attribute)
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except Exception:
            pass
    return ZoneInfo(quiet.default_timezone)


def _quiet(minute: int, start: int, end: int) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # over midnight


def outside_quiet_hours(now_us: int, quiet: QuietHours | None, zone: ZoneInfo) -> int:
    """``now_us`` if it is outside quiet hours in ``zone``, else the end of them."""
    if quiet is None:
        return now_us
    start, end = quiet.minutes(quiet.start), quiet.minutes(quiet.end)
    local = datetime.fromtimestamp(now_us / 1e6, UTC).astimezone(zone)
    minute = local.hour * 60 + local.minute
    if not _quiet(minute, start, end):
        return now_us
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=zone)
    # A local time skipped by a clock change still maps to one instant: take it.
    wake_us = int(wake.astimezone(UTC).timestamp() * 1_000_000)
    return max(wake_us, now_us)


def next_send_at(
    now_us: int,
    sent_us: Iterable[int],
    caps: Caps | None,
    quiet: QuietHours | None,
    zone: ZoneInfo,
) -> int:
    """The earliest time at or after ``now_us`` allowed by both the caps and the quiet
    hours (each may push the other on: a cap ending at night waits for the morning)."""
    times = list(sent_us)
    at = now_us
    for _ in range(16):
        moved = outside_quiet_hours(cap_free_at(at, times, caps), quiet, zone)
        if moved == at:
            return at
        at = moved
    return at
