"""Every lead's score at every as-of time, in one pass over its events in time order.

A backtest asks for the leads' temperatures at many as-of times (180 daily ones, say).
Scoring each time from scratch rescans the history once per time. Here each lead's events
are applied once, in order, to the incremental scorer's state
(:mod:`pyrometer.core.incremental`); at each as-of time the state is read as it stands,
holding exactly the events at or before that time (the as-of scorer's rule 1 in
:mod:`pyrometer.core.reference`). Decay between events is closed-form, so reading the
state costs O(1) per as-of time: O(events + leads × as-of times) in all.

A lead is *observed* from the first as-of time at which it has an event; a lead with
attributes but no event yet is not a lead anyone saw. Nothing here reads files or SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyrometer.core.classify import temperature_of
from pyrometer.core.conditions import normalize_record
from pyrometer.core.events import distinct_events
from pyrometer.core.incremental import apply_attributes, apply_event, new_state
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook


@dataclass(frozen=True, slots=True)
class Timeline:
    """One lead under one playbook: its score and temperature at as-of times number
    ``first_step``, ``first_step + 1``, ... up to the last as-of time."""

    lead_id: str
    first_step: int
    scores: tuple[float, ...]
    temperatures: tuple[str, ...]

    def at(self, step: int) -> str | None:
        """The temperature at as-of time number ``step``; ``None`` before the first event."""
        index = step - self.first_step
        return self.temperatures[index] if 0 <= index < len(self.temperatures) else None


def as_of_grid(start_us: int, end_us: int, every_us: int) -> list[int]:
    """``start_us``, ``start_us + every_us``, ... up to ``end_us`` included."""
    if every_us <= 0:
        raise ValueError("every: the step between as-of times must be positive")
    if end_us < start_us:
        raise ValueError("the range of as-of times ends before it starts")
    return list(range(start_us, end_us + 1, every_us))


def sweep_lead(
    playbook: Playbook,
    lead_id: str,
    events: Sequence[Event],
    attributes: Mapping[str, Any],
    as_of_times: Sequence[int],
) -> Timeline | None:
    """``lead_id``'s timeline; ``events`` are its events, distinct ids, in any order.

    ``None`` when the lead has no event at or before the last as-of time.
    """
    ordered = sorted(events, key=lambda e: e.order_key)
    if not ordered or not as_of_times or ordered[0].ts_us > as_of_times[-1]:
        return None
    state = apply_attributes(
        playbook, new_state(lead_id), normalize_record(dict(attributes)), ordered[0].ts_us
    ).state
    decay = playbook.decay
    scores: list[float] = []
    temperatures: list[str] = []
    first_step: int | None = None
    index = 0
    for step, as_of in enumerate(as_of_times):
        while index < len(ordered) and ordered[index].ts_us <= as_of:
            state = apply_event(playbook, state, ordered[index]).state
            index += 1
        if index == 0:
            continue
        if first_step is None:
            first_step = step
        score = state.fit + state.engagement_at(playbook, decay.step_of(as_of))
        scores.append(score)
        temperatures.append(str(temperature_of(playbook, score)))
    assert first_step is not None
    return Timeline(lead_id, first_step, tuple(scores), tuple(temperatures))


def sweep(
    playbook: Playbook,
    events: Iterable[Event],
    leads: Mapping[str, Mapping[str, Any]],
    as_of_times: Sequence[int],
) -> Iterator[Timeline]:
    """Every lead's timeline, leads in id order. An event id seen twice is one event, the
    first seen (:func:`pyrometer.core.events.distinct_events`)."""
    by_lead: dict[str, list[Event]] = {}
    for event in distinct_events(events):
        by_lead.setdefault(event.lead_id, []).append(event)
    for lead_id in sorted(by_lead):
        timeline = sweep_lead(
            playbook, lead_id, by_lead[lead_id], leads.get(lead_id, {}), as_of_times
        )
        if timeline is not None:
            yield timeline
