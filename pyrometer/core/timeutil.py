"""Time as the scoring core sees it: integer microseconds since the Unix epoch, UTC.

Integers keep every engine exact: the batch engine reads ``epoch_us(ts)`` from DuckDB,
the incremental scorer gets the same integer from :func:`to_us`, and decay steps and cap
windows are integer divisions of it, so no engine can round a boundary differently.

Every time that enters Pyrometer (an event's timestamp, a stage move's ``at``, a report's
period, ``--as-of``, a file's timestamp column) must lie in :data:`MIN_US` ..
:data:`MAX_US`, checked by :func:`check_us`. See :data:`MIN_US` for why that range.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

US_PER_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The accepted range of times: 1900-01-01T00:00:00Z up to 2199-12-31T23:59:59.999999Z.
# It holds any real event or CRM history and any as-of time, and stays far inside what
# Python's datetime, PostgreSQL and DuckDB all read back (years 1 to 9999): an offset
# (``0001-01-01T00:00:00+14:00`` is year 0 in UTC), a 30-day report period before a
# time, or a decay horizon after it, still lands on a time every store and engine
# renders. Times before 1970 are negative microseconds, which
# every engine floors alike (see tests/test_cli.py).
MIN_US = -2_208_988_800 * US_PER_SECOND  # 1900-01-01T00:00:00Z
MAX_US = 7_258_118_400 * US_PER_SECOND - 1  # 2199-12-31T23:59:59.999999Z
TIME_RANGE = "from 1900-01-01T00:00:00Z to 2199-12-31T23:59:59.999999Z"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration_us(text: str | int | float) -> int:
    """``"30d"``, ``"12h"``, ``"1w"``, ``"90m"``, ``"45s"`` (or plain seconds) as microseconds."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like '30d', got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"expected a duration like '30d', '12h', '1w' or '90m', got {text!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    us = round(seconds * US_PER_SECOND)
    if us <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return us


def format_duration_us(us: int) -> str:
    """The shortest exact spelling of a duration, the inverse of :func:`parse_duration_us`."""
    for unit in ("w", "d", "h", "m", "s"):
        unit_us = _UNIT_SECONDS[unit] * US_PER_SECOND
        if us % unit_us == 0:
            return f"{us // unit_us}{unit}"
    return f"{us / US_PER_SECOND}s"


class TimeRangeError(ValueError):
    """A valid timestamp outside :data:`MIN_US` .. :data:`MAX_US`."""


def in_range(us: int) -> bool:
    return MIN_US <= us <= MAX_US


def check_us(us: int) -> int:
    """``us`` itself when it is in the accepted range, else :class:`TimeRangeError`."""
    if not in_range(us):
        raise TimeRangeError(f"must be {TIME_RANGE} (got {iso(us)})")
    return us


def parse_time_us(text: str) -> int:
    """ISO-8601 text (as :func:`parse_timestamp`) as microseconds in the accepted range."""
    return check_us(to_us(parse_timestamp(text)))


def to_us(value: datetime | str | int) -> int:
    """A timestamp as integer UTC microseconds. Naive datetimes and strings are taken as UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = parse_timestamp(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 (``2026-11-23T10:00:00Z``, with an offset, or naive = UTC) as an aware datetime."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_us(us: int) -> datetime:
    """Integer UTC microseconds back to an aware datetime."""
    seconds, micro = divmod(us, US_PER_SECOND)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micro)


def iso(us: int | None) -> str | None:
    """ISO-8601 text of a microsecond timestamp, ``None`` stays ``None``.

    Any integer renders, even one outside what ``datetime`` holds (a row stored before the
    accepted range was enforced): such a year is written as ISO 8601's expanded years
    (``0000``, ``-0001``, ``+10000``), so a read shows it rather than failing.
    """
    if us is None:
        return None
    try:
        return from_us(us).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return _iso_any(us)


def _iso_any(us: int) -> str:
    """ISO-8601 text of any microsecond count, by the proleptic Gregorian calendar."""
    days, rest = divmod(us, 86_400 * US_PER_SECOND)
    seconds, micro = divmod(rest, US_PER_SECOND)
    # Howard Hinnant's days-to-civil algorithm (exact for any integer day count).
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    sign = "" if 0 <= year <= 9999 else "-" if year < 0 else "+"
    year_text = f"{sign}{abs(year):04d}"
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    fraction = f".{micro:06d}" if micro else ""
    return f"{year_text}-{month:02d}-{day:02d}T{clock}{fraction}Z"
