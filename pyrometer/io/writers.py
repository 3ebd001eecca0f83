"""Scored leads out: CSV, Parquet or JSON by the output file's extension."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pyrometer.engines.sql_conditions import quote_literal

FORMATS = {
    ".csv": "FORMAT csv, HEADER true",
    ".parquet": "FORMAT parquet",
    ".pq": "FORMAT parquet",
    ".json": "FORMAT json, ARRAY true",
    ".jsonl": "FORMAT json",
    ".ndjson": "FORMAT json",
}


def iso_sql(column: str) -> str:
    """A TIMESTAMP column as ISO-8601 text in UTC (``2026-11-23T10:00:00Z``)."""
    return f"strftime({column}, '%Y-%m-%dT%H:%M:%SZ')"


def write_query(con: duckdb.DuckDBPyConnection, query: str, path: str | Path) -> None:
    """Write the rows of ``query`` to ``path`` in the format its extension names."""
    path = Path(path)
    options = FORMATS.get(path.suffix.lower())
    if options is None:
        raise ValueError(
            f"{path}: unknown output type {path.suffix!r}; use {', '.join(sorted(FORMATS))}"
        )
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() not in {".parquet", ".pq"}:
        query = f"SELECT * REPLACE ({iso_sql('last_activity')} AS last_activity) FROM ({query})"
    con.execute(f"COPY ({query}) TO {quote_literal(str(path))} ({options})")
