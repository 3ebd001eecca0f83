"""The key table: per event, its points, count and cap bins from a small integer key.

Pass 1 must not branch per row on which rules an event earns. Instead every event gets a
key: its raw name's ``base`` plus one bit per property condition the playbook tests (a
condition's exact negation needs no bit of its own). A small table then holds, per key,
the points, count and cap-proof bin of an event of that name with those conditions, so
an engine joins (or looks up) the key and sums. Events that the key cannot describe (a
name with more conditions than the key has bits, or one event counting in several capped
rules) take a numbered *branch*, computed on the row from the condition columns.

Nothing here knows an engine: conditions are trees (:mod:`.conditions`), windows are
lengths in microseconds, and the engine renders both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyrometer.core.playbook import Playbook
from pyrometer.engines.cap_proof import LimitedRule, ProofLayout, RuleBins
from pyrometer.engines.plan.conditions import Match, negation, reuse
from pyrometer.engines.plan.rules import Term, event_name, full_slots, meaning, spellings

KEY_CONDITIONS = 8
"""Property conditions with a bit of the key; more are computed per row, in a branch."""
TALLY_AT = 32
"""An event's count is 1 plus, from this bit on, the units it adds to the proof words."""
PROOF_WORDS = 3


@dataclass(frozen=True)
class ConditionBit:
    """A property condition the playbook tests, computed once per event as column ``bit``."""

    bit: int
    match: Match
    reads: Match
    """``match`` with earlier conditions it contains read from their columns."""
    users: frozenset[str]
    """Raw names whose events need it (also those of conditions reading it)."""
    slot: int | None
    """Its bit in the key, if it has one."""
    negates: int | None
    """The condition it is the exact negation of, if any."""
    keyed: bool
    """Known from the key: it has a slot, or negates one that has."""


@dataclass(frozen=True)
class NameRow:
    """One raw event name: its key base and what it means besides points."""

    raw: str
    base: int
    rare: bool
    """It moves a stage, suppresses, or may earn a ``once`` rule: pass 2a reads it."""
    stage: str | None
    suppress: bool
    bad: bool
    once_mask: int
    """Bit ``j``: the name may earn ``once_rules[j]``."""


@dataclass(frozen=True)
class Binned:
    """A capped rule an event counts in: its bins and its window (``None``: per lead)."""

    bins: RuleBins
    window_us: int | None


@dataclass(frozen=True)
class KeyRow:
    """Per key: an event's points (uncapped; NaN for a bad name), count and bins."""

    k: int
    branch: int | None
    """Its branch, when the row alone does not say (then ``binned`` is empty)."""
    points: float | None
    count: int | None
    binned: tuple[Binned, ...]


@dataclass(frozen=True)
class BranchTerm:
    """A rule an event of a branch may earn: if ``condition`` (a bit; ``None``: always)."""

    rule_id: int
    condition: int | None
    points: float
    binned: Binned | None


@dataclass(frozen=True)
class ConditionsBranch:
    """An event whose name has conditions beyond the key's bits: points, proof units and
    count summed over ``terms`` on the row."""

    terms: tuple[BranchTerm, ...]


@dataclass(frozen=True)
class SharedBranch:
    """An event counting in several capped rules at once: points and ``count`` from its
    key, one unit per rule in ``binned``."""

    binned: tuple[Binned, ...]
    count: int


Branch = ConditionsBranch | SharedBranch


@dataclass(frozen=True)
class KeyTable:
    """Everything pass 1 needs to know of the playbook, for one table's event names."""

    layout: ProofLayout
    conditions: tuple[ConditionBit, ...]
    key_bits: int
    names: tuple[NameRow, ...]
    keys: tuple[KeyRow, ...]
    branches: Mapping[int, Branch]
    """By branch id, from 1."""
    step_us: int
    windows: frozenset[int]
    """Cap windows of the rules in the proof."""
    once_rules: tuple[int, ...]
    """``once`` rules, in the order of ``NameRow.once_mask``."""
    once_points: tuple[float, ...]
    """Their points, in the same order."""
    once_by_name: bool
    """Every ``once`` rule is earned by the name alone (no property condition)."""
    stages: tuple[str, ...]
    """Lifecycle stages, each once."""

    @property
    def shared_window(self) -> int | None:
        """The one cap window every windowed rule in the proof has, if there is one."""
        return next(iter(self.windows)) if len(self.windows) == 1 else None

    @property
    def keyed(self) -> bool:
        """Whether every key row says all (no branch of conditions)."""
        return not any(isinstance(b, ConditionsBranch) for b in self.branches.values())


def proof_layout(playbook: Playbook, weights: Mapping[int, float]) -> ProofLayout:
    """Bins for every capped rule that gives points (zero points need no proof).

    ``weights``: matches per rule in a sample, so busy rules get more bins. ``once`` rules
    are not in it: a lead with two newsletter sign-ups is common, so their first events
    are taken in pass 2a instead.
    """
    return ProofLayout.plan(
        words=PROOF_WORDS,
        limited=[
            LimitedRule(i, full_slots(rule), rule.window_us is not None, weights.get(i, 0.0))
            for i, rule in enumerate(playbook.engagement)
            if rule.cap is not None and rule.points != 0
        ],
    )


def _condition_bits(
    playbook: Playbook, by_name: Mapping[str, list[Term]], raw_names: Sequence[str]
) -> tuple[ConditionBit, ...]:
    """Every condition of a rule that is not ``once``, numbered in rule order by name."""
    rules = playbook.engagement
    spelled = spellings(playbook, raw_names)
    bits: dict[Match, int] = {}
    reads: list[Match] = []
    users: list[set[str]] = []
    readers: list[set[int]] = []  # conditions whose column reads this one's
    for name, name_terms in by_name.items():
        for term in name_terms:
            if term.match.always or rules[term.rule_id].once:
                continue
            if term.match not in bits:
                # `not: {contains: /pricing}` reuses the column of `contains: /pricing`.
                read = term.match
                for known, bit in bits.items():
                    read, found = reuse(read, known, bit)
                    if found:
                        readers[bit].add(len(bits))
                bits[term.match] = len(bits)
                reads.append(read)
                users.append(set())
                readers.append(set())
            users[bits[term.match]].update(spelled.get(name, []))
    # A column read by another must exist wherever that one is computed.
    for bit in reversed(range(len(bits))):
        for reader in readers[bit]:
            users[bit] |= users[reader]
    # A condition that is the exact negation of another needs no bit of its own.
    negates: dict[int, int] = {}
    for match, bit in bits.items():
        for other, of in bits.items():
            if match == negation(other) and of not in negates:
                negates[bit] = of
    own = [bit for bit in bits.values() if bit not in negates]
    slot = {bit: i for i, bit in enumerate(own[:KEY_CONDITIONS])}
    return tuple(
        ConditionBit(
            bit,
            match,
            reads[bit],
            frozenset(users[bit]),
            slot.get(bit),
            negates.get(bit),
            bit in slot or negates.get(bit, -1) in slot,
        )
        for match, bit in bits.items()
    )


def key_table(
    playbook: Playbook,
    by_name: Mapping[str, list[Term]],
    raw_names: Sequence[str],
    layout: ProofLayout,
) -> KeyTable:
    """The key table of ``raw_names`` (see the module's docstring)."""
    rules = playbook.engagement
    conditions = _condition_bits(playbook, by_name, raw_names)
    of_match = {c.match: c for c in conditions}
    key_bits = sum(c.slot is not None for c in conditions)

    def holds(cond: ConditionBit, combo: int) -> bool:
        """Whether ``cond`` holds for an event whose key bits are ``combo``."""
        if cond.slot is None:
            assert cond.negates is not None
            return not holds(conditions[cond.negates], combo)
        return bool(combo >> cond.slot & 1)

    def binned(rule_id: int) -> Binned | None:
        bins = layout.of(rule_id)
        return None if bins is None else Binned(bins, rules[rule_id].window_us)

    once_rules = tuple(i for i, rule in enumerate(rules) if rule.once)
    once_names = {n for n, ts in by_name.items() if any(rules[t.rule_id].once for t in ts)}
    branches: dict[int, Branch] = {}
    names: list[NameRow] = []
    keys: list[KeyRow] = []
    for nid, raw in enumerate(raw_names):
        name = event_name(playbook, raw)
        what = meaning(playbook, raw)
        once_mask = sum(
            1 << j
            for j, i in enumerate(once_rules)
            if any(t.rule_id == i for t in by_name.get(name, []))
        )
        rare = what.stage is not None or what.suppress or name in once_names
        names.append(
            NameRow(raw, nid << key_bits, rare, what.stage, what.suppress, what.bad, once_mask)
        )
        name_terms = [t for t in by_name.get(name, []) if not rules[t.rule_id].once]
        wide = None
        if not what.bad and any(
            not of_match[t.match].keyed for t in name_terms if not t.match.always
        ):
            # Conditions beyond the key's bits: computed on the row, in a branch.
            wide = len(branches) + 1
            branches[wide] = ConditionsBranch(
                tuple(
                    BranchTerm(
                        t.rule_id,
                        None if t.match.always else of_match[t.match].bit,
                        rules[t.rule_id].points,
                        binned(t.rule_id),
                    )
                    for t in name_terms
                )
            )
        for combo in range(1 << key_bits):
            k = (nid << key_bits) + combo
            if wide is not None:
                keys.append(KeyRow(k, wide, None, None, ()))
                continue
            matched = [t for t in name_terms if t.match.always or holds(of_match[t.match], combo)]
            rows = tuple(b for t in matched if (b := binned(t.rule_id)) is not None)
            points = math.nan if what.bad else float(sum(rules[t.rule_id].points for t in matched))
            count = 1 + (len(rows) << TALLY_AT)
            branch = None
            if len(rows) > 1:
                branch = len(branches) + 1
                branches[branch] = SharedBranch(rows, count)
            keys.append(KeyRow(k, branch, points, count, rows))
    return KeyTable(
        layout=layout,
        conditions=conditions,
        key_bits=key_bits,
        names=tuple(names),
        keys=tuple(keys),
        branches=branches,
        step_us=playbook.decay.step_us,
        windows=frozenset(w for b in layout.rules if (w := rules[b.rule_id].window_us) is not None),
        once_rules=once_rules,
        once_points=tuple(rules[i].points for i in once_rules),
        once_by_name=all(
            t.match.always for ts in by_name.values() for t in ts if rules[t.rule_id].once
        ),
        stages=tuple(dict.fromkeys(str(s) for s in playbook.lifecycle.events.values())),
    )
