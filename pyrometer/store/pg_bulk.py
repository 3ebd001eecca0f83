"""PostgreSQL: many rows in one statement, each column sent as one array.

``INSERT ... SELECT ... FROM unnest(%s, %s, ...)`` and ``UPDATE ... FROM unnest(...)``
write a whole request's rows with one statement: the server parses, plans and runs it
once instead of once per row, and the driver sends one parameter per column instead of
one per value. The arrays go in binary (``%b``): psycopg escapes text arrays for the
text format with a regular expression per element, which cost more than everything else
(20 µs per JSON document against under 1 µs).

Rows are inserted in the order given (``WITH ORDINALITY ... ORDER BY``): callers that
insert leads in id order so that concurrent transactions wait on each other in one order
(see :func:`pyrometer.service.ingest._lock_or_create`) keep that guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def _array_type(column: sa.Column[Any]) -> str:
    """The array type a column's values travel in (JSON as text, cast on the server)."""
    kind = column.type
    if isinstance(kind, sa.JSON | sa.String | sa.Text):
        return "text[]"
    if isinstance(kind, sa.Boolean):
        return "boolean[]"
    if isinstance(kind, sa.BigInteger):
        return "int8[]"
    if isinstance(kind, sa.Integer):
        return "int4[]"
    if isinstance(kind, sa.Float):
        return "float8[]"
    raise TypeError(f"no array type for column {column.name} ({kind})")


def _value(column: sa.Column[Any], alias: str) -> str:
    return f"{alias}::json" if isinstance(column.type, sa.JSON) else alias


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class BulkStatement:
    """One table's bulk INSERT or UPDATE over the columns ``columns``, built once."""

    def __init__(self, sql: str, columns: Sequence[sa.Column[Any]]) -> None:
        self.sql = sql
        # psycopg dumps a list of one Python type only: floats stay floats even when a
        # sum left an int (``fit`` of a lead without fit rules is ``0``).
        self._floats = [isinstance(c.type, sa.Float) for c in columns]

    def params(self, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """The rows (each a value per column) as one list per column."""
        out = [list(values) for values in zip(*rows, strict=True)]
        for index, is_float in enumerate(self._floats):
            if is_float:
                out[index] = [None if v is None else float(v) for v in out[index]]
        return out

    def run(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Run for ``rows``; returns the RETURNING rows (empty without RETURNING)."""
        if not rows:
            return []
        result = conn.exec_driver_sql(self.sql, tuple(self.params(rows)))
        return list(result) if result.returns_rows else []


def bulk_insert(table: sa.Table, names: Sequence[str], tail: str = "") -> BulkStatement:
    """``INSERT INTO table (names...)`` from one array per column, in the rows' order;
    ``tail`` follows the SELECT (``ON CONFLICT ... RETURNING ...``)."""
    columns = [table.c[name] for name in names]
    aliases = [f"c{n}" for n in range(len(columns))]
    arrays = ", ".join(f"%b::{_array_type(c)}" for c in columns)
    values = [_value(c, f"v.{a}") for c, a in zip(columns, aliases, strict=True)]
    targets = [_quoted(name) for name in names]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(targets)}) "
        f"SELECT {', '.join(values)} FROM unnest({arrays}) WITH ORDINALITY "
        f"AS v({', '.join(aliases)}, ord) ORDER BY v.ord{tail}"
    )
    return BulkStatement(sql, columns)


def bulk_update(table: sa.Table, key: str, names: Sequence[str]) -> BulkStatement:
    """``UPDATE table SET names... WHERE key = ...`` for many rows; each row gives the
    key first, then the values of ``names``. The caller holds the rows' locks already,
    so the order rows are updated in does not matter."""
    columns = [table.c[key], *(table.c[name] for name in names)]
    aliases = [f"c{n}" for n in range(len(columns))]
    arrays = ", ".join(f"%b::{_array_type(c)}" for c in columns)
    sets = ", ".join(
        f"{_quoted(name)} = {_value(column, f'v.{alias}')}"
        for name, column, alias in zip(names, columns[1:], aliases[1:], strict=True)
    )
    sql = (
        f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(aliases)}) "
        f"WHERE {table.name}.{_quoted(key)} = v.{aliases[0]}"
    )
    return BulkStatement(sql, columns)
