"""The plan's expressions as Spark columns: conditions, decay, caps, fit and classes.

The Spark twin of :mod:`pyrometer.engines.duckdb.sql`: it spells the same engine-neutral
trees (:mod:`pyrometer.engines.plan`) with Spark's own functions, so every test runs in
the JVM (no Python UDF). The meaning is the one :mod:`pyrometer.core.conditions` defines:
values read as text, trimmed of spaces and case-blind, numbers parsed from text, the
playbook's placeholders counted as missing, and a test that is never NULL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F

from pyrometer.core.conditions import FALSE_TEXTS, NUMBER_PATTERN, TRUE_TEXTS
from pyrometer.core.playbook import Decay, Metric, Stage, Temperature
from pyrometer.engines.plan.conditions import (
    AllFields,
    AnyEquals,
    Compare,
    Contains,
    EqualsFlag,
    EqualsNumber,
    EqualsText,
    FieldCondition,
    IsMissing,
    Match,
    Negated,
    Ref,
    Regex,
    ValueTest,
    ValueTests,
)
from pyrometer.engines.plan.leads import ClassPlan, FitPlan


def _null_text() -> Column:
    return F.lit(None).cast("string")


_NUMBER = f"^({NUMBER_PATTERN})$"


def _text(value: Column) -> Column:
    return value.cast("string")


def _finite(number: Column) -> Column:
    return F.when(~F.isnan(number) & (number != float("inf")) & (number != float("-inf")), number)


def _number(value: Column) -> Column:
    """The value as a finite DOUBLE when its trimmed text is a decimal number, else NULL."""
    text = F.trim(_text(value))
    return _finite(F.when(text.rlike(_NUMBER), text.try_cast("double")))


def _folded(value: Column) -> Column:
    return F.lower(F.trim(_text(value)))


def missing(value: Column, missing_values: Iterable[str]) -> Column:
    """``value`` is NULL or one of the placeholders (trimmed, case-blind)."""
    values = list(missing_values)
    if not values:
        return value.isNull()
    return value.isNull() | _folded(value).isin(values)


def _test(test: ValueTest, value: Column) -> Column:
    if isinstance(test, EqualsFlag):
        return _folded(value).isin(list(TRUE_TEXTS if test.value else FALSE_TEXTS))
    if isinstance(test, EqualsNumber):
        return _number(value) == F.lit(float(test.value))
    if isinstance(test, EqualsText):
        return _folded(value) == F.lower(F.trim(F.lit(test.value)))
    if isinstance(test, AnyEquals):
        return _any(_test(item, value) for item in test.tests)
    if isinstance(test, Contains):
        return _any(
            F.lower(_text(value)).contains(F.lower(F.lit(needle))) for needle in test.needles
        )
    if isinstance(test, Regex):
        # (?iu): case-blind over all of Unicode, as RE2's `i` flag and Python's re.I.
        return _text(value).rlike("(?iu)" + test.pattern)
    assert isinstance(test, Compare)
    number, bound = _number(value), F.lit(float(test.bound))
    return {
        ">": number > bound,
        ">=": number >= bound,
        "<": number < bound,
        "<=": number <= bound,
    }[test.op]


def _any(columns: Iterable[Column]) -> Column:
    out: Column | None = None
    for column in columns:
        out = column if out is None else out | column
    return F.lit(False) if out is None else out


def _all(columns: Iterable[Column]) -> Column:
    out: Column | None = None
    for column in columns:
        out = column if out is None else out & column
    return F.lit(True) if out is None else out


def condition_column(bit: int) -> str:
    """The column a condition computed once is kept in (a plan :class:`Ref`)."""
    return f"pyro_c{bit}"


def field_condition(cond: FieldCondition, value: Column) -> Column:
    """A boolean, never NULL, true where the condition holds for ``value``."""
    is_missing = missing(value, cond.missing_values)
    parts: list[Column] = []
    for part in cond.parts:
        if isinstance(part, IsMissing):
            parts.append(is_missing if part.want else ~is_missing)
        elif isinstance(part, Negated):
            inner = part.inner
            parts.append(
                ~F.col(condition_column(inner.bit))
                if isinstance(inner, Ref)
                else ~field_condition(inner, value)
            )
        else:
            assert isinstance(part, ValueTests)
            tests = _all(_test(test, value) for test in part.tests)
            parts.append(~is_missing & tests if part.check_missing else tests)
    return _all(F.coalesce(part, F.lit(False)) for part in parts)


def all_fields(where: AllFields | Ref, columns: Mapping[str, str]) -> Column:
    """A ``where`` over a frame whose (normalised) field names map to column names."""
    if isinstance(where, Ref):
        return F.col(condition_column(where.bit))
    return _all(
        field_condition(cond, _null_text() if cond.field is None else F.col(columns[cond.field]))
        for cond in where.conditions
    )


def match(match: Match, columns: Mapping[str, str]) -> Column:
    """Whether an event earns a rule: one of its alternatives holds."""
    if match.always:
        return F.lit(True)
    return _any(all_fields(where, columns) for where in match.wheres)


# -- decay and caps ----------------------------------------------------------------------


def floor_div(column: str, divisor: int) -> Column:
    """``column // divisor`` on BIGINTs, floored also before 1970, exactly (no DOUBLE)."""
    return F.expr(f"(`{column}` - pmod(`{column}`, {int(divisor)}L)) div {int(divisor)}L")


def factor(decay: Decay, ts_column: str, as_of_us: int) -> Column:
    """What a point earned at ``ts_column`` is worth at ``as_of_us``: 2^(-steps / H)."""
    steps = F.lit(decay.step_of(as_of_us)) - floor_div(ts_column, decay.step_us)
    return F.pow(F.lit(2.0), -steps.cast("double") / F.lit(float(decay.half_life_steps)))


def given(points: Column, cap_points: Column, rank: Column) -> Column:
    """Points the event at ``rank`` (0-based) of a capped rule's window gets: the rule's
    ``points`` until ``cap_points`` are given (:meth:`pyrometer.engines.plan.Limit.given`),
    from the candidate table's columns so one expression serves every rule."""
    size = F.abs(points)
    amount = F.greatest(F.lit(0.0), F.least(size, cap_points - rank.cast("double") * size))
    return F.when(points >= 0, amount).otherwise(-amount)


# -- leads -------------------------------------------------------------------------------


def fit(plan: FitPlan, columns: Mapping[str, str]) -> tuple[Column, Column]:
    """Per lead row: ``fit`` and ``suppressed_by_attr``."""
    terms = [
        F.when(all_fields(term.where, columns), F.lit(float(term.points))).otherwise(F.lit(0.0))
        for term in plan.terms
    ]
    total: Column = F.lit(0.0)
    for term in terms:
        total = total + term
    return total, _any(all_fields(where, columns) for where in plan.suppression)


def _bounds(pairs: Iterable[tuple[str, float]], value: Column) -> Column:
    ops = {
        ">": lambda b: value > b,
        ">=": lambda b: value >= b,
        "<": lambda b: value < b,
        "<=": lambda b: value <= b,
    }
    return _all(ops[op](F.lit(float(bound))) for op, bound in pairs)


def classes(plan: ClassPlan) -> tuple[Column, Column, Column]:
    """Temperature, stage and funnel over columns ``fit``, ``engagement`` and
    ``explicit_stage``; the funnel reads the stage column this returns."""
    fit_c, engagement = F.col("fit"), F.col("engagement")
    score = F.round(fit_c + engagement, plan.decimals)
    temperature = (
        F.when(score >= F.lit(plan.hot), F.lit(str(Temperature.HOT)))
        .when(score >= F.lit(plan.warm), F.lit(str(Temperature.WARM)))
        .otherwise(F.lit(str(Temperature.COLD)))
    )
    metrics = {
        Metric.SCORE: score,
        Metric.FIT: F.round(fit_c, plan.decimals),
        Metric.ENGAGEMENT: F.round(engagement, plan.decimals),
    }
    mql = _all(_bounds(pairs, metrics[metric]) for metric, pairs in plan.mql)
    explicit = F.col("explicit_stage")
    stage = (
        F.when(explicit.isNotNull() & (explicit != F.lit(str(Stage.LEAD))), explicit)
        .when(mql, F.lit(str(Stage.MQL)))
        .otherwise(F.lit(str(Stage.LEAD)))
    )
    funnel: Column = F.lit(None).cast("string")
    for stage_name, name in reversed(plan.funnel):
        funnel = F.when(stage == F.lit(stage_name), F.lit(name)).otherwise(funnel)
    return temperature, stage, funnel
