"""Time as the scoring core sees it: integer microseconds since the Unix epoch, UTC.

Integers keep every engine exact: the batch engine reads ``epoch_us(ts)`` from DuckDB,
the incremental scorer gets the same integer from :func:`to_us`, and decay steps and cap
windows are integer divisions of it, so no engine can round a boundary differently.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

US_PER_SECOND = 1_000_000

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
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
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
    """ISO-8601 text of a microsecond timestamp, ``None`` stays ``None``."""
    return None if us is None else from_us(us).isoformat().replace("+00:00", "Z")
