"""The plan's expressions in DuckDB's SQL: conditions, decay, caps, fit and classes.

Every test reads the value as text (``CAST(x AS VARCHAR)``), as the Python side does with
``as_text``, so a Parquet integer and a CSV string behave alike. Each compiled test is a
boolean that is never NULL, so ``NOT`` means what it says. A property test keeps the two
definitions in step (``tests/test_conditions.py``). A Spark renderer spells the same trees
(:mod:`pyrometer.engines.plan.conditions`) in its own dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyrometer.core.conditions import FALSE_TEXTS, NUMBER_PATTERN, TRUE_TEXTS, Condition, Where
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
    bounds,
    compile_condition,
    compile_where,
)
from pyrometer.engines.plan.leads import ClassPlan, FitPlan
from pyrometer.engines.plan.rules import Limit

NULL_TEXT = "CAST(NULL AS VARCHAR)"

# -- literals ----------------------------------------------------------------------------


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def number_literal(value: float) -> str:
    """A DOUBLE literal (a bare ``15.0`` would be DECIMAL in DuckDB)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def one_of(expr: str, values: Iterable[str]) -> str:
    """``expr`` is one of ``values``. Not ``IN (...)`` nor ``list_contains``: DuckDB turns a
    long list of those into a join, which evaluates ``expr`` on every row, even rows a
    ``CASE`` had ruled out, on one thread."""
    listed = ", ".join(quote_literal(v) for v in values)
    return f"(coalesce(list_position([{listed}], {expr}), 0) > 0)"


# -- conditions --------------------------------------------------------------------------


def _text(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


def _number(expr: str) -> str:
    text = f"trim({_text(expr)})"
    parsed = (
        f"TRY_CAST(CASE WHEN regexp_full_match({text}, {quote_literal(NUMBER_PATTERN)}) "
        f"THEN {text} END AS DOUBLE)"
    )
    return f"(CASE WHEN isfinite({parsed}) THEN {parsed} END)"


def missing_sql(expr: str, missing_values: Iterable[str]) -> str:
    """``expr`` is NULL or a placeholder. Trimming and lower-casing every value costs, so
    only values short enough to be a placeholder (or padded with spaces) are looked at."""
    values = list(missing_values)
    if not values:
        return f"({expr} IS NULL)"
    text = _text(expr)
    longest = max(len(value) for value in values)
    placeholder = one_of(f"lower(trim({text}))", values)
    return (
        f"({expr} IS NULL OR CASE WHEN length({text}) <= {longest} OR {text} LIKE ' %' "
        f"OR {text} LIKE '% ' THEN {placeholder} ELSE FALSE END)"
    )


def _test_sql(test: ValueTest, expr: str) -> str:
    if isinstance(test, EqualsFlag):
        return one_of(f"lower(trim({_text(expr)}))", TRUE_TEXTS if test.value else FALSE_TEXTS)
    if isinstance(test, EqualsNumber):
        return f"{_number(expr)} = {number_literal(test.value)}"
    if isinstance(test, EqualsText):
        return f"lower(trim({_text(expr)})) = lower(trim({quote_literal(test.value)}))"
    if isinstance(test, AnyEquals):
        return "(" + " OR ".join(_test_sql(item, expr) for item in test.tests) + ")"
    if isinstance(test, Contains):
        return (
            "("
            + " OR ".join(
                f"contains(lower({_text(expr)}), lower({quote_literal(needle)}))"
                for needle in test.needles
            )
            + ")"
        )
    if isinstance(test, Regex):
        return f"regexp_matches({_text(expr)}, {quote_literal(test.pattern)}, 'i')"
    assert isinstance(test, Compare)
    return f"{_number(expr)} {test.op} {number_literal(test.bound)}"


def _column(bit: int) -> str:
    return f"c{bit}"


def field_condition_sql(cond: FieldCondition, expr: str) -> str:
    """A boolean, never NULL, true where the condition holds for the value ``expr``."""
    is_missing = missing_sql(expr, cond.missing_values)
    parts: list[str] = []
    for part in cond.parts:
        if isinstance(part, IsMissing):
            parts.append(is_missing if part.want else f"NOT {is_missing}")
        elif isinstance(part, Negated):
            inner = part.inner
            parts.append(
                f"NOT {_column(inner.bit)}"
                if isinstance(inner, Ref)
                else f"NOT ({field_condition_sql(inner, expr)})"
            )
        else:
            assert isinstance(part, ValueTests)
            tests = " AND ".join(_test_sql(test, expr) for test in part.tests)
            parts.append(f"(NOT {is_missing} AND {tests})" if part.check_missing else f"({tests})")
    if not parts:
        return "TRUE"
    return "(" + " AND ".join(f"coalesce({part}, FALSE)" for part in parts) + ")"


def all_fields_sql(where: AllFields | Ref, columns: Mapping[str, str]) -> str:
    """A ``where`` over a table whose field names map to SQL expressions."""
    if isinstance(where, Ref):
        return _column(where.bit)
    parts = [
        field_condition_sql(cond, NULL_TEXT if cond.field is None else columns[cond.field])
        for cond in where.conditions
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "TRUE"


def match_sql(match: Match, columns: Mapping[str, str]) -> str:
    """Whether an event earns a rule: ``TRUE``, or its alternatives joined by ``OR``."""
    if match.always:
        return "TRUE"
    return " OR ".join(all_fields_sql(where, columns) for where in match.wheres)


def condition_sql(cond: Condition, expr: str, missing_values: Iterable[str]) -> str:
    """A boolean SQL expression, never NULL, true where ``cond.matches`` is true."""
    return field_condition_sql(compile_condition(cond, "value", missing_values), expr)


def where_sql(where: Where, columns: Mapping[str, str], missing_values: Iterable[str]) -> str:
    """``where`` over a table whose normalised column names map to SQL expressions.

    A field the table lacks is NULL: missing, as in Python.
    """
    return all_fields_sql(compile_where(where, columns, missing_values), columns)


def bounds_sql(cond: Condition, expr: str) -> str:
    """A score (never NULL) against ``gt``/``gte``/``lt``/``lte``, the only tests a playbook
    allows on scores: the SQL twin of :func:`pyrometer.core.classify._qualified`, without
    reading the number as text."""
    return _bounds_sql(bounds(cond), expr)


def _bounds_sql(pairs: Iterable[tuple[str, float]], expr: str) -> str:
    tests = [f"{expr} {op} {number_literal(bound)}" for op, bound in pairs]
    return "(" + " AND ".join(tests) + ")" if tests else "TRUE"


# -- decay and caps ----------------------------------------------------------------------


def step_sql(decay: Decay, ts_expr: str) -> str:
    """The decay step of a time (floored, also before 1970)."""
    return f"pyro_fdiv({ts_expr}, {decay.step_us})"


def factor_sql(decay: Decay, step_expr: str, as_of_us: int) -> str:
    """What a point earned in decay step ``step_expr`` is worth at ``as_of_us``."""
    return (
        f"pow(2.0, -({decay.step_of(as_of_us)} - ({step_expr})) / "
        f"{number_literal(decay.half_life_steps)})"
    )


def given_sql(limit: Limit, rank_expr: str) -> str:
    """Points the event at ``rank_expr`` (0-based) of a rule's cap window gets."""
    size = abs(limit.points)
    sign = "" if limit.points >= 0 else "-"
    return (
        f"{sign}greatest(0.0, least({number_literal(size)}, "
        f"{number_literal(limit.cap_points)} - ({rank_expr}) * {number_literal(size)}))"
    )


# -- leads -------------------------------------------------------------------------------


def fit_sql(plan: FitPlan, columns: Mapping[str, str], leads_sql: str) -> str:
    """Per lead: ``fit`` and ``suppressed_by_attr``."""
    terms = [
        f"CASE WHEN {all_fields_sql(term.where, columns)} "
        f"THEN {number_literal(term.points)} ELSE 0.0 END"
        for term in plan.terms
    ]
    supp = [all_fields_sql(where, columns) for where in plan.suppression]
    return f"""
            SELECT lead_id, {" + ".join(terms) if terms else "0.0"} AS fit,
                   {" OR ".join(supp) if supp else "FALSE"} AS suppressed_by_attr
            FROM {leads_sql}
        """


def classes_sql(plan: ClassPlan) -> tuple[str, str, str]:
    """Temperature, stage and funnel over columns ``fit``, ``engagement``,
    ``explicit_stage`` (stage) and ``stage`` (funnel)."""
    score = f"round(fit + engagement, {plan.decimals})"
    temperature = (
        f"CASE WHEN {score} >= {number_literal(plan.hot)} THEN "
        f"'{Temperature.HOT}' WHEN {score} >= {number_literal(plan.warm)} "
        f"THEN '{Temperature.WARM}' ELSE '{Temperature.COLD}' END"
    )
    metrics = {
        Metric.SCORE: score,
        Metric.FIT: f"round(fit, {plan.decimals})",
        Metric.ENGAGEMENT: f"round(engagement, {plan.decimals})",
    }
    mql = " AND ".join(_bounds_sql(pairs, metrics[metric]) for metric, pairs in plan.mql) or "TRUE"
    stage = (
        f"CASE WHEN explicit_stage IS NOT NULL AND explicit_stage <> '{Stage.LEAD}' "
        f"THEN explicit_stage WHEN {mql} THEN '{Stage.MQL}' ELSE '{Stage.LEAD}' END"
    )
    funnel = (
        "CASE stage "
        + " ".join(
            f"WHEN '{stage_name}' THEN {quote_literal(name)}" for stage_name, name in plan.funnel
        )
        + " END"
    )
    return temperature, stage, funnel
