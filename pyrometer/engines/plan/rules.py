"""Which rules an event may earn, by name: the first thing every engine needs.

Engines join events to rules on the raw event name as spelled in the data (a file's
dictionary of names answers that join for free), so the plan is made per raw spelling:
``"Demo Request"`` and ``demo_request`` both mean the playbook's ``demo_request``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pyrometer.core.conditions import normalize_name
from pyrometer.core.playbook import EngagementRule, Playbook
from pyrometer.engines.plan.conditions import ALWAYS, AllFields, Match, any_of, compile_where


@dataclass(frozen=True)
class Term:
    """A rule an event name may earn, and the condition its properties must meet."""

    rule_id: int
    match: Match


@dataclass(frozen=True)
class Meaning:
    """What a raw name means besides points."""

    stage: str | None
    """The lifecycle stage it moves a lead to."""
    suppress: bool
    bad: bool
    """Blank: the lead's points are NaN, and scoring reports it."""


@dataclass(frozen=True)
class Candidate:
    """One (raw event name, rule that may match it) pair, for the exact windows of leads
    whose caps may have bitten and for ledgers; a name no rule names has one with
    ``rule_id`` ``None``. ``cand`` numbers a name's rows: ``cand = 0`` stands for the event."""

    raw: str
    rule_id: int | None
    cond_id: int
    """Index into :attr:`Candidates.conditions` (0: always)."""
    cand: int
    points: float | None
    window_us: int | None
    meaning: Meaning


@dataclass(frozen=True)
class Candidates:
    """Every (raw name, rule) pair, and the distinct conditions they test."""

    rows: tuple[Candidate, ...]
    conditions: tuple[Match, ...]
    """By ``cond_id``; the first is :data:`ALWAYS`."""


def event_name(playbook: Playbook, raw: str) -> str:
    """What an event name as spelled in the data means: normalised, aliases resolved (the
    ledger still shows the name as sent)."""
    return playbook.event_name(normalize_name(raw))


def meaning(playbook: Playbook, raw: str) -> Meaning:
    name = event_name(playbook, raw)
    stage = playbook.stage_event(name)
    return Meaning(
        None if stage is None else str(stage), playbook.suppresses(name), raw.strip() == ""
    )


def spellings(playbook: Playbook, raw_names: Sequence[str]) -> dict[str, list[str]]:
    """Playbook name → its spellings in the data, in the data's order."""
    out: dict[str, list[str]] = defaultdict(list)
    for raw in raw_names:
        out[event_name(playbook, raw)].append(raw)
    return out


def terms(playbook: Playbook, properties: Collection[str]) -> dict[str, list[Term]]:
    """Playbook event name → the rules it may earn, in rule order, with their conditions
    over an event table with the (normalised) property columns ``properties``."""
    missing = playbook.missing_values
    out: dict[str, list[Term]] = defaultdict(list)
    for rule_id, rule in enumerate(playbook.engagement):
        wheres: dict[str, list[AllFields]] = defaultdict(list)
        for alt in rule.alternatives:
            wheres[alt.event].append(compile_where(alt.where, properties, missing))
        for name, alternatives in wheres.items():
            out[name].append(Term(rule_id, any_of(alternatives)))
    return out


def candidates(
    playbook: Playbook, by_name: dict[str, list[Term]], raw_names: Sequence[str]
) -> Candidates:
    """The (raw name, rule) pairs of ``raw_names`` (see :class:`Candidate`)."""
    condition_ids: dict[Match, int] = {ALWAYS: 0}
    rules = playbook.engagement
    rows = []
    for raw in raw_names:
        name = event_name(playbook, raw)
        what = meaning(playbook, raw)
        for cand, term in enumerate(by_name.get(name, [])):
            cond_id = condition_ids.setdefault(term.match, len(condition_ids))
            rule = rules[term.rule_id]
            rows.append(
                Candidate(raw, term.rule_id, cond_id, cand, rule.points, rule.window_us, what)
            )
        if name not in by_name:
            rows.append(Candidate(raw, None, 0, 0, None, None, what))
    return Candidates(tuple(rows), tuple(condition_ids))


@dataclass(frozen=True)
class Limit:
    """A capped or ``once`` rule: the first events of a window get ``points`` until
    ``cap_points`` are given (``once``: one event's worth, over the lead's life)."""

    rule_id: int
    points: float
    cap_points: float
    slots: int
    """How many events of one window can get points."""
    window_us: int | None
    once: bool
    full: int
    """Events of one window that all earn the whole ``points`` (:func:`full_slots`): a
    window with no more events than these is not capped; the cap proof's bound."""

    def given(self, rank: int) -> float:
        """Points of the event at ``rank`` (0-based) of its window, as engines compute it."""
        size = abs(self.points)
        given = max(0.0, min(size, self.cap_points - rank * size))
        return given if self.points >= 0 else -given


def full_slots(rule: EngagementRule) -> int:
    """How many events of one window earn the rule's whole points."""
    full = 0
    while full < rule.slots and rule.points_at_rank(full) == rule.points != 0:
        full += 1
    return full


def limits(playbook: Playbook) -> dict[int, Limit]:
    """Every capped or ``once`` rule, by rule id."""
    return {
        i: Limit(
            i, rule.points, rule.cap_points, rule.slots, rule.window_us, rule.once, full_slots(rule)
        )
        for i, rule in enumerate(playbook.engagement)
        if rule.limited
    }


@dataclass(frozen=True)
class OnceRule:
    """A ``once`` rule as pass 2a finds its first event: any of ``alternatives``, each the
    raw spellings of a name and the ``where`` its event must meet."""

    rule_id: int
    points: float
    alternatives: tuple[tuple[tuple[str, ...], AllFields], ...]


def once_rules(
    playbook: Playbook, raw_names: Sequence[str], properties: Collection[str]
) -> tuple[OnceRule, ...]:
    """The ``once`` rules some raw name of the table may earn."""
    spelled = spellings(playbook, raw_names)
    missing = playbook.missing_values
    out = []
    for i, rule in enumerate(playbook.engagement):
        if not rule.once:
            continue
        alternatives = tuple(
            (tuple(spelled[alt.event]), compile_where(alt.where, properties, missing))
            for alt in rule.alternatives
            if spelled.get(alt.event)
        )
        if alternatives:
            out.append(OnceRule(i, rule.points, alternatives))
    return tuple(out)
