"""One backtest: several playbooks swept over the same leads, tallied side by side.

Pure orchestration: the caller gives the leads' events (an iterable, one lead at a time,
e.g. streamed from a file by :mod:`pyrometer.io.history`), their attributes and outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyrometer.backtest.metrics import LeadOutcome, Metrics, Outcome, Tally, lead_outcomes
from pyrometer.backtest.outcomes import outcome_of_event
from pyrometer.backtest.sweep import Timeline, sweep_lead
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook


@dataclass(frozen=True)
class Result:
    """Each playbook's metrics (in the order given), with what was swept."""

    names: tuple[str, ...]
    metrics: tuple[Metrics, ...]
    as_of_times: tuple[int, ...]
    horizon_us: int
    leads: int
    events: int
    outcomes_from: str  # "file" or "events"
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        from pyrometer.core.timeutil import iso

        return {
            "as_of": {
                "from": iso(self.as_of_times[0]),
                "to": iso(self.as_of_times[-1]),
                "count": len(self.as_of_times),
            },
            "horizon_days": self.horizon_us / 86_400_000_000,
            "leads": self.leads,
            "events": self.events,
            "outcomes_from": self.outcomes_from,
            "seconds": round(self.seconds, 3),
            "playbooks": [
                {"name": name, **m.to_dict()}
                for name, m in zip(self.names, self.metrics, strict=True)
            ],
        }


def run(
    playbooks: Sequence[tuple[str, Playbook]],
    leads: Iterable[tuple[str, Sequence[Event]]],
    attributes: Mapping[str, Mapping[str, Any]],
    outcomes: Iterable[Outcome] | None,
    as_of_times: Sequence[int],
    horizon_us: int,
    capacity_per_day: float | None = None,
    on_lead: Callable[[], None] | None = None,
    keep: Callable[[int, Timeline], None] | None = None,
) -> Result:
    """Sweep every lead under every playbook and tally. ``outcomes`` ``None``: each lead's
    own lifecycle events (purchase, won, lost...) under the first playbook are its
    outcomes. ``keep(index, timeline)`` sees every timeline (e.g. to tune thresholds), with
    its scores; without it only bands are computed (faster)."""
    if not playbooks:
        raise ValueError("no playbook to backtest")
    started = time.perf_counter()
    known: dict[str, LeadOutcome] = lead_outcomes(outcomes) if outcomes is not None else {}
    tallies = [Tally(as_of_times, known, horizon_us, capacity_per_day) for _ in playbooks]
    first = playbooks[0][1]
    meaning: dict[str, str | None] = {}  # event name -> won/lost/None, asked once per name
    n_leads = n_events = 0
    for lead_id, events in leads:
        n_leads += 1
        n_events += len(events)
        if outcomes is None:
            found = []
            for e in events:
                if e.name not in meaning:
                    meaning[e.name] = outcome_of_event(first, e.name)
                kind = meaning[e.name]
                if kind is not None:
                    found.append(Outcome(lead_id, kind, e.ts_us))
            if found:
                known[lead_id] = lead_outcomes(found)[lead_id]
        lead_attributes = attributes.get(lead_id, {})
        for index, (_, book) in enumerate(playbooks):
            timeline = sweep_lead(
                book, lead_id, events, lead_attributes, as_of_times, scores=keep is not None
            )
            if timeline is None:
                continue
            tallies[index].add(timeline)
            if keep is not None:
                keep(index, timeline)
        if on_lead is not None:
            on_lead()
    return Result(
        names=tuple(name for name, _ in playbooks),
        metrics=tuple(t.result() for t in tallies),
        as_of_times=tuple(as_of_times),
        horizon_us=horizon_us,
        leads=n_leads,
        events=n_events,
        outcomes_from="events" if outcomes is None else "file",
        seconds=time.perf_counter() - started,
    )
