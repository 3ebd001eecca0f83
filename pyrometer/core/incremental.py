"""Incremental scoring: a lead's state plus one event gives the new state, in O(1).

The state keeps engagement as one number, its value at the *anchor* (the latest decay step
seen). A newer event first decays it to the event's step; an older one (arriving out of
order) adds its points already decayed to the anchor. Either way the result equals
:mod:`pyrometer.core.reference` for the same events in any order.

Caps and ``once`` need to know which events came first in a window, so for each limited
rule the state keeps, per window, the few earliest events that can still earn points (at
most ``rule.slots`` of them). A late event that lands among them pushes the last one out,
and the points that moved are corrected: every event's line is re-emitted with its new
points, so a stored ledger stays exact.

Windows of caps with a period (``cap: {per: 1d}``) would pile up with the lead's history
(a lead active every day for a year: 365 per such rule), and the state is read and written
whole on every change. A window whose period is over is not settled: an event may arrive
late, for any past window, and move its ranks. So :func:`seal` keeps, per such rule, its
:data:`MAX_WINDOWS` most recent windows (down to three quarters of that when there are
more), and records up to where it dropped (``sealed``). An event that needs a dropped
window makes :func:`apply_event` raise :class:`WindowsSealed`; the caller, which has the
event log, rebuilds exactly those windows (:func:`sealed_windows`, :func:`restore_windows`)
and applies it again. The bound is by count, not age, so the leads most have (a few dozen
active days) never drop a window and never pay a read of the log, however late their
events come; scores stay exactly the unbounded state's.

Everything here is pure: functions return new states and never touch their inputs.

Each event is applied once: the state keeps no set of the ids it has seen, so the caller
gives every event id once (the service's event log keeps the first message with an id;
:func:`pyrometer.core.events.distinct_events` does the same for events in memory).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pyrometer.core.classify import (
    CLASSIFY_DECIMALS,
    classes_of,
    funnel_of,
    stage_of,
    temperature_of,
)
from pyrometer.core.fit import fit_and_suppression
from pyrometer.core.model import EngagementLine, Event, ScoredLead, Transition
from pyrometer.core.playbook import EngagementRule, Metric, Playbook, Stage, Temperature

_TOLERANCE = 10**-CLASSIFY_DECIMALS
# Windows kept per capped rule with a period: a month of daily caps of a lead active every
# day. Past it, the oldest are dropped down to three quarters of it, so dropping happens
# once per eight new windows, not with every one.
MAX_WINDOWS = 32
WindowKey = tuple[str, int]
Member = tuple[int, str, str]  # (ts_us, event_id, event name): sorts in event order


@dataclass(frozen=True, slots=True)
class LeadState:
    """All the incremental scorer remembers about one lead."""

    lead_id: str
    fit: float = 0.0
    fit_rules: tuple[str, ...] = ()
    suppressed_by_attributes: bool = False
    anchor_step: int | None = None
    engagement_at_anchor: float = 0.0
    windows: Mapping[WindowKey, tuple[Member, ...]] = field(default_factory=dict)
    lifecycle: tuple[int, str, Stage] | None = None
    suppressed_at_us: int | None = None
    last_activity_us: int | None = None
    event_count: int = 0
    # Per rule: its windows that ended at or before this time may have been dropped
    # (:func:`seal`); a window held is complete either way.
    sealed: Mapping[str, int] = field(default_factory=dict)

    @property
    def explicit_stage(self) -> Stage | None:
        return self.lifecycle[2] if self.lifecycle else None

    @property
    def suppressed(self) -> bool:
        return self.suppressed_by_attributes or self.suppressed_at_us is not None

    def engagement_at(self, playbook: Playbook, step: int) -> float:
        """Engagement at decay step ``step`` (not before the anchor)."""
        if self.anchor_step is None:
            return 0.0
        if step < self.anchor_step:
            raise ValueError("the state holds events after that time; score from the event log")
        return self.engagement_at_anchor * playbook.decay.factor(step - self.anchor_step)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for stores; :meth:`from_dict` reads it back."""
        return {
            "lead_id": self.lead_id,
            "fit": self.fit,
            "fit_rules": list(self.fit_rules),
            "suppressed_by_attributes": self.suppressed_by_attributes,
            "anchor_step": self.anchor_step,
            "engagement_at_anchor": self.engagement_at_anchor,
            "windows": [
                [rule, window, [list(key) for key in keys]]
                for (rule, window), keys in self.windows.items()
            ],
            "lifecycle": list(self.lifecycle) if self.lifecycle else None,
            "suppressed_at_us": self.suppressed_at_us,
            "last_activity_us": self.last_activity_us,
            "event_count": self.event_count,
            "sealed": dict(self.sealed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeadState:
        lifecycle = data.get("lifecycle")
        return cls(
            lead_id=data["lead_id"],
            fit=data["fit"],
            fit_rules=tuple(data["fit_rules"]),
            suppressed_by_attributes=data["suppressed_by_attributes"],
            anchor_step=data["anchor_step"],
            engagement_at_anchor=data["engagement_at_anchor"],
            windows={
                (rule, window): tuple((int(ts), str(eid), str(name)) for ts, eid, name in keys)
                for rule, window, keys in data["windows"]
            },
            lifecycle=(int(lifecycle[0]), str(lifecycle[1]), Stage(lifecycle[2]))
            if lifecycle
            else None,
            suppressed_at_us=data["suppressed_at_us"],
            last_activity_us=data["last_activity_us"],
            event_count=data["event_count"],
            sealed={str(rule): int(end) for rule, end in (data.get("sealed") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What one change did: the new state, ledger lines to upsert, transitions caused.

    ``lines`` carry the points given; their ``value`` is the points undecayed, to be
    revalued at read time with :func:`pyrometer.core.ledger.revalue`. A line may re-state
    an earlier event whose capped points moved because this one arrived late.
    """

    state: LeadState
    lines: tuple[EngagementLine, ...]
    transitions: tuple[Transition, ...]


def new_state(lead_id: str) -> LeadState:
    return LeadState(lead_id=str(lead_id))


Classes = tuple[Temperature, Stage]


def _classes(playbook: Playbook, state: LeadState, engagement: float) -> Classes:
    lifecycle = state.lifecycle
    return classes_of(playbook, state.fit, engagement, lifecycle[2] if lifecycle else None)


def _transitions(
    playbook: Playbook, state: LeadState, before: Classes, after: Classes, at_us: int, cause: str
) -> list[Transition]:
    out = []
    for kind, old, new in (("temperature", before[0], after[0]), ("stage", before[1], after[1])):
        if old != new:
            out.append(Transition(state.lead_id, at_us, kind, str(old), str(new), cause))
    return out


def apply_event(playbook: Playbook, state: LeadState, event: Event) -> Step:
    """Score one event into ``state``. Events may arrive in any order."""
    if event.lead_id != state.lead_id:
        raise ValueError(f"event {event.event_id} is for lead {event.lead_id}, not {state.lead_id}")
    decay = playbook.decay
    event_step = decay.step_of(event.ts_us)
    transitions: list[Transition] = []

    # The anchor moves to the event's step if it is newer (engagement decayed to it); the
    # new state is built once, at the end (this function is the service's inner loop).
    anchor = state.anchor_step
    if anchor is None:
        anchor, engagement = event_step, 0.0
    elif event_step > anchor:
        transitions += decay_transitions(playbook, state, event.ts_us)
        engagement = state.engagement_at(playbook, event_step)
        anchor = event_step
    else:
        engagement = state.engagement_at_anchor
    before = _classes(playbook, state, engagement)  # reads only fit and the explicit stage

    windows = state.windows
    lines: list[EngagementLine] = []

    def value_at_anchor(points: float, ts_us: int) -> float:
        return points * decay.factor(anchor - decay.step_of(ts_us))

    for rule in playbook.rules_matching(event.name, event.properties):
        if not rule.limited:
            points = rule.points
        else:
            window = event.ts_us // rule.window_us if rule.window_us else 0
            key = (rule.name, window)
            members = windows.get(key)
            if members is None:
                sealed = state.sealed.get(rule.name) if state.sealed else None
                if sealed is not None and (window + 1) * (rule.window_us or 0) <= sealed:
                    raise WindowsSealed(state.lead_id, [key])
                members = ()
            rank = bisect.bisect_left(members, event.order_key)
            points = rule.points_at_rank(rank)
            if rank < rule.slots:
                # Everyone after the newcomer moves one rank down; the last may drop out.
                for old_rank in range(rank, len(members)):
                    ts_us, event_id, name = members[old_rank]
                    old_points = rule.points_at_rank(old_rank)
                    new_points = rule.points_at_rank(old_rank + 1)
                    if new_points != old_points:
                        engagement += value_at_anchor(new_points - old_points, ts_us)
                        lines.append(
                            EngagementLine(rule.name, event_id, name, ts_us, new_points, new_points)
                        )
                member = (event.ts_us, event.event_id, event.name)
                grown = (*members[:rank], member, *members[rank:])
                windows = {**windows, key: grown[: rule.slots]}
        engagement += value_at_anchor(points, event.ts_us)
        lines.append(
            EngagementLine(rule.name, event.event_id, event.name, event.ts_us, points, points)
        )

    lifecycle = state.lifecycle
    stage = playbook.stage_event(event.name)
    if stage is not None and (lifecycle is None or event.order_key >= lifecycle[:2]):
        lifecycle = (event.ts_us, event.event_id, stage)
    suppressed_at = state.suppressed_at_us
    if playbook.suppresses(event.name):
        suppressed_at = event.ts_us if suppressed_at is None else min(suppressed_at, event.ts_us)
    last = state.last_activity_us
    state = replace(
        state,
        anchor_step=anchor,
        engagement_at_anchor=engagement,
        windows=windows,
        lifecycle=lifecycle,
        suppressed_at_us=suppressed_at,
        last_activity_us=event.ts_us if last is None else max(last, event.ts_us),
        event_count=state.event_count + 1,
    )
    after = _classes(playbook, state, engagement)
    assert state.last_activity_us is not None
    transitions += _transitions(
        playbook, state, before, after, state.last_activity_us, f"event:{event.event_id}"
    )
    return Step(state, tuple(lines), tuple(transitions))


class WindowsSealed(LookupError):
    """The event falls in cap windows :func:`seal` dropped from the state: restore them
    from the event log (:func:`restore_windows`) and apply it again."""

    def __init__(self, lead_id: str, keys: list[WindowKey]) -> None:
        super().__init__(f"lead {lead_id}: cap windows {keys} were sealed; restore them first")
        self.keys = keys


def seal(playbook: Playbook, state: LeadState, max_windows: int = MAX_WINDOWS) -> LeadState:
    """Drop the oldest windows of each capped rule with a period that holds more than
    ``max_windows`` of them, keeping its ``max_windows * 3 // 4`` most recent.

    Windows of ``once`` rules and of caps without a period span the lead's life: kept.
    Costs nothing while the state holds ``max_windows`` windows or fewer in all.
    """
    windows = state.windows
    if len(windows) <= max_windows:
        return state
    rules = _limited_rules(playbook)
    by_rule: dict[str, list[int]] = {}
    for name, window in windows:
        rule = rules.get(name)
        if rule is not None and rule.window_us:
            by_rule.setdefault(name, []).append(window)
    keep = max(1, max_windows * 3 // 4)
    dropped: set[WindowKey] = set()
    sealed = dict(state.sealed)
    for name, held in by_rule.items():
        if len(held) > max_windows:
            held.sort()
            cut = held[: len(held) - keep]
            dropped.update((name, window) for window in cut)
            end = (cut[-1] + 1) * (rules[name].window_us or 0)
            sealed[name] = max(sealed.get(name, end), end)
    if not dropped:
        return state
    kept = {key: members for key, members in windows.items() if key not in dropped}
    return replace(state, windows=kept, sealed=sealed)


def sealed_windows(
    playbook: Playbook, state: LeadState, events: Iterable[Event]
) -> list[tuple[WindowKey, int, int]]:
    """The dropped windows these events need, each with its span ``[start_us, end_us)``."""
    if not state.sealed:
        return []
    found: dict[WindowKey, tuple[int, int]] = {}
    for event in events:
        for rule in playbook.rules_matching(event.name, event.properties):
            sealed = state.sealed.get(rule.name)
            if sealed is None or not rule.window_us:
                continue
            window = event.ts_us // rule.window_us
            key = (rule.name, window)
            if (window + 1) * rule.window_us <= sealed and key not in state.windows:
                found[key] = (window * rule.window_us, (window + 1) * rule.window_us)
    return [(key, start, end) for key, (start, end) in sorted(found.items())]


def restore_windows(
    playbook: Playbook, state: LeadState, keys: Iterable[WindowKey], history: Iterable[Event]
) -> LeadState:
    """Rebuild dropped windows from the lead's events already scored into ``state`` (at
    least all of those inside the windows' spans; others are ignored): each window holds
    the earliest ``rule.slots`` events of its rule, exactly as if it had never been
    dropped."""
    wanted: dict[WindowKey, list[Member]] = {key: [] for key in keys}
    if not wanted:
        return state
    for event in history:
        for rule in playbook.rules_matching(event.name, event.properties):
            if rule.limited and rule.window_us:
                members = wanted.get((rule.name, event.ts_us // rule.window_us))
                if members is not None:
                    members.append((event.ts_us, event.event_id, event.name))
    rules = _limited_rules(playbook)
    restored = {
        key: tuple(sorted(members)[: rules[key[0]].slots]) for key, members in wanted.items()
    }
    return replace(state, windows={**state.windows, **restored})


_RULES: dict[int, tuple[Playbook, dict[str, EngagementRule]]] = {}


def _limited_rules(playbook: Playbook) -> dict[str, EngagementRule]:
    """The playbook's limited rules by name (cached per playbook object)."""
    cached = _RULES.get(id(playbook))
    if cached is None or cached[0] is not playbook:
        rules = {rule.name: rule for rule in playbook.engagement if rule.limited}
        if len(_RULES) > 64:
            _RULES.clear()
        cached = _RULES[id(playbook)] = (playbook, rules)
    return cached[1]


def apply_attributes(
    playbook: Playbook, state: LeadState, attributes: Mapping[str, Any], at_us: int
) -> Step:
    """New attributes (normalised keys) rescore fit; transitions are dated ``at_us``."""
    step = playbook.decay.step_of(at_us)
    if state.anchor_step is not None:
        step = max(step, state.anchor_step)
    engagement = state.engagement_at(playbook, step) if state.anchor_step is not None else 0.0
    before = _classes(playbook, state, engagement)
    lines, suppressed = fit_and_suppression(playbook, attributes)
    state = replace(
        state,
        fit=sum(line.points for line in lines),
        fit_rules=tuple(line.rule for line in lines),
        suppressed_by_attributes=suppressed,
    )
    after = _classes(playbook, state, engagement)
    return Step(state, (), tuple(_transitions(playbook, state, before, after, at_us, "attributes")))


def snapshot(playbook: Playbook, state: LeadState, as_of_us: int) -> ScoredLead:
    """The lead's scores and classes as of ``as_of_us`` (not before its latest event)."""
    if state.last_activity_us is not None and as_of_us < state.last_activity_us:
        raise ValueError(
            f"lead {state.lead_id} has events after {as_of_us}; score the past from the event log"
        )
    engagement = state.engagement_at(playbook, playbook.decay.step_of(as_of_us))
    stage = stage_of(playbook, state.fit, engagement, state.explicit_stage)
    return ScoredLead(
        lead_id=state.lead_id,
        fit=state.fit,
        engagement=engagement,
        temperature=temperature_of(playbook, state.fit + engagement),
        stage=stage,
        funnel=funnel_of(playbook, stage),
        suppressed=state.suppressed,
        last_activity_us=state.last_activity_us,
        event_count=state.event_count,
    )


def _crossing_steps(playbook: Playbook, state: LeadState) -> list[int]:
    """Steps after the anchor near which decay may change a class, in closed form.

    Engagement ``E·2^(-k/H)`` moves monotonically toward 0, so it crosses a threshold
    ``θ`` (same sign, smaller size) once, at ``k = H·log2(E/θ)``. Thresholds on the score
    are thresholds on engagement shifted by fit. The steps around each crossing are
    returned, since rounding to :data:`CLASSIFY_DECIMALS` can move a class change by one.
    """
    e = state.engagement_at_anchor
    if e == 0 or state.anchor_step is None:
        return []
    fit = state.fit
    thresholds = [playbook.temperature.hot - fit, playbook.temperature.warm - fit]
    for metric, *bounds in playbook.lifecycle.mql_bounds:
        if metric is Metric.FIT:
            continue
        shift = fit if metric is Metric.SCORE else 0.0
        thresholds += [bound - shift for bound in bounds if bound is not None]
    half_life = playbook.decay.half_life_steps
    reach = abs(e) + _TOLERANCE
    steps: set[int] = set()
    for theta in thresholds:
        if theta == 0 or (theta > 0) != (e > 0) or abs(theta) >= reach:
            continue
        k = half_life * math.log2(e / theta) if abs(theta) < abs(e) else 0.0
        base = math.floor(k)
        steps.update(s for s in (base - 1, base, base + 1, base + 2) if s >= 1)
    return sorted(steps)


def decay_transitions(playbook: Playbook, state: LeadState, until_us: int) -> list[Transition]:
    """Class changes that decay alone causes after the anchor, up to ``until_us``.

    Each is dated at the start of the decay step where it happens.
    """
    if state.anchor_step is None:
        return []
    step_us = playbook.decay.step_us
    last_step = playbook.decay.step_of(until_us) - state.anchor_step
    out: list[Transition] = []
    current = _classes(playbook, state, state.engagement_at_anchor)
    for k in _crossing_steps(playbook, state):
        if k > last_step:
            break
        engagement = state.engagement_at(playbook, state.anchor_step + k)
        classes = _classes(playbook, state, engagement)
        at_us = (state.anchor_step + k) * step_us
        out += _transitions(playbook, state, current, classes, at_us, "decay")
        current = classes
    return out


def next_decay_transition_us(
    playbook: Playbook, state: LeadState, after_us: int | None = None
) -> int | None:
    """When decay will next change this lead's temperature or stage after ``after_us``
    (default: the anchor), if ever.

    A scheduler sleeps until then instead of rescanning every lead, records the change,
    and asks again with ``after_us`` set to the time it recorded.
    """
    if state.anchor_step is None:
        return None
    step_us = playbook.decay.step_us
    since = state.anchor_step if after_us is None else max(state.anchor_step, after_us // step_us)
    current = _classes(playbook, state, state.engagement_at(playbook, since))
    for k in _crossing_steps(playbook, state):
        if state.anchor_step + k <= since:
            continue
        engagement = state.engagement_at(playbook, state.anchor_step + k)
        if _classes(playbook, state, engagement) != current:
            return (state.anchor_step + k) * step_us
    return None
