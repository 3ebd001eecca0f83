"""The scoring semantics, written as plainly as possible.

This module is the definition the fast engines are tested against: the incremental
scorer (:mod:`pyrometer.core.incremental`) and the DuckDB batch engine
(:mod:`pyrometer.engines.duckdb_batch`) must give the same numbers for the same events,
attributes, playbook and as-of time. It is quadratic in places and never used in
production.

An event id seen twice is one event, the first seen (:mod:`pyrometer.core.events`).
For one lead, as of time ``T``:

1. Only events at or before ``T`` count.
2. Each event earns the points of every engagement rule it matches.
3. A rule with ``once`` or a ``cap`` splits time into windows (``per``; ``once`` is one
   window for the lead's whole life). Within a window, events in time order (ties broken
   by event id) earn the rule's points until the cap is reached; the event that reaches it
   earns what is left, later ones earn 0.
4. Points fade: an event in decay step ``s`` is worth ``points * 2 ** -((S - s) / H)`` at
   step ``S`` of ``T``, with ``H`` the half-life in steps.
5. Engagement is the sum of those values; fit is the sum of the matching fit rules' points;
   the score is fit + engagement.
6. Temperature comes from the score; the stage from the latest lifecycle event, else from
   the ``mql`` conditions; the funnel from the stage.
7. A lead is suppressed once it sent a suppression event, or while an attribute says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pyrometer.core.classify import funnel_of, stage_of, temperature_of
from pyrometer.core.events import distinct_events
from pyrometer.core.fit import fit_and_suppression
from pyrometer.core.model import EngagementLine, Event, ScoredLead
from pyrometer.core.playbook import Playbook, Stage


def score_lead_reference(
    playbook: Playbook,
    lead_id: str,
    events: Iterable[Event],
    attributes: Mapping[str, Any],
    as_of_us: int,
) -> ScoredLead:
    decay = playbook.decay
    now_step = decay.step_of(as_of_us)
    counted = sorted(
        (e for e in distinct_events(events) if e.ts_us <= as_of_us), key=lambda e: e.order_key
    )

    rank_in_window: dict[tuple[str, int], int] = defaultdict(int)
    lines: list[EngagementLine] = []
    explicit: tuple[tuple[int, str], Stage] | None = None
    fits, suppressed = fit_and_suppression(playbook, attributes)
    for event in counted:
        for rule in playbook.rules_matching(event.name, event.properties):
            window = event.ts_us // rule.window_us if rule.window_us else 0
            rank = rank_in_window[(rule.name, window)]
            rank_in_window[(rule.name, window)] = rank + 1
            points = rule.points_at_rank(rank)
            value = points * decay.factor(now_step - decay.step_of(event.ts_us))
            lines.append(
                EngagementLine(rule.name, event.event_id, event.name, event.ts_us, points, value)
            )
        stage = playbook.stage_event(event.name)
        if stage is not None and (explicit is None or event.order_key >= explicit[0]):
            explicit = (event.order_key, stage)
        if playbook.suppresses(event.name):
            suppressed = True

    fit = sum(line.points for line in fits)
    engagement = sum(line.value for line in lines)
    stage = stage_of(playbook, fit, engagement, explicit[1] if explicit else None)
    return ScoredLead(
        lead_id=lead_id,
        fit=fit,
        engagement=engagement,
        temperature=temperature_of(playbook, fit + engagement),
        stage=stage,
        funnel=funnel_of(playbook, stage),
        suppressed=suppressed,
        last_activity_us=counted[-1].ts_us if counted else None,
        event_count=len(counted),
        engagement_lines=tuple(lines),
        fit_lines=fits,
    )


def score_reference(
    playbook: Playbook,
    events: Iterable[Event],
    leads: Mapping[str, Mapping[str, Any]],
    as_of_us: int,
) -> dict[str, ScoredLead]:
    """Every lead that has attributes or events at or before ``as_of_us``, scored then.

    An event id repeated (even under another lead) is the first event with that id only.
    """
    by_lead: dict[str, list[Event]] = defaultdict(list)
    for event in distinct_events(events):
        if event.ts_us <= as_of_us:
            by_lead[event.lead_id].append(event)
    lead_ids = sorted(set(by_lead) | set(leads))
    return {
        lead_id: score_lead_reference(
            playbook, lead_id, by_lead.get(lead_id, []), leads.get(lead_id, {}), as_of_us
        )
        for lead_id in lead_ids
    }
