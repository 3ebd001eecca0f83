"""Request bodies, validated field by field so every 4xx names what is wrong.

Ingest speaks Segment's message format (``type``, ``userId``, ``anonymousId``, ``event``,
``properties``, ``traits``, ``timestamp``, ``messageId``...), so a Segment or RudderStack
forwarder works unchanged; fields Pyrometer does not use (``context``, ``integrations``)
are accepted and ignored. Text the databases cannot store (NUL characters, unpaired
surrogates, NaN) is refused here rather than failing in the store.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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


SafeText = Annotated[str, AfterValidator(_check_text)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID), AfterValidator(_check_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: Id | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
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
    event: Annotated[str, Field(min_length=1, max_length=MAX_ID), AfterValidator(_check_text)]
    properties: JsonObject = Field(default_factory=dict)


class PageIn(_Message):
    """A page view: a ``page_view`` event with the page's ``url``."""

    type: Literal["page"] = "page"
    name: Annotated[str, Field(max_length=MAX_ID), AfterValidator(_check_text)] | None = None
    properties: JsonObject = Field(default_factory=dict)


class IdentifyIn(_Message):
    """Who a person is: ``traits`` become the lead's attributes (merged)."""

    type: Literal["identify"] = "identify"
    traits: JsonObject = Field(default_factory=dict)


class AliasIn(BaseModel):
    """Segment's ``alias``: ``previousId`` (an earlier id) is ``userId``; like identify."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    type: Literal["alias"] = "alias"
    userId: Id
    previousId: Id
    messageId: Id | None = None
    timestamp: datetime | None = None


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
    at: datetime | None = None


class PlaybookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: Annotated[str, Field(min_length=1, max_length=1_000_000), AfterValidator(_check_text)]
