"""Which lead enrols in which sequence, what its next step is, and when it leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyrometer.core.conditions import DEFAULT_MISSING_VALUES
from pyrometer.core.nurture_spec import Sequence, Step

ACTIVE = "active"
COMPLETED = "completed"
EXITED = "exited"


@dataclass(frozen=True, slots=True)
class LeadView:
    """What the decisions read of a lead, as it is now."""

    lead_id: str
    temperature: str
    stage: str
    attributes: Mapping[str, Any]  # as the rules read them (normalised, aliases resolved)
    fit: float = 0.0  # the lead's fit points


@dataclass(frozen=True, slots=True)
class Trigger:
    """Something that happened to a lead: an event (``event``), or a recorded move
    (``kind``, ``old``, ``new``)."""

    event: str | None = None
    kind: str | None = None
    old: str | None = None
    new: str | None = None


def _same(name: str) -> str:
    return name


def triggers(seq: Sequence, trigger: Trigger, event_name: Callable[[str], str] = _same) -> bool:
    """Whether ``trigger`` is the sequence's ``enrol`` trigger (its filters aside).
    ``event_name``: what a name means (the playbook's aliases; ``trigger.event`` is
    already what it means), so ``enrol: {event: Trial Started}`` fires on its event."""
    enrol = seq.enrol
    if enrol.event is not None:
        return trigger.event == event_name(enrol.event)
    move = enrol.transition
    if move is None:  # a standing condition: no trigger, see should_enrol_standing
        return False
    return (
        trigger.kind == move.kind
        and trigger.new == move.to
        and trigger.old != trigger.new
        and (move.from_ is None or trigger.old == move.from_)
    )


def should_enrol(
    seq: Sequence,
    trigger: Trigger,
    lead: LeadView,
    enrolled_before: bool,
    active_now: bool,
    missing_values: Iterable[str] = DEFAULT_MISSING_VALUES,
    event_name: Callable[[str], str] = _same,
) -> bool:
    """A lead enters on its trigger when the filters hold, it is not in the sequence now,
    and (unless ``reentry``) it never was; and not when it would leave at once."""
    if (
        not triggers(seq, trigger, event_name)
        or active_now
        or (enrolled_before and not seq.reentry)
    ):
        return False
    if seq.enrol.temperature and lead.temperature not in seq.enrol.temperature:
        return False
    if seq.enrol.where is not None and not seq.enrol.where.matches(lead.attributes, missing_values):
        return False
    return exit_reason(seq, lead.temperature, lead.stage) is None


def exit_reason(
    seq: Sequence, temperature: str, stage: str, event: str | None = None
) -> str | None:
    """Why a lead in the sequence leaves now, or ``None``. A lead that sales works (hot,
    SQL or later, by default) or that replied is not nurtured any more."""
    rules = seq.exit
    if temperature in rules.temperatures:
        return f"temperature:{temperature}"
    if stage in rules.stages:
        return f"stage:{stage}"
    if event is not None and event in rules.events:
        return f"event:{event}"
    return None


@dataclass(frozen=True, slots=True)
class Position:
    """Where an enrolment stands: the step to run next (``None``: done) and when."""

    step: int | None
    due_us: int | None


def position_from(seq: Sequence, index: int, now_us: int) -> Position:
    """The next action at or after step ``index``: waits in between add up to its due
    time (an ``until`` step is due at its time-out). Past the last step the enrolment is
    complete (``step`` is ``None``)."""
    due = now_us
    steps: tuple[Step, ...] = seq.steps
    while index < len(steps) and steps[index].wait_us is not None:
        due += steps[index].wait_us or 0
        index += 1
    if index >= len(steps):
        return Position(None, None)
    until = steps[index].until
    if until is not None:  # it sits there until the event; due only at the time-out
        due += until.timeout_us
    return Position(index, due)


def start(seq: Sequence, now_us: int) -> Position:
    """Enrolment: the first action, right away unless the sequence opens with a wait."""
    return position_from(seq, 0, now_us)


def after(seq: Sequence, index: int, now_us: int) -> Position:
    """Step ``index`` ran at ``now_us``: what comes next."""
    return position_from(seq, index + 1, now_us)


def waiting_for(seq: Sequence, index: int | None) -> str | None:
    """The event an enrolment at step ``index`` waits for (an ``until`` step), or ``None``."""
    if index is None or index >= len(seq.steps):
        return None
    until = seq.steps[index].until
    return None if until is None else until.event


def on_event(seq: Sequence, index: int | None, event: str, now_us: int) -> Position | None:
    """The lead did ``event`` while at step ``index``: where it goes when that is the
    event its ``until`` step waits for (the next action, at once), else ``None``."""
    if index is None or waiting_for(seq, index) != event:
        return None
    return after(seq, index, now_us)


def timed_out(seq: Sequence, index: int, now_us: int) -> Position | str:
    """An ``until`` step's time-out passed without the event: the next action, or the
    exit reason (``timeout:<event>``) when the step says ``on_timeout: exit``."""
    until = seq.steps[index].until
    assert until is not None
    if until.on_timeout == "exit":
        return f"timeout:{until.event}"
    return after(seq, index, now_us)


# ---------------------------------------------------------------- standing conditions


def standing(sequences: Iterable[Sequence]) -> tuple[Sequence, ...]:
    """The sequences a lead enters while a condition on it holds."""
    return tuple(seq for seq in sequences if seq.enrol.condition is not None)


def may_hold(seq: Sequence, temperature: str, stage: str, fit: float) -> bool:
    """The standing condition's cheap part (no attributes): ``False`` means it does not
    hold, ``True`` that :func:`holds` must still look at the attributes."""
    cond, enrol = seq.enrol.condition, seq.enrol
    if cond is None:
        return False
    if enrol.temperature and temperature not in enrol.temperature:
        return False
    if cond.temperature and temperature not in cond.temperature:
        return False
    if cond.stage and stage not in cond.stage:
        return False
    return cond.fit is None or cond.fit.matches(fit)


def needs_attributes(seq: Sequence) -> bool:
    cond = seq.enrol.condition
    return seq.enrol.where is not None or (cond is not None and cond.where is not None)


def holds(
    seq: Sequence, lead: LeadView, missing_values: Iterable[str] = DEFAULT_MISSING_VALUES
) -> bool:
    """Whether the lead, as it is now, satisfies the sequence's standing condition (and
    the ``enrol`` filters)."""
    if not may_hold(seq, lead.temperature, lead.stage, lead.fit):
        return False
    cond = seq.enrol.condition
    assert cond is not None
    for where in (seq.enrol.where, cond.where):
        if where is not None and not where.matches(lead.attributes, missing_values):
            return False
    return True


def should_enrol_standing(
    seq: Sequence,
    lead: LeadView,
    enrolled_before: bool,
    active_now: bool,
    missing_values: Iterable[str] = DEFAULT_MISSING_VALUES,
) -> bool:
    """A lead enters a standing-condition sequence when the condition holds, it is not
    in the sequence now and (unless ``reentry``: then at any later change that finds the
    condition holding) never was; and not when it would leave at once."""
    if active_now or (enrolled_before and not seq.reentry):
        return False
    if not holds(seq, lead, missing_values):
        return False
    return exit_reason(seq, lead.temperature, lead.stage) is None
