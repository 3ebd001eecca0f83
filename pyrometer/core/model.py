"""Domain types shared by every engine: events in, scored leads and their ledgers out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyrometer.core.conditions import normalize_name, normalize_record
from pyrometer.core.playbook import Stage, Temperature
from pyrometer.core.timeutil import iso, to_us


@dataclass(frozen=True, slots=True)
class Event:
    """Something a lead did, at a time. ``name`` and property keys are normalised."""

    lead_id: str
    name: str
    ts_us: int
    event_id: str
    properties: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        lead_id: str,
        name: str,
        timestamp: datetime | str | int,
        event_id: str,
        properties: Mapping[str, Any] | None = None,
    ) -> Event:
        return cls(
            lead_id=str(lead_id),
            name=normalize_name(name),
            ts_us=to_us(timestamp),
            event_id=str(event_id),
            properties=normalize_record(properties or {}),
        )

    @property
    def order_key(self) -> tuple[int, str]:
        """Events are ordered by time, then by id: the order caps and ``once`` count in."""
        return (self.ts_us, self.event_id)


@dataclass(frozen=True, slots=True)
class EngagementLine:
    """One rule's points for one event: given when it happened, ``value`` left at as-of time.

    ``points`` is 0 when the rule's cap or ``once`` had already been used up.
    """

    rule: str
    event_id: str
    event: str
    ts_us: int
    points: float
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "engagement",
            "rule": self.rule,
            "event_id": self.event_id,
            "event": self.event,
            "timestamp": iso(self.ts_us),
            "points": self.points,
            "value": self.value,
            "capped": self.points == 0,
        }


@dataclass(frozen=True, slots=True)
class FitLine:
    """A fit rule that matched the lead's attributes; fit points do not fade."""

    rule: str
    points: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fit", "rule": self.rule, "points": self.points, "value": self.points}


@dataclass(frozen=True, slots=True)
class ScoredLead:
    """A lead's scores and classes as of one time, with the ledger that explains them."""

    lead_id: str
    fit: float
    engagement: float
    temperature: Temperature
    stage: Stage
    funnel: str
    suppressed: bool
    last_activity_us: int | None
    event_count: int
    engagement_lines: tuple[EngagementLine, ...] = ()
    fit_lines: tuple[FitLine, ...] = ()

    @property
    def score(self) -> float:
        return self.fit + self.engagement

    def to_dict(self, ledger: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lead_id": self.lead_id,
            "score": round(self.score, 4),
            "fit": round(self.fit, 4),
            "engagement": round(self.engagement, 4),
            "temperature": str(self.temperature),
            "stage": str(self.stage),
            "funnel": self.funnel,
            "suppressed": self.suppressed,
            "last_activity": iso(self.last_activity_us),
            "events": self.event_count,
        }
        if ledger:
            out["ledger"] = [line.to_dict() for line in (*self.fit_lines, *self.engagement_lines)]
        return out


@dataclass(frozen=True, slots=True)
class Transition:
    """A lead's temperature or stage changed at ``at_us``; ``cause`` says what did it."""

    lead_id: str
    at_us: int
    kind: str  # "temperature" or "stage"
    old: str
    new: str
    cause: str  # "event:<id>", "decay" or "attributes"

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "at": iso(self.at_us),
            "kind": self.kind,
            "from": self.old,
            "to": self.new,
            "cause": self.cause,
        }
