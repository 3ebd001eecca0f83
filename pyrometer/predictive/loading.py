"""Read a lead export as it comes: CSV with any common delimiter, Parquet or JSON Lines.

Exports from CRMs and form tools are messy: semicolon CSVs from European spreadsheets,
drop-down placeholders such as ``Select`` that mean "no answer", numbers stored as text.
Everything here turns such a file into a frame of plain Python values in which a
placeholder is ``None``, so every later step sees one notion of "missing".
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pyrometer.io.files import bom_encoding, file_format, is_gzip

# The same placeholders as the playbook's ``missing_values`` so both parts agree.
DEFAULT_PLACEHOLDERS: tuple[str, ...] = ("", "select", "na", "n/a", "-", "null", "none", "nan")
TRUE_WORDS = frozenset({"true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "no", "n"})
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{4}/\d{1,2}/\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?)$"
)
_DELIMITERS = ",;\t|"


class DataError(ValueError):
    """A problem with the user's data, worded for the user: file, row, column, what is wrong."""


class ColumnKind:
    """What a column holds, as inferred from its values."""

    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    CATEGORICAL = "categorical"


def read_table(path: str | Path) -> pd.DataFrame:
    """The rows of ``path``; CSV cells stay text so that type inference sees what was written."""
    file = Path(path)
    if not file.exists():
        raise DataError(f"{file}: no such file")
    if file.is_dir():
        raise DataError(f"{file}: is a folder, expected a CSV, Parquet or JSON Lines file")
    kind = file_format(file)  # by the name, past a `.gz` (text may be gzipped)
    if kind == "parquet":
        try:
            return pd.read_parquet(file)
        except Exception as exc:
            raise DataError(f"{file}: not a readable Parquet file ({exc})") from None
    if kind == "json":
        return _read_json_lines(file)
    return _read_csv(file)


def _read_text(file: Path) -> str:
    raw = file.read_bytes()
    if is_gzip(file):
        raw = gzip.decompress(raw)
    # A byte-order mark names UTF-16 or UTF-32, which would otherwise decode as cp1252
    # into NUL-filled garbage; the same test as the DuckDB readers' (pyrometer.io.files).
    marked = bom_encoding(raw[:4])
    if marked is not None:
        try:
            return raw.decode(marked)
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{file}: cannot decode the file as text")  # pragma: no cover


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample: the one that splits the first lines most consistently."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        pass
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    best, best_score = ",", -1.0
    for delimiter in _DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=delimiter))) for line in lines]
        if not counts or counts[0] < 2:
            continue
        score = counts[0] * (sum(c == counts[0] for c in counts) / len(counts))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_csv(file: Path) -> pd.DataFrame:
    text = _read_text(file)
    if not text.strip():
        raise DataError(f"{file}: the file is empty")
    delimiter = sniff_delimiter(text[:65536])
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    rows = [row for row in rows if row]
    header, body = rows[0], rows[1:]
    names = [name.strip() for name in header]
    if len(set(names)) != len(names):
        dupes = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{file}: column name(s) used twice in the header: {', '.join(dupes)}")
    width = len(names)
    for number, row in enumerate(body, start=2):
        if len(row) != width:
            if len(row) > width and not any(cell.strip() for cell in row[width:]):
                continue  # a stray trailing delimiter
            raise DataError(
                f"{file}: line {number} has {len(row)} fields, the header has {width} "
                f"(delimiter {delimiter!r})"
            )
    data = [row[:width] for row in body]
    return pd.DataFrame(data, columns=names, dtype=object)


def _read_json_lines(file: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(_read_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{file}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{file}: line {number} is not a JSON object")
        records.append(record)
    if not records:
        raise DataError(f"{file}: the file has no records")
    return pd.DataFrame.from_records(records).astype(object)


def is_placeholder(value: Any, placeholders: Iterable[str] = DEFAULT_PLACEHOLDERS) -> bool:
    """Whether a cell means "no answer": absent, NaN, or a placeholder text (any case/spaces)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip().lower() in frozenset(placeholders)
    return False


def clean_missing(
    frame: pd.DataFrame, placeholders: Iterable[str] = DEFAULT_PLACEHOLDERS
) -> pd.DataFrame:
    """A copy of ``frame`` (object columns) where placeholders are ``None`` and text is stripped."""
    marks = frozenset(p.strip().lower() for p in placeholders)
    out = {}
    for column in frame.columns:
        values = frame[column].astype(object).tolist()
        cleaned = []
        for value in values:
            if is_placeholder(value, marks):
                cleaned.append(None)
            elif isinstance(value, str):
                cleaned.append(value.strip())
            else:
                cleaned.append(value)
        out[column] = pd.Series(cleaned, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return bool(np.isfinite(value))
    return isinstance(value, str) and bool(_NUMBER.match(value))


def is_date(value: Any) -> bool:
    if isinstance(value, pd.Timestamp | np.datetime64):
        return True
    import datetime as _dt

    if isinstance(value, _dt.date):
        return True
    return isinstance(value, str) and bool(_DATE.match(value))


def infer_kind(values: pd.Series) -> str | None:
    """The kind of a cleaned column, or ``None`` when it has no values at all."""
    present = [v for v in values.tolist() if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool | np.bool_) for v in present):
        return ColumnKind.BOOLEAN
    if all(is_number(v) for v in present):
        return ColumnKind.NUMERIC
    lowered = {str(v).strip().lower() for v in present}
    if lowered <= (TRUE_WORDS | FALSE_WORDS) and len(lowered) <= 2:
        return ColumnKind.BOOLEAN
    if all(is_date(v) for v in present):
        return ColumnKind.DATETIME
    return ColumnKind.CATEGORICAL


_ID_NAME = re.compile(r"(^|[^a-z])(id|ids|uuid|guid|key|number|no|num|nr|code|ref)([^a-z]|$)")


def looks_like_id(values: pd.Series, kind: str, name: str = "") -> bool:
    """Identifiers (nearly one distinct value per row) say nothing a model can reuse.

    Distinct texts on nearly every row are identifiers (or e-mails, free text): a model
    cannot learn from them. Distinct whole numbers are identifiers only when the column's
    name says so, since a small history can have a distinct count on every row.
    """
    present = [v for v in values.tolist() if v is not None]
    if len(present) < 20 or kind not in (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL):
        return False
    distinct = len({str(v) for v in present})
    if distinct < 0.95 * len(present):
        return False
    if kind == ColumnKind.NUMERIC:
        numbers = np.array([float(v) for v in present])
        named = bool(_ID_NAME.search(name.lower()))
        return named and bool(np.all(numbers == np.round(numbers)))
    return True


def to_numbers(values: pd.Series) -> np.ndarray:
    """Floats for a numeric column; NaN for missing and for anything that is not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.tolist()):
        if v is not None and is_number(v):
            out[i] = float(v)
    return out


def to_booleans(values: pd.Series) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.tolist()):
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            out[i] = float(v)
            continue
        text = str(v).strip().lower()
        if text in TRUE_WORDS or text == "1":
            out[i] = 1.0
        elif text in FALSE_WORDS or text == "0":
            out[i] = 0.0
    return out


def to_datetimes(values: pd.Series) -> pd.Series:
    """UTC-naive timestamps; unparseable values become NaT."""
    parsed = pd.to_datetime(
        pd.Series([None if v is None else str(v) for v in values.tolist()], dtype=object),
        errors="coerce",
        utc=True,
        format="mixed",
    )
    return parsed.dt.tz_localize(None).reset_index(drop=True)
