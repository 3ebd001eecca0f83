"""Sales reps as routing sees them: capacity, territory, time zone, working hours, away.

A territory is a condition on lead attributes in the playbook's own condition language
(``{country: [LT, LV, EE]}``, ``{company_size: {gte: 500}}``), compiled by
:class:`pyrometer.core.conditions.Where`, so a territory means exactly what the same
condition means in a fit rule. Working hours are a local wall-clock range in the rep's IANA
time zone; ``22:00-06:00`` crosses midnight. Every day is a working day: days off are
marked with ``away`` (weekdays-only hours are left for a later step).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pyrometer.core.conditions import DEFAULT_MISSING_VALUES, Where
from pyrometer.core.timeutil import US_PER_SECOND, from_us

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
DAY_SECONDS = 86_400


def _clock_seconds(text: str, *, end: bool) -> int:
    match = _CLOCK.match(text)
    if not match:
        raise ValueError(f"expected a time like 09:00, got {text!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"{text.strip()!r} is not a time of day (00:00 to 23:59; 24:00 ends one)")
    return hours * 3600 + minutes * 60


class WorkingHours(BaseModel):
    """A daily range of local time, ``start`` inclusive, ``end`` exclusive, in seconds.

    ``end`` before ``start`` crosses midnight (a night shift ``22:00-06:00``);
    ``00:00-24:00`` is the whole day.
    """

    model_config = ConfigDict(frozen=True)

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """``"09:00-17:00"`` → hours; a clear ``ValueError`` otherwise."""
        if not isinstance(text, str) or text.count("-") != 1:
            raise ValueError(f"expected working hours like 09:00-17:00, got {text!r}")
        first, second = text.split("-")
        start = _clock_seconds(first, end=False)
        end = _clock_seconds(second, end=True)
        if start == end % DAY_SECONDS and not (start == 0 and end == DAY_SECONDS):
            raise ValueError(f"working hours {text!r} are empty; 00:00-24:00 is the whole day")
        return cls(start=start, end=end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, second_of_day: float) -> bool:
        if self.crosses_midnight:
            return second_of_day >= self.start or second_of_day < self.end
        return self.start <= second_of_day < self.end

    def __str__(self) -> str:
        def clock(s: int) -> str:
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}"

        return f"{clock(self.start)}-{clock(self.end)}"


class Rep(BaseModel):
    """A sales rep who may be given leads.

    ``capacity`` is the most new leads per the playbook's ``capacity_window`` (``None``:
    the playbook's ``default_capacity``); ``hours`` ``None`` means always reachable (a
    shared inbox); ``territory`` ``None`` means no territory, so the rep takes leads by
    round-robin only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    email: str
    capacity: int | None = Field(default=None, ge=1)
    territory: Where | None = None
    timezone: str = "UTC"
    hours: WorkingHours | None = None
    away: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"a rep id is letters, digits, '.', '_', '@' or '-', starting with a letter or "
                f"digit; got {value!r}"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a rep needs a name")
        return value.strip()

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError(f"expected an e-mail address like kim@example.com, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Vilnius"
            ) from None
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        return WorkingHours.parse(value) if isinstance(value, str) else value

    @field_validator("territory")
    @classmethod
    def _territory(cls, value: Where | None) -> Where | None:
        """An empty territory would match every lead: it is no territory."""
        return value if value is not None and value.fields else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data :func:`parse_rep` reads back to an equal rep (for a store or JSON)."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "capacity": self.capacity,
            "territory": None,
            "timezone": self.timezone,
            "hours": None if self.hours is None else str(self.hours),
            "away": self.away,
        }
        if self.territory is not None:
            dumped = self.territory.model_dump(mode="json", by_alias=True, exclude_none=True)
            data["territory"] = dumped["fields"]
        return data

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, at_us: int) -> datetime:
        """``at_us`` on the rep's wall clock."""
        return from_us(at_us).astimezone(self.zone)

    def in_hours(self, at_us: int) -> bool:
        """Whether ``at_us`` falls in the rep's working hours (always, without hours)."""
        if self.hours is None:
            return True
        local = self.local(at_us)
        second = local.hour * 3600 + local.minute * 60 + local.second
        return self.hours.contains(second + local.microsecond / US_PER_SECOND)

    def covers(
        self, attributes: Mapping[str, Any], missing_values: Iterable[str] = DEFAULT_MISSING_VALUES
    ) -> bool:
        """Whether the lead (normalised attributes) is in this rep's territory."""
        return self.territory is not None and self.territory.matches(attributes, missing_values)


class RepError(ValueError):
    """A rep that cannot be used; ``problems`` are ``(field, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


_ALIASES = {"in_": "in", "not_": "not"}


def parse_rep(data: Mapping[str, Any]) -> Rep:
    """A rep from plain data (CLI options, a JSON body); errors name the field."""
    try:
        return Rep.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [_ALIASES.get(str(p), str(p)) for p in error["loc"] if p != "fields"]
            problems.append((".".join(loc), error["msg"].removeprefix("Value error, ")))
        raise RepError(problems) from None
