"""A lead row as Python, and what a change to it writes: the values the store reads and
writes, and the service's scoring functions compute (:mod:`pyrometer.service.scoring`).

They live in the store because the store builds and saves them; the service imports
them from here (never the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyrometer.core.incremental import LeadState
from pyrometer.core.model import EngagementLine, Transition

__all__ = ["Change", "LeadRecord"]


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A lead row: who the lead is, its scoring state and the columns derived from it."""

    lead_id: str
    attributes: Mapping[str, Any]
    source: str | None
    owner: str | None
    consent: bool | None
    created_us: int
    updated_us: int
    playbook_version: int
    state: LeadState
    temperature: str
    stage: str
    decay_checked_us: int
    next_decay_us: int | None

    def with_temperature(self, temperature: str) -> LeadRecord:
        """This record with another temperature: ``dataclasses.replace``, built directly
        at a third of its cost (a write with probability bands makes one per lead)."""
        return LeadRecord(
            self.lead_id,
            self.attributes,
            self.source,
            self.owner,
            self.consent,
            self.created_us,
            self.updated_us,
            self.playbook_version,
            self.state,
            temperature,
            self.stage,
            self.decay_checked_us,
            self.next_decay_us,
        )

    def derived(self) -> dict[str, Any]:
        """The columns copied out of the state for filtering and sorting in SQL."""
        return {
            "fit": self.state.fit,
            "anchor_step": self.state.anchor_step,
            "engagement_at_anchor": self.state.engagement_at_anchor,
            "last_activity_us": self.state.last_activity_us,
            "event_count": self.state.event_count,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A lead's new record and the transitions to append; after a replay, also the ledger
    (which is not stored: a read replays the event log)."""

    record: LeadRecord
    transitions: tuple[Transition, ...] = ()
    lines: tuple[EngagementLine, ...] = ()
