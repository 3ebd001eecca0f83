"""Messages as the service takes them, already validated (by the API or the importer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Track:
    """Something a person did. ``user_id`` names the lead; without it, ``anonymous_id``."""

    message_id: str
    name: str  # normalised event name
    ts_us: int
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)  # normalised keys


@dataclass(frozen=True, slots=True)
class Identify:
    """Who a lead is (``traits`` merged into its attributes), and which visitor it was."""

    message_id: str
    user_id: str
    ts_us: int
    anonymous_id: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)  # normalised keys


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int  # messages stored (tracks new to the store, and identifies)
    duplicates: int  # tracks whose message id was already stored: no effect
