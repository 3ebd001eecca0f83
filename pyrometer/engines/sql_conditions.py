"""Conditions compiled to DuckDB SQL: kept for the modules and tests that import them here.

The conditions themselves are engine-neutral trees (:mod:`pyrometer.engines.plan.conditions`);
DuckDB's spelling of them lives in :mod:`pyrometer.engines.duckdb.sql`.
"""

from pyrometer.engines.duckdb.sql import (
    bounds_sql,
    condition_sql,
    missing_sql,
    number_literal,
    one_of,
    quote_ident,
    quote_literal,
    where_sql,
)

__all__ = [
    "bounds_sql",
    "condition_sql",
    "missing_sql",
    "number_literal",
    "one_of",
    "quote_ident",
    "quote_literal",
    "where_sql",
]
