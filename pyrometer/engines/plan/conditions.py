"""The playbook's ``where`` tests as engine-neutral trees.

Every engine must give a condition the meaning :mod:`pyrometer.core.conditions` defines:
text compared trimmed and case-blind, numbers parsed from text, placeholders counted as
missing, and a test that is never NULL. The trees below say *which* tests run in which
order; each engine's renderer (:mod:`pyrometer.engines.duckdb.sql` for DuckDB) says how
its dialect spells them. Trees are frozen dataclasses, so two rules with the same test
compare equal and share one column, and a test that is the exact negation of another is
found by structure, not by reading SQL text.

A field the table lacks is ``None``: its value is NULL, hence missing, as in Python.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pyrometer.core.conditions import Condition, Where

# -- tests on one value ------------------------------------------------------------------


@dataclass(frozen=True)
class EqualsFlag:
    """The value reads as ``value`` (``yes``/``true``/``1`` ... or their opposites)."""

    value: bool


@dataclass(frozen=True)
class EqualsNumber:
    """The value parses as a finite number equal to ``value``."""

    value: float


@dataclass(frozen=True)
class EqualsText:
    """The value, trimmed and case-blind, is ``value`` (also trimmed and case-blind)."""

    value: str


Equals = EqualsFlag | EqualsNumber | EqualsText


@dataclass(frozen=True)
class AnyEquals:
    """``in``: one of the tests holds."""

    tests: tuple[Equals, ...]


@dataclass(frozen=True)
class Contains:
    """The value contains one of ``needles``, case-blind."""

    needles: tuple[str, ...]


@dataclass(frozen=True)
class Regex:
    """The value matches ``pattern`` somewhere, case-blind."""

    pattern: str


@dataclass(frozen=True)
class Compare:
    """The value parses as a finite number and ``op`` (``>``, ``>=``, ``<``, ``<=``) holds."""

    op: str
    bound: float


ValueTest = Equals | AnyEquals | Contains | Regex | Compare

# -- a condition on one field ----------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """Another condition's result, already computed (a column named by its ``bit``)."""

    bit: int


@dataclass(frozen=True)
class IsMissing:
    """The value is (``want``) or is not missing: NULL or one of the placeholders."""

    want: bool


@dataclass(frozen=True)
class Negated:
    """The inner condition (on the same field) does not hold."""

    inner: FieldCondition | Ref


@dataclass(frozen=True)
class ValueTests:
    """Every value test holds; ``check_missing``: and the value is not missing. The check
    is left out when the tests alone fail on every placeholder (it costs)."""

    tests: tuple[ValueTest, ...]
    check_missing: bool


Part = IsMissing | Negated | ValueTests


@dataclass(frozen=True)
class FieldCondition:
    """All ``parts`` hold for one field's value, each read as FALSE where it is NULL."""

    field: str | None
    """The field's normalised name; ``None`` when the table lacks it (always NULL)."""
    parts: tuple[Part, ...]
    missing_values: tuple[str, ...]


@dataclass(frozen=True)
class AllFields:
    """A ``where``: every field's condition holds (no field: always)."""

    conditions: tuple[FieldCondition, ...]


@dataclass(frozen=True)
class Match:
    """Whether an event of one name earns a rule: one of the rule's ``where`` alternatives
    for that name holds. ``ALWAYS`` when the name alone decides."""

    wheres: tuple[AllFields | Ref, ...]

    @property
    def always(self) -> bool:
        return self == ALWAYS


ALWAYS = Match((AllFields(()),))

# -- compiling ---------------------------------------------------------------------------


def _equals(value: object) -> Equals:
    # bool first: True == 1, and `equals: true` is not `equals: 1`.
    if isinstance(value, bool):
        return EqualsFlag(value)
    if isinstance(value, int | float):
        return EqualsNumber(float(value))
    return EqualsText(str(value))


def _placeholders_cannot_pass(cond: Condition, missing_values: Iterable[str]) -> bool:
    """Whether the value tests alone already fail on every missing value, so the (costly)
    missing check can be left out: true for ``contains`` tests whose needles are in no
    placeholder, and no other value test."""
    if cond.contains is None or any(
        getattr(cond, name) is not None
        for name in ("equals", "in_", "regex", "gt", "gte", "lt", "lte")
    ):
        return False
    placeholders = [value.lower() for value in missing_values]
    return all(
        needle.strip() == needle and needle and not any(needle.lower() in p for p in placeholders)
        for needle in cond.contains
    )


def compile_condition(
    cond: Condition, field: str | None, missing_values: Iterable[str]
) -> FieldCondition:
    """``cond`` on the field ``field`` (``None``: a field the table lacks)."""
    missing = tuple(missing_values)
    parts: list[Part] = []
    if cond.missing is not None:
        parts.append(IsMissing(cond.missing))
    if cond.not_ is not None:
        parts.append(Negated(compile_condition(cond.not_, field, missing)))
    tests: list[ValueTest] = []
    if cond.equals is not None:
        tests.append(_equals(cond.equals))
    if cond.in_ is not None:
        tests.append(AnyEquals(tuple(_equals(item) for item in cond.in_)))
    if cond.contains is not None:
        tests.append(Contains(tuple(cond.contains)))
    if cond.regex is not None:
        tests.append(Regex(cond.regex))
    for name, op in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")):
        value = getattr(cond, name)
        if value is not None:
            tests.append(Compare(op, float(value)))
    if tests:
        parts.append(ValueTests(tuple(tests), not _placeholders_cannot_pass(cond, missing)))
    return FieldCondition(field, tuple(parts), missing)


def compile_where(
    where: Where, fields: Collection[str], missing_values: Iterable[str]
) -> AllFields:
    """``where`` over a table with the (normalised) fields ``fields``."""
    missing = tuple(missing_values)
    return AllFields(
        tuple(
            compile_condition(cond, name if name in fields else None, missing)
            for name, cond in where.fields.items()
        )
    )


def any_of(wheres: Iterable[AllFields]) -> Match:
    """A match from a rule's alternatives for one name: ``ALWAYS`` if one has no test."""
    listed = tuple(wheres)
    if any(not where.conditions for where in listed):
        return ALWAYS
    return Match(listed)


def negation(match: Match) -> Match | None:
    """The match that holds exactly where ``match`` does not, in the form a playbook writes
    it (``not: {contains: /pricing}`` beside ``contains: /pricing``); ``None`` if ``match``
    has no such simple form (several alternatives or fields)."""
    if len(match.wheres) != 1:
        return None
    (where,) = match.wheres
    if not isinstance(where, AllFields) or len(where.conditions) != 1:
        return None
    (cond,) = where.conditions
    return Match((AllFields((FieldCondition(cond.field, (Negated(cond),), cond.missing_values),)),))


def reuse(match: Match, known: Match, bit: int) -> tuple[Match, bool]:
    """``match`` with every whole occurrence of ``known`` read from its column ``bit``.

    An occurrence is a run of ``known``'s alternatives among ``match``'s, or (when
    ``known`` is one single-field ``where``) a negated inner condition equal to it, at any
    depth. Whether one was found is returned too: the column must then exist where
    ``match`` is computed.
    """
    found = False
    single = (
        known.wheres[0].conditions[0]
        if len(known.wheres) == 1
        and isinstance(known.wheres[0], AllFields)
        and len(known.wheres[0].conditions) == 1
        else None
    )

    def in_condition(cond: FieldCondition) -> FieldCondition:
        nonlocal found
        parts: list[Part] = []
        for part in cond.parts:
            if isinstance(part, Negated) and isinstance(part.inner, FieldCondition):
                if part.inner == single:
                    found = True
                    part = Negated(Ref(bit))
                else:
                    part = Negated(in_condition(part.inner))
            parts.append(part)
        return FieldCondition(cond.field, tuple(parts), cond.missing_values)

    wheres: list[AllFields | Ref] = []
    items = list(match.wheres)
    size = len(known.wheres)
    i = 0
    while i < len(items):
        if tuple(items[i : i + size]) == known.wheres:
            wheres.append(Ref(bit))
            found = True
            i += size
            continue
        item = items[i]
        if isinstance(item, AllFields) and single is not None:
            item = AllFields(tuple(in_condition(cond) for cond in item.conditions))
        wheres.append(item)
        i += 1
    return Match(tuple(wheres)), found


def bounds(cond: Condition) -> tuple[tuple[str, float], ...]:
    """A score's ``gt``/``gte``/``lt``/``lte`` tests (the only ones a playbook allows on
    scores) as (operator, bound) pairs, all of which must hold."""
    return tuple(
        (op, float(bound))
        for op, bound in ((">", cond.gt), (">=", cond.gte), ("<", cond.lt), ("<=", cond.lte))
        if bound is not None
    )
