"""Who gets a lead, and why: the routing decision, as a pure function.

The order is the documents' and the issue's: a do-not-contact lead is never routed; a lead
with an active owner keeps that owner; otherwise the reps whose territory covers the lead,
then any rep, each time only those in working hours and under capacity, and finally the
unassigned queue. Among the candidates, capacity-weighted round-robin: the lowest share of
capacity used wins, ties go to the rep assigned least recently, then to the lowest id, so
the same inputs always give the same rep (replaying history routes the same way).

The ``reason`` is written for the sales manager reading a lead's history, not for us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from pyrometer.core.conditions import DEFAULT_MISSING_VALUES, Condition, Where
from pyrometer.core.model import Transition
from pyrometer.core.playbook import Routing
from pyrometer.core.timeutil import format_duration_us
from pyrometer.routing.reps import Rep

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


class Rule(StrEnum):
    """Which rule decided an assignment (for reports; ``reason`` is the sentence)."""

    SUPPRESSED = "suppressed"
    OWNER = "owner"
    TERRITORY = "territory"
    ROUND_ROBIN = "round_robin"
    FALLBACK = "fallback"
    UNASSIGNED = "unassigned"


@dataclass(frozen=True, slots=True)
class Assignment:
    """The chosen rep (``None``: not routed, or the unassigned queue) and why."""

    rep_id: str | None
    reason: str
    rule: Rule


def routes(policy: Routing, transition: Transition) -> bool:
    """Whether a recorded transition routes its lead, per the playbook's ``routing.when``."""
    if transition.old == transition.new:
        return False
    for when in policy.when:
        wanted = when.temperature if transition.kind == "temperature" else None
        if transition.kind == "stage":
            wanted = when.stage
        if wanted is not None and transition.new == wanted:
            return True
    return False


def capacity_of(policy: Routing, rep: Rep) -> int:
    return rep.capacity if rep.capacity is not None else policy.default_capacity


def choose_rep(
    policy: Routing,
    lead_attributes: Mapping[str, Any],
    suppressed: bool,
    current_owner: str | None,
    reps: Sequence[Rep],
    assigned_in_window: Mapping[str, int],
    last_assigned_us: Mapping[str, int],
    now_us: int,
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES,
) -> Assignment:
    """The rep a lead being routed at ``now_us`` goes to.

    ``lead_attributes`` are normalised (``Playbook.lead_attributes``);
    ``assigned_in_window`` counts each rep's new leads in the playbook's
    ``capacity_window`` up to ``now_us``; ``last_assigned_us`` is each rep's latest
    assignment (absent: never).
    """
    if suppressed:
        return Assignment(None, "do-not-contact lead: scored, never routed", Rule.SUPPRESSED)
    by_id = {rep.id: rep for rep in reps}
    owner = by_id.get(current_owner) if current_owner is not None else None
    if owner is not None and not owner.away:
        return Assignment(owner.id, f"kept its owner {owner.name}", Rule.OWNER)

    window = _human_duration(policy.capacity_window_us)

    def used(rep: Rep) -> int:
        return assigned_in_window.get(rep.id, 0)

    def open_(rep: Rep) -> bool:
        return not rep.away and rep.in_hours(now_us) and used(rep) < capacity_of(policy, rep)

    def pick(candidates: list[Rep]) -> Rep:
        never = -(1 << 63)
        return min(
            candidates,
            key=lambda r: (
                Fraction(used(r), capacity_of(policy, r)),
                last_assigned_us.get(r.id, never),
                r.id,
            ),
        )

    def load(rep: Rep) -> str:
        return f"{used(rep) + 1} of {capacity_of(policy, rep)} in the last {window}"

    territorial = [rep for rep in reps if rep.covers(lead_attributes, missing_values)]
    available = [rep for rep in reps if open_(rep)]
    in_territory = [rep for rep in territorial if open_(rep)]
    if in_territory:
        rep = pick(in_territory)
        assert rep.territory is not None
        return Assignment(
            rep.id, f"territory {describe_where(rep.territory)}; {load(rep)}", Rule.TERRITORY
        )
    if available:
        rep = pick(available)
        if territorial:
            names = ", ".join(r.name for r in territorial)
            why = f"territory reps ({names}) away, out of hours or full: round-robin over all reps"
            return Assignment(rep.id, f"{why}; {load(rep)}", Rule.FALLBACK)
        why = "round-robin, no territory matched"
        return Assignment(rep.id, f"{why}; {load(rep)}", Rule.ROUND_ROBIN)
    return Assignment(None, _why_nobody(reps, now_us), Rule.UNASSIGNED)


def _why_nobody(reps: Sequence[Rep], now_us: int) -> str:
    """Why nobody could take the lead (reps are only ever closed for these reasons)."""
    present = [rep for rep in reps if not rep.away]
    if not reps:
        return "no reps: unassigned queue"
    if not present:
        return "every rep is away: unassigned queue"
    in_hours = [rep for rep in present if rep.in_hours(now_us)]
    if not in_hours:
        return "no rep in working hours: unassigned queue"
    return "every rep in working hours is at capacity: unassigned queue"


def _human_duration(us: int) -> str:
    text = format_duration_us(us)
    number, unit = text[:-1], text[-1]
    word = _UNITS.get(unit, "seconds")
    return f"{number} {word[:-1] if number == '1' else word}"


_SYMBOLS = {"equals": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def describe_where(where: Where) -> str:
    """``country in [LT, LV, EE]``: a territory as a sales manager would write it."""
    return ", ".join(_describe(name, cond) for name, cond in where.fields.items())


def _describe(name: str, cond: Condition) -> str:
    parts = []
    for test, value in cond.tests().items():
        if test == "not":
            parts.append(f"not ({_describe(name, value)})")
        elif test == "missing":
            parts.append(f"{name} {'missing' if value else 'present'}")
        elif test == "in":
            parts.append(f"{name} in [{', '.join(_scalar(v) for v in value)}]")
        elif test == "contains":
            parts.append(f"{name} contains {' or '.join(value)}")
        elif test == "regex":
            parts.append(f"{name} matches {value}")
        else:
            parts.append(f"{name} {_SYMBOLS[test]} {_scalar(value)}")
    return " and ".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
