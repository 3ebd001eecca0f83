"""Scored leads out: CSV, Parquet or JSON by the output file's extension; ``-`` is stdout.

Text formats may be gzipped (``scores.csv.gz``, ``scores.jsonl.gz``); ``-`` writes CSV to
standard output.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

from pyrometer.engines.sql_conditions import quote_literal
from pyrometer.io.files import data_suffix, is_gzip

FORMATS = {
    ".csv": "FORMAT csv, HEADER true",
    ".parquet": "FORMAT parquet",
    ".pq": "FORMAT parquet",
    ".json": "FORMAT json, ARRAY true",
    ".jsonl": "FORMAT json",
    ".ndjson": "FORMAT json",
}
STDOUT = "-"


def iso_sql(column: str) -> str:
    """A TIMESTAMP column as ISO-8601 text in UTC (``2026-11-23T10:00:00Z``)."""
    return f"strftime({column}, '%Y-%m-%dT%H:%M:%SZ')"


def write_query(con: duckdb.DuckDBPyConnection, query: str, path: str | Path) -> None:
    """Write the rows of ``query`` to ``path`` in the format its extension names
    (``-``: CSV on stdout)."""
    if str(path) == STDOUT:
        _write_stdout(con, query)
        return
    path = Path(path)
    suffix = data_suffix(path)
    options = FORMATS.get(suffix)
    if options is None or (is_gzip(path) and options == FORMATS[".parquet"]):
        raise ValueError(
            f"{path}: unknown output type {''.join(path.suffixes[-2:]) or path.suffix!r}; use "
            f"{', '.join(sorted(FORMATS))}, .csv.gz or .jsonl.gz, or - for stdout"
        )
    if is_gzip(path):
        options += ", COMPRESSION gzip"
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if suffix not in {".parquet", ".pq"}:
        query = f"SELECT * REPLACE ({iso_sql('last_activity')} AS last_activity) FROM ({query})"
    con.execute(f"COPY ({query}) TO {quote_literal(str(path))} ({options})")


def _write_stdout(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """CSV on stdout: DuckDB writes a temporary file, copied to whatever stdout is (a pipe,
    or the stream a test captures)."""
    with tempfile.TemporaryDirectory(prefix="pyrometer-") as folder:
        temporary = Path(folder) / "out.csv"
        write_query(con, query, temporary)
        sys.stdout.flush()
        with temporary.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()
