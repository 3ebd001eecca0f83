"""Request bodies, validated field by field so every 4xx names what is wrong.

Ingest speaks Segment's message format (``type``, ``userId``, ``anonymousId``, ``event``,
``properties``, ``traits``, ``timestamp``, ``messageId``...), so a Segment or RudderStack
forwarder works unchanged; fields Pyrometer does not use (``context``, ``integrations``)
are accepted and ignored. Text the databases cannot store (NUL characters, unpaired
surrogates, NaN) is refused here rather than failing in the store, and so are times outside
the accepted range (:data:`pyrometer.core.timeutil.MIN_US` .. ``MAX_US``). Lead ids
(``userId``, ``anonymousId``, ``previousId``) arrive in their normal form
(:func:`pyrometer.core.ids.normalize_lead_id`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pyrometer.core.ids import normalize_lead_id
from pyrometer.core.timeutil import check_us, to_us

MAX_ID = 200
MAX_BATCH = 2500


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


def _check_json(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        raise ValueError("is nested more than 20 levels deep")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must not contain NaN or infinite numbers")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ValueError("holds an integer too large to store")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(str(key))
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    return value


def _finite(value: Any) -> Any:
    """Numbers are taken as text for ids (``coerce_numbers_to_str``), but not NaN or
    infinity: ``userId: 1e400`` must not become a lead called ``inf``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be text or a finite number, not NaN or infinity")
    return value


def _lead_id(value: str) -> str:
    normal = normalize_lead_id(value)  # EmptyLeadId is a ValueError: a 422 naming the field
    if len(normal) > MAX_ID:
        raise ValueError(f"must have at most {MAX_ID} characters")
    return normal


def _check_time(value: datetime | None) -> datetime | None:
    if value is not None:
        check_us(to_us(value))  # TimeRangeError is a ValueError: a 422 naming the field
    return value


SafeText = Annotated[str, AfterValidator(_check_text)]
Id = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID),
    BeforeValidator(_finite),
    AfterValidator(_check_text),
]
# A lead's id (userId, anonymousId, previousId, a lead in a path): normalised.
LeadIdText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID),
    BeforeValidator(_finite),
    AfterValidator(_check_text),
    AfterValidator(_lead_id),
]
# Every time in a request: in the accepted range.
Timestamp = Annotated[datetime, AfterValidator(_check_time)]
# Segment's own limit for one call: no lead's properties or traits grow by more at once.
MAX_OBJECT_BYTES = 32 * 1024


def _check_size(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_OBJECT_BYTES:
        raise ValueError(f"must be at most {MAX_OBJECT_BYTES // 1024} KiB once encoded as JSON")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json), AfterValidator(_check_size)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    userId: LeadIdText | None = None
    anonymousId: LeadIdText | None = None
    messageId: Id | None = None
    timestamp: Timestamp | None = None
    originalTimestamp: Timestamp | None = None
    sentAt: Timestamp | None = None
    receivedAt: Timestamp | None = None
    context: JsonObject | None = None

    @model_validator(mode="after")
    def _someone(self) -> _Message:
        if self.userId is None and self.anonymousId is None:
            raise ValueError("userId or anonymousId is required")
        return self

    @property
    def when(self) -> datetime | None:
        return self.timestamp or self.originalTimestamp or self.sentAt or self.receivedAt


class TrackIn(_Message):
    """Something a person did: ``event`` with ``properties``."""

    type: Literal["track"] = "track"
    event: Annotated[
        str,
        Field(min_length=1, max_length=MAX_ID),
        BeforeValidator(_finite),
        AfterValidator(_check_text),
    ]
    properties: JsonObject = Field(default_factory=dict)


class PageIn(_Message):
    """A page view: a ``page_view`` event with the page's ``url``."""

    type: Literal["page"] = "page"
    name: (
        Annotated[
            str, Field(max_length=MAX_ID), BeforeValidator(_finite), AfterValidator(_check_text)
        ]
        | None
    ) = None
    properties: JsonObject = Field(default_factory=dict)


class IdentifyIn(_Message):
    """Who a person is: ``traits`` become the lead's attributes (merged)."""

    type: Literal["identify"] = "identify"
    traits: JsonObject = Field(default_factory=dict)


class AliasIn(BaseModel):
    """Segment's ``alias``: ``previousId`` (an earlier id) is ``userId``; like identify."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    type: Literal["alias"] = "alias"
    userId: LeadIdText
    previousId: LeadIdText
    messageId: Id | None = None
    timestamp: Timestamp | None = None


class OtherIn(BaseModel):
    """Segment calls Pyrometer does not score (screen, group): accepted, ignored."""

    model_config = ConfigDict(extra="allow")
    type: Literal["screen", "group"]


BatchItem = Annotated[
    TrackIn | PageIn | IdentifyIn | AliasIn | OtherIn, Field(discriminator="type")
]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    batch: Annotated[list[BatchItem], Field(max_length=MAX_BATCH)]
    context: JsonObject | None = None


class IngestOut(BaseModel):
    success: bool = True
    accepted: int
    duplicates: int


class LeadUpdate(BaseModel):
    """Attributes to merge (a ``null`` value removes one); owner, source and consent."""

    model_config = ConfigDict(extra="forbid")
    attributes: JsonObject | None = None
    owner: Annotated[str, Field(max_length=MAX_ID), AfterValidator(_check_text)] | None = None
    source: Annotated[str, Field(max_length=MAX_ID), AfterValidator(_check_text)] | None = None
    consent: bool | None = None


class StageMove(BaseModel):
    """A sales decision, recorded as the playbook's lifecycle event of that name."""

    model_config = ConfigDict(extra="forbid")
    stage: Literal[
        "sales_accepted", "opportunity_created", "won", "lost", "disqualified", "recycled"
    ]
    at: Timestamp | None = None


class PlaybookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: Annotated[str, Field(min_length=1, max_length=1_000_000), AfterValidator(_check_text)]


def _duration_text(value: str) -> str:
    from pyrometer.core.timeutil import parse_duration_us

    if parse_duration_us(value) <= 0:
        raise ValueError("must be a positive duration such as 1d or 30d")
    return value


Duration = Annotated[str, Field(max_length=40), AfterValidator(_duration_text)]


class BacktestIn(BaseModel):
    """A playbook to backtest on the stored history, against the one in force."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    yaml: Annotated[str, Field(min_length=1, max_length=1_000_000), AfterValidator(_check_text)]
    start: Timestamp | None = Field(default=None, alias="from")
    end: Timestamp | None = Field(default=None, alias="to")
    every: Duration = "1d"
    horizon: Duration = "30d"
    capacity: Annotated[float, Field(gt=0)] | None = None
