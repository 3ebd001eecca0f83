"""Messages as the service takes them, already validated (by the API or the importer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

_NO_PROPERTIES: Mapping[str, Any] = {}


class Track(NamedTuple):
    """Something a person did. ``user_id`` names the lead; without it, ``anonymous_id``.

    A named tuple, not a frozen dataclass: a 500-event batch makes 500 of them in the
    server process and hands them to a scoring process, and a tuple is built and
    pickled in C (a frozen dataclass sets and pickles field by field in Python).
    """

    message_id: str
    name: str  # normalised event name
    ts_us: int
    user_id: str | None = None
    anonymous_id: str | None = None
    # Normalised keys. Never changed in place, so one empty default serves all (a
    # read-only view would not pickle).
    properties: Mapping[str, Any] = _NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Identify:
    """Who a lead is (``traits`` merged into its attributes), and which visitor it was."""

    message_id: str
    user_id: str
    ts_us: int
    anonymous_id: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)  # normalised keys
    # ``user_id`` is only an ``anonymousId`` (an identify without ``userId``): the lead
    # stays an anonymous visitor.
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """An identify or alias refused: it would have merged two known leads
    (``merge_refused``), or given its lead more attributes than a lead may hold
    (``too_many_attributes``)."""

    message_id: str
    user_id: str
    anonymous_id: str | None
    reason: str
    kind: str = "merge_refused"


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int  # messages stored (tracks new to the store, and identifies applied)
    duplicates: int  # messages whose message id was already stored: no effect
    refused: tuple[Refusal, ...] = ()  # nothing of these was stored
