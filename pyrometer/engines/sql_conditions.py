"""Conditions compiled to DuckDB SQL with the meaning :mod:`pyrometer.core.conditions` gives.

Every test reads the value as text (``CAST(x AS VARCHAR)``), as the Python side does with
``as_text``, so a Parquet integer and a CSV string behave alike. Each compiled test is a
boolean that is never NULL, so ``NOT`` means what it says. A property test keeps the two
definitions in step (``tests/test_conditions.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyrometer.core.conditions import (
    FALSE_TEXTS,
    NUMBER_PATTERN,
    TRUE_TEXTS,
    Condition,
    Scalar,
    Where,
)


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def number_literal(value: float) -> str:
    """A DOUBLE literal (a bare ``15.0`` would be DECIMAL in DuckDB)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _text(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


def _number(expr: str) -> str:
    text = f"trim({_text(expr)})"
    parsed = (
        f"TRY_CAST(CASE WHEN regexp_full_match({text}, {quote_literal(NUMBER_PATTERN)}) "
        f"THEN {text} END AS DOUBLE)"
    )
    return f"(CASE WHEN isfinite({parsed}) THEN {parsed} END)"


def one_of(expr: str, values: Iterable[str]) -> str:
    """``expr`` is one of ``values``. Not ``IN (...)`` nor ``list_contains``: DuckDB turns a
    long list of those into a join, which evaluates ``expr`` on every row, even rows a
    ``CASE`` had ruled out, on one thread."""
    listed = ", ".join(quote_literal(v) for v in values)
    return f"(coalesce(list_position([{listed}], {expr}), 0) > 0)"


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


def _equals_sql(expr: str, expected: Scalar) -> str:
    if isinstance(expected, bool):
        accepted = TRUE_TEXTS if expected else FALSE_TEXTS
        return one_of(f"lower(trim({_text(expr)}))", accepted)
    if isinstance(expected, int | float):
        return f"{_number(expr)} = {number_literal(expected)}"
    return f"lower(trim({_text(expr)})) = lower(trim({quote_literal(expected)}))"


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


def condition_sql(cond: Condition, expr: str, missing_values: Iterable[str]) -> str:
    """A boolean SQL expression, never NULL, true where ``cond.matches`` is true."""
    missing_values = list(missing_values)
    is_missing = missing_sql(expr, missing_values)
    parts: list[str] = []
    if cond.missing is not None:
        parts.append(is_missing if cond.missing else f"NOT {is_missing}")
    if cond.not_ is not None:
        parts.append(f"NOT ({condition_sql(cond.not_, expr, missing_values)})")
    tests: list[str] = []
    if cond.equals is not None:
        tests.append(_equals_sql(expr, cond.equals))
    if cond.in_ is not None:
        tests.append("(" + " OR ".join(_equals_sql(expr, item) for item in cond.in_) + ")")
    if cond.contains is not None:
        tests.append(
            "("
            + " OR ".join(
                f"contains(lower({_text(expr)}), lower({quote_literal(needle)}))"
                for needle in cond.contains
            )
            + ")"
        )
    if cond.regex is not None:
        tests.append(f"regexp_matches({_text(expr)}, {quote_literal(cond.regex)}, 'i')")
    for op, bound in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")):
        value = getattr(cond, op)
        if value is not None:
            tests.append(f"{_number(expr)} {bound} {number_literal(value)}")
    if tests and _placeholders_cannot_pass(cond, missing_values):
        parts.append("(" + " AND ".join(tests) + ")")
    elif tests:
        parts.append(f"(NOT {is_missing} AND " + " AND ".join(tests) + ")")
    if not parts:
        return "TRUE"
    return "(" + " AND ".join(f"coalesce({part}, FALSE)" for part in parts) + ")"


def bounds_sql(cond: Condition, expr: str) -> str:
    """A score (never NULL) against ``gt``/``gte``/``lt``/``lte``, the only tests a playbook
    allows on scores: the SQL twin of :func:`pyrometer.core.classify._qualified`, without
    reading the number as text."""
    tests = [
        f"{expr} {op} {number_literal(bound)}"
        for op, bound in ((">", cond.gt), (">=", cond.gte), ("<", cond.lt), ("<=", cond.lte))
        if bound is not None
    ]
    return "(" + " AND ".join(tests) + ")" if tests else "TRUE"


def where_sql(where: Where, columns: Mapping[str, str], missing_values: Iterable[str]) -> str:
    """``where`` over a table whose normalised column names map to SQL expressions.

    A field the table lacks is NULL: missing, as in Python.
    """
    missing_values = list(missing_values)
    parts = [
        condition_sql(cond, columns.get(name, "CAST(NULL AS VARCHAR)"), missing_values)
        for name, cond in where.fields.items()
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "TRUE"
