"""What happens to one lead's stored record when events, attributes or time arrive.

Pure functions between :class:`LeadRecord` values (a lead row as Python) and the core's
incremental scorer; the transaction code around them only loads and stores. Keeping this
free of SQL lets the same code serve ingest, identify stitching, the decay scheduler and
rescoring after a playbook publish.

Decay transitions need care: ``apply_event`` reports the class changes decay caused since
the lead's last activity, and the scheduler records the same changes when they happen.
``decay_checked_us`` marks how far decay transitions are already recorded, so each is
stored exactly once, whoever sees it first. Ingest records the ones already due when it
stores a lead (events that arrive late), the scheduler those that come due later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pyrometer.core.classify import classes_of
from pyrometer.core.conditions import normalize_record
from pyrometer.core.incremental import (
    LeadState,
    apply_attributes,
    apply_event,
    decay_transitions,
    new_state,
    next_decay_transition_us,
    seal,
    snapshot,
)
from pyrometer.core.model import EngagementLine, Event, ScoredLead, Transition
from pyrometer.core.playbook import Playbook
from pyrometer.store.records import Change, LeadRecord

FOREVER_US = 2**62
NEVER_US = -(2**62)  # no decay transition recorded yet
LedgerKey = tuple[str, str]  # (rule, event_id)


def as_of(state: LeadState, now_us: int) -> int:
    """Scores are read as of now, or as of the latest event when a clock runs behind."""
    last = state.last_activity_us
    return now_us if last is None else max(now_us, last)


def current(playbook: Playbook, state: LeadState, now_us: int) -> ScoredLead:
    return snapshot(playbook, state, as_of(state, now_us))


def blank_record(
    playbook: Playbook, version: int, lead_id: str, attributes: Mapping[str, Any], now_us: int
) -> LeadRecord:
    """A lead seen for the first time: fit from its attributes, nothing done yet."""
    attributes = normalize_record(attributes)
    if attributes:
        state = apply_attributes(playbook, new_state(lead_id), attributes, now_us).state
    else:
        state = replace(_blank_state(playbook), lead_id=lead_id)
    temperature, stage = classes_now(playbook, state, now_us)
    return LeadRecord(
        lead_id=lead_id,
        attributes=attributes,
        source=None,
        owner=None,
        consent=None,
        created_us=now_us,
        updated_us=now_us,
        playbook_version=version,
        state=state,
        temperature=temperature,
        stage=stage,
        decay_checked_us=NEVER_US,
        next_decay_us=None,
    )


_BLANKS: dict[int, tuple[Playbook, LeadState]] = {}


def _blank_state(playbook: Playbook) -> LeadState:
    """The state of a lead with no attributes: the same for every such lead, so cached."""
    cached = _BLANKS.get(id(playbook))
    if cached is None or cached[0] is not playbook:
        cached = (playbook, apply_attributes(playbook, new_state(""), {}, 0).state)
        if len(_BLANKS) > 64:
            _BLANKS.clear()
        _BLANKS[id(playbook)] = cached
    return cached[1]


def next_decay_after(playbook: Playbook, state: LeadState, after_us: int) -> int | None:
    """The first decay class change after ``after_us`` (closed form, no scan of time)."""
    if state.anchor_step is None:
        return None
    if after_us < (state.anchor_step + 1) * playbook.decay.step_us:
        # Nothing after the anchor is recorded yet: the core's first crossing is the one.
        return next_decay_transition_us(playbook, state)
    for transition in decay_transitions(playbook, state, FOREVER_US):
        if transition.at_us > after_us:
            return transition.at_us
    return None


def classes_now(playbook: Playbook, state: LeadState, now_us: int) -> tuple[str, str]:
    """The lead's temperature and stage as of now: :func:`current`'s, without the rest
    of the snapshot (this runs for every lead ingest stores)."""
    engagement = state.engagement_at(playbook, playbook.decay.step_of(as_of(state, now_us)))
    temperature, stage = classes_of(playbook, state.fit, engagement, state.explicit_stage)
    return str(temperature), str(stage)


def _finish(
    playbook: Playbook, record: LeadRecord, state: LeadState, checked_us: int, now_us: int
) -> LeadRecord:
    state = seal(playbook, state)  # the stored state holds a bounded set of cap windows
    temperature, stage = classes_now(playbook, state, now_us)
    return LeadRecord(
        lead_id=record.lead_id,
        attributes=record.attributes,
        source=record.source,
        owner=record.owner,
        consent=record.consent,
        created_us=record.created_us,
        updated_us=now_us,
        playbook_version=record.playbook_version,
        state=state,
        temperature=temperature,
        stage=stage,
        decay_checked_us=checked_us,
        next_decay_us=next_decay_after(playbook, state, checked_us),
    )


def apply_events(
    playbook: Playbook, record: LeadRecord, events: Iterable[Event], now_us: int
) -> Change:
    """New events (none seen before) into the lead's state, in O(1) each."""
    events = list(events)
    if not events:
        return Change(record)
    state = record.state
    checked = record.decay_checked_us
    transitions: list[Transition] = []
    step_us = playbook.decay.step_us
    for event in sorted(events, key=lambda e: e.order_key):
        step = apply_event(playbook, state, event)
        for transition in step.transitions:
            if transition.cause != "decay" or transition.at_us > checked:
                transitions.append(transition)
        state = step.state
        if state.anchor_step is not None:
            # Decay changes up to the new anchor were just reported; later ones start after it.
            checked = max(checked, state.anchor_step * step_us)
    updated = _finish(playbook, record, state, checked, now_us)
    if updated.next_decay_us is not None and updated.next_decay_us <= now_us:
        # Late events can leave decay crossings between them and now: record those here,
        # at their own times, as the scheduler would a moment later (saving it a trip).
        due = advance_decay(playbook, updated, now_us)
        updated, transitions = due.record, [*transitions, *due.transitions]
    latest = max(event.ts_us for event in events)
    return Change(updated, (*transitions, *_reconcile(record, updated, transitions, latest)))


def _reconcile(
    before: LeadRecord, after: LeadRecord, transitions: Iterable[Transition], at_us: int
) -> list[Transition]:
    """The transition that makes the recorded history end where the lead now is.

    Late events can say a lead never cooled when its cooling is recorded already: the
    scorer then sees no change (hot all along) while the store's history ends at warm.
    History is not rewritten; one transition, dated by the latest event, brings it to
    the lead's class, so whatever acts on transitions (routing) sees the lead turn hot.
    """
    ends = {"temperature": before.temperature, "stage": before.stage}
    for transition in transitions:
        ends[transition.kind] = transition.new
    return [
        Transition(after.lead_id, at_us, kind, ends[kind], now, "late events")
        for kind, now in (("temperature", after.temperature), ("stage", after.stage))
        if ends[kind] != now
    ]


def set_attributes(
    playbook: Playbook, record: LeadRecord, attributes: Mapping[str, Any], now_us: int
) -> Change:
    """New attributes (merged in; a ``None`` value removes one): fit is rescored."""
    merged = dict(record.attributes)
    for key, value in normalize_record(attributes).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if merged == dict(record.attributes):
        return Change(record)
    at_us = as_of(record.state, now_us)
    step = apply_attributes(playbook, record.state, merged, at_us)
    updated = _finish(
        playbook, replace(record, attributes=merged), step.state, record.decay_checked_us, now_us
    )
    return Change(updated, step.transitions)


def replay(
    playbook: Playbook,
    version: int,
    record: LeadRecord,
    events: Iterable[Event],
    now_us: int,
    cause: str,
) -> Change:
    """Rebuild the lead from its whole event log (new playbook, or events it inherited).

    History before now is not rewritten: one transition per class that differs from what
    the lead was, dated now, with ``cause`` saying why.
    """
    state = apply_attributes(playbook, new_state(record.lead_id), record.attributes, 0).state
    book: dict[LedgerKey, EngagementLine] = {}
    for event in sorted(events, key=lambda e: e.order_key):
        step = apply_event(playbook, state, event)
        state = step.state
        for line in step.lines:
            book[(line.rule, line.event_id)] = line
    checked = max(now_us, state.last_activity_us or 0)
    updated = _finish(playbook, replace(record, playbook_version=version), state, checked, now_us)
    transitions = [
        Transition(record.lead_id, checked, kind, old, new, cause)
        for kind, old, new in (
            ("temperature", record.temperature, updated.temperature),
            ("stage", record.stage, updated.stage),
        )
        if old != new
    ]
    return Change(updated, tuple(transitions), tuple(book.values()))


def fold(
    playbook: Playbook,
    record: LeadRecord,
    state: LeadState,
    events: Iterable[Event],
    now_us: int,
    cause: str,
) -> Change:
    """A merge: the events of the lead that merged in, folded into ``state`` one by one.

    ``record`` is the lead as it was before the merge (its attributes already merged);
    ``state`` is where the merged history starts from: the lead's own state, or, when the
    other side has more events, the other side's state under this lead's id (``events``
    are then this lead's). :func:`apply_event` gives the same state for the same events
    in any order, so this is :func:`replay` of the whole merged log, in time proportional
    to the events folded in, not to the lead's history. Transitions as :func:`replay`'s:
    one per class that differs from what the lead was, dated now.
    """
    if state.lead_id != record.lead_id:
        state = replace(state, lead_id=record.lead_id)
    state = apply_attributes(playbook, state, record.attributes, now_us).state
    for event in sorted(events, key=lambda e: e.order_key):
        if event.lead_id != record.lead_id:
            event = replace(event, lead_id=record.lead_id)
        state = apply_event(playbook, state, event).state
    checked = max(now_us, state.last_activity_us or 0)
    updated = _finish(playbook, record, state, checked, now_us)
    transitions = [
        Transition(record.lead_id, checked, kind, old, new, cause)
        for kind, old, new in (
            ("temperature", record.temperature, updated.temperature),
            ("stage", record.stage, updated.stage),
        )
        if old != new
    ]
    return Change(updated, tuple(transitions))


PROBABILITY_CAUSE = "p_convert"


def probability_temperature(change: Change, before: str, temperature: str, at_us: int) -> Change:
    """The change with the lead's temperature taken from its probability's band
    (``temperature.probability`` with a model active) instead of its points.

    ``before`` is the temperature the lead has in the store. The points' temperature
    transitions are dropped (they describe a temperature the lead no longer has); if the
    band differs from ``before``, one transition to it, at ``at_us``, takes their place,
    so routing and webhooks follow the probability as they follow points otherwise.
    """
    record = change.record
    if record.temperature == temperature == before and all(
        t.kind != "temperature" for t in change.transitions
    ):
        return change  # most writes: nothing to take out, nothing to add
    kept = tuple(t for t in change.transitions if t.kind != "temperature")
    if before != temperature:
        moved = Transition(
            change.record.lead_id, at_us, "temperature", before, temperature, PROBABILITY_CAUSE
        )
        kept = (*kept, moved)
    return Change(record.with_temperature(temperature), kept, change.lines)


def advance_decay(playbook: Playbook, record: LeadRecord, now_us: int) -> Change:
    """Record the class changes decay alone caused up to now, each at its own moment."""
    due = [
        t
        for t in decay_transitions(playbook, record.state, now_us)
        if t.at_us > record.decay_checked_us
    ]
    checked = max(record.decay_checked_us, now_us)
    return Change(_finish(playbook, record, record.state, checked, now_us), tuple(due))
