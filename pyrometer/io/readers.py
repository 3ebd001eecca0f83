"""Event and lead files into DuckDB, checked, with the columns the engines expect.

Readers accept what marketing tools export: CSV (any common delimiter), Parquet and JSON
Lines, plus Segment / RudderStack ``track``, ``page`` and ``identify`` messages as they are
sent. Each file becomes a DuckDB view with canonical columns (CSV and JSON Lines up to
2 GB are then parsed once into a DuckDB table); nothing is loaded into Python. Text files
may be gzipped, and in another encoding than UTF-8 when it is named
(:mod:`pyrometer.io.files`).
Bad input raises :class:`InputError` naming the file, the row and the column, before any
scoring starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pyrometer.core.conditions import normalize_name
from pyrometer.core.stitching import Stitching
from pyrometer.core.timeutil import MAX_US, MIN_US, TIME_RANGE
from pyrometer.engines.duckdb_batch import EventTable, LeadTable
from pyrometer.engines.sql_conditions import quote_ident, quote_literal
from pyrometer.io import files
from pyrometer.io.lead_ids import lead_id_sql
from pyrometer.io.segment import linked_messages_sql, read_identities

EVENT_ALIASES = {
    "lead_id": ("lead_id", "leadid", "user_id", "userid", "contact_id", "contactid"),
    "event": ("event", "event_name", "eventname", "activity", "activity_type"),
    "timestamp": ("timestamp", "ts", "time", "event_time", "occurred_at", "created_at", "date"),
    "event_id": ("event_id", "eventid", "message_id", "messageid", "id"),
}
LEAD_ALIASES = ("lead_id", "leadid", "user_id", "userid", "contact_id", "contactid", "id")
NUMERIC_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
    }
)
SEGMENT_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
PARSE_ONCE_BYTES = 2 << 30  # text files up to this size are parsed once, into memory


class InputError(ValueError):
    """A file that cannot be scored; the message names the file, row and column."""

    def __init__(
        self, path: str | Path, message: str, row: int | None = None, column: str | None = None
    ):
        self.path, self.row, self.column = str(path), row, column
        where = [str(path)]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(": ".join([", ".join(where), message]))


@dataclass(frozen=True)
class Source:
    """A file registered as a DuckDB view, with its columns and their types."""

    path: Path
    view: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    row_number_sql: str  # a 1-based row number in file order, for error messages

    def type_of(self, column: str) -> str:
        return self.types[self.columns.index(column)]


def _reader_sql(path: Path, read: Path) -> tuple[str, str]:
    """The DuckDB table function for ``path`` (read from ``read``: the file itself or its
    UTF-8 copy) and the SQL of its 1-based row number. DuckDB decompresses ``.gz``."""
    literal = quote_literal(str(read))
    kind = files.file_format(path)
    if kind == "parquet" and not files.is_gzip(path):
        return f"read_parquet({literal}, file_row_number = true)", "file_row_number + 1"
    if kind == "json":
        return (
            f"read_json({literal}, format = 'newline_delimited', sample_size = -1)",
            "row_number() OVER ()",
        )
    if kind == "csv":
        # DuckDB's own sniffer on its default sample: a whole-file sample (-1) was read
        # again at every scan of the view, five times slower than Parquet.
        return (
            f"read_csv({literal}, all_varchar = true, header = true)",
            "row_number() OVER ()",
        )
    if kind == "parquet":
        raise InputError(path, "a gzipped Parquet file: unzip it (Parquet is compressed inside)")
    raise InputError(
        path,
        f"unknown file type {files.data_suffix(path) or path.suffix!r}: use .csv, .parquet or "
        ".jsonl (text formats may be gzipped: .csv.gz, .jsonl.gz)",
    )


def _utf8(path: Path, encoding: str | None) -> Path:
    """The UTF-8 file DuckDB reads for ``path``: itself when it is UTF-8, a decoded copy
    with ``encoding``; a file that is not UTF-8 without ``encoding`` is an error naming
    the line and the encoding it looks like."""
    if files.file_format(path) not in ("csv", "json"):
        return path
    bad = files.first_non_utf8(path)
    # `--encoding` is for the files that are not UTF-8: events in UTF-8 beside a cp1252
    # LEADS stay UTF-8 (decoded as cp1252, `Müller` became `MÃ¼ller`, another lead).
    other = encoding is not None and files.check_encoding(encoding) not in files.UTF8
    if bad is not None and encoding is not None and other:
        try:
            return files.as_utf8(path, encoding)
        except UnicodeDecodeError as exc:
            raise InputError(path, f"is not {encoding}: {exc.reason} at byte {exc.start}") from None
    if bad is not None:
        raise InputError(
            path,
            f"line {bad.line} is not UTF-8 (byte 0x{bad.byte:02x}: {bad.sample!r}); the file "
            f"looks like {bad.guess}: run again with --encoding {bad.guess}",
        )
    return path


def register(
    con: duckdb.DuckDBPyConnection, path: str | Path, view: str, encoding: str | None = None
) -> Source:
    """Register ``path`` as view ``view``; the file must exist and hold at least one row.

    CSV and JSON Lines are UTF-8 unless ``encoding`` names another encoding."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    reader, row_number = _reader_sql(path, _utf8(path, encoding))
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS SELECT * FROM {reader}")
        rel = con.sql(f"SELECT * FROM {quote_ident(view)} LIMIT 0")
        columns, types = tuple(rel.columns), tuple(str(t) for t in rel.types)
        has_rows = con.execute(f"SELECT 1 FROM {quote_ident(view)} LIMIT 1").fetchone() is not None
    except duckdb.Error as exc:
        raise InputError(path, f"cannot read: {_first_line(exc)}") from None
    if not has_rows:
        raise InputError(path, "the file is empty (no data rows)")
    if files.file_format(path) == "json":
        types = _ids_as_text(con, view, reader, columns, types)
    if "file_row_number" in columns:
        keep = [c for c in columns if c != "file_row_number"]
        types = tuple(t for c, t in zip(columns, types, strict=True) if c != "file_row_number")
        columns = tuple(keep)
    return Source(path, view, columns, types, row_number)


# Id fields of JSON Lines (the usual spellings and Segment's), read as text whatever JSON
# type a message gives them.
_JSON_ID_NAMES = frozenset(
    {*LEAD_ALIASES, *EVENT_ALIASES["lead_id"], *EVENT_ALIASES["event_id"]}
    | {"anonymousid", "previousid"}
)


def _ids_as_text(
    con: duckdb.DuckDBPyConnection,
    view: str,
    reader: str,
    columns: tuple[str, ...],
    types: tuple[str, ...],
) -> tuple[str, ...]:
    """Re-register a JSON Lines view with its id fields as text; the new column types.

    JSON gives ids as numbers as often as text (``"userId": 12345``). DuckDB types a field
    that is both as ``JSON``, whose text keeps a string's quotes (``"abc"`` would be the
    lead ``\"abc\"``), and one that is only a number as ``BIGINT``, which cannot meet a
    text ``anonymousId``. As text, ``12345`` and ``"12345"`` are the same id, as in CSV.
    """
    replace: list[str] = []
    new_types = list(types)
    for i, (column, kind) in enumerate(zip(columns, types, strict=True)):
        if normalize_name(column) not in _JSON_ID_NAMES or kind == "VARCHAR":
            continue
        quoted = quote_ident(column)
        text = (
            f"json_extract_string({quoted}, '$')"
            if kind == "JSON"
            else f"CAST({quoted} AS VARCHAR)"
        )
        replace.append(f"{text} AS {quoted}")
        new_types[i] = "VARCHAR"
    if replace:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS "
            f"SELECT * REPLACE ({', '.join(replace)}) FROM {reader}"
        )
    return tuple(new_types)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _find(columns: Sequence[str], names: Iterable[str]) -> str | None:
    normal = {normalize_name(c): c for c in columns}
    return next((normal[n] for n in names if n in normal), None)


def _first_bad_row(
    con: duckdb.DuckDBPyConnection, source: Source, bad_sql: str, value_sql: str
) -> tuple[int, object] | None:
    """The first row (1-based, in file order) where ``bad_sql`` holds, and its value."""
    row = con.execute(
        f"SELECT rn, val FROM (SELECT {source.row_number_sql} AS rn, {value_sql} AS val, "
        f"{bad_sql} AS bad FROM {quote_ident(source.view)}) WHERE bad ORDER BY rn LIMIT 1"
    ).fetchone()
    return (int(row[0]), row[1]) if row else None


def _timestamp_sql(column_sql: str, column_type: str) -> str:
    """Epoch microseconds from a timestamp column of any common type; NULL if unparsable.

    Text is ISO-8601 (offsets honoured, naive = UTC) or epoch seconds / milliseconds /
    microseconds; numbers are epoch seconds, milliseconds or microseconds by their size.
    """
    upper = column_type.upper()
    if upper.startswith("TIMESTAMP"):  # naive timestamps are UTC: no time-zone cast needed
        return f"epoch_us({column_sql})"
    if upper == "DATE":
        return f"epoch_us(CAST({column_sql} AS TIMESTAMP))"
    if upper != "VARCHAR" and upper not in NUMERIC_TYPES:
        raise TypeError(column_type)
    number = (
        f"TRY_CAST({column_sql} AS DOUBLE)"
        if upper != "VARCHAR"
        else f"TRY_CAST(CASE WHEN regexp_full_match(trim({column_sql}), '[0-9]+(\\.[0-9]+)?') "
        f"THEN trim({column_sql}) END AS DOUBLE)"
    )
    epoch = (
        f"TRY_CAST(CASE WHEN {number} >= 1e14 THEN {number} "
        f"WHEN {number} >= 1e11 THEN {number} * 1e3 ELSE {number} * 1e6 END AS BIGINT)"
    )
    if upper != "VARCHAR":
        return epoch
    return f"coalesce(epoch_us(TRY_CAST({column_sql} AS TIMESTAMPTZ)), {epoch})"


EMPTY_LEAD = "lead_id is empty or only white space"


def _in_range_sql(ts_sql: str) -> str:
    """``ts_sql`` where it is in the accepted range of times, else NULL (a bad row)."""
    return f"CASE WHEN {ts_sql} BETWEEN {MIN_US} AND {MAX_US} THEN {ts_sql} END"


def _is_segment(columns: Sequence[str]) -> bool:
    names = set(columns)
    # A file of `page` calls alone has no `event` field: its `type` says what it is.
    kind = "event" in names or ("type" in names and _find(columns, EVENT_ALIASES["event"]) is None)
    return kind and ("userId" in names or "anonymousId" in names)


def open_events(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    known_events: Iterable[str] | None = None,
    *,
    lead_id_column: str | None = None,
    encoding: str | None = None,
) -> EventTable:
    """Events from ``path`` as an :class:`EventTable`, checked row by row.

    With ``known_events`` (``--strict``), an event the playbook does not know is an error;
    ``lead_id_column`` names the lead id column (``--id``) instead of the usual spellings.
    """
    con.execute("SET TimeZone = 'UTC'")
    source = register(con, path, "pyro_events_raw", encoding)
    raw = quote_ident(source.view)
    columns = source.columns
    props: dict[str, str] = {}
    if _is_segment(columns):
        exprs, props, rest = _segment_exprs(source)
        filter_sql = rest
    else:
        exprs = {}
        for canonical in ("lead_id", "event", "timestamp"):
            if canonical == "lead_id" and lead_id_column is not None:
                exprs[canonical] = quote_ident(_named_column(source, lead_id_column))
                continue
            found = _find(columns, EVENT_ALIASES[canonical])
            if found is None:
                raise InputError(
                    path,
                    f"missing column {canonical!r} (columns found: {', '.join(columns)})",
                    column=canonical,
                )
            exprs[canonical] = quote_ident(found)
        found_id = _find(
            [c for c in columns if quote_ident(c) != exprs["lead_id"]], EVENT_ALIASES["event_id"]
        )
        # Without an id column the row number orders ties: it is never turned into text,
        # which would cost more than the scoring itself on a large Parquet file.
        exprs["event_id"] = quote_ident(found_id) if found_id else source.row_number_sql
        exprs["timestamp_type"] = source.type_of(exprs["timestamp"].strip('"'))
        used = {exprs[k].strip('"') for k in ("lead_id", "event", "timestamp")} | {found_id}
        for column in columns:
            if column not in used:
                props.setdefault(normalize_name(column), quote_ident(column))
        filter_sql = "TRUE"

    try:
        ts_sql = _timestamp_sql(exprs["timestamp"], exprs["timestamp_type"])
    except TypeError:
        raise InputError(
            path,
            f"has type {exprs['timestamp_type']}; expected timestamps (ISO-8601 text, a "
            "TIMESTAMP or DATE column, or epoch numbers)",
            column=exprs["timestamp"].strip('"'),
        ) from None
    # The view keeps the ids as written (normalising every row in every scoring pass
    # cost 80% more time); the engine normalises them only when a scored lead's id is not
    # in normal form (EventTable.normal_lead_id). The checks name rows by the normal form.
    raw_lead_sql = _as_text(exprs["lead_id"], source)
    lead_sql = lead_id_sql(raw_lead_sql)
    event_sql = _as_text(exprs["event"], source)
    parsed_sql, ts_sql = ts_sql, _in_range_sql(ts_sql)
    checks = [
        ("lead_id", f"{lead_sql} IS NULL OR {lead_sql} = ''", raw_lead_sql, EMPTY_LEAD),
        ("event", f"{event_sql} IS NULL OR trim({event_sql}) = ''", event_sql, "event is empty"),
        (  # as `/v1/track` refuses it: a name of punctuation alone means no event
            "event",
            f"NOT regexp_matches({event_sql}, '[\\pL\\pN\\pM]')",
            event_sql,
            "an event name needs at least one letter or digit",
        ),
        ("timestamp", f"{exprs['timestamp']} IS NULL", "NULL", "timestamp is empty"),
        (
            "timestamp",
            f"{parsed_sql} IS NULL",
            f"CAST({exprs['timestamp']} AS VARCHAR)",
            "not a timestamp (use ISO-8601 such as 2026-11-23T10:00:00Z, or epoch seconds)",
        ),
        (
            "timestamp",
            f"{ts_sql} IS NULL",
            f"CAST({exprs['timestamp']} AS VARCHAR)",
            f"outside the accepted range of times ({TIME_RANGE})",
        ),
    ]
    if known_events is not None:
        _check_known_events(con, source, event_sql, filter_sql, known_events)

    # The scoring pass counts rows without a lead, event or time; only then does
    # diagnose() look for the first of them, so a good file is read once.
    identities = _segment_identities(con, source, ts_sql) if _is_segment(columns) else None
    numbered = exprs["event_id"] == source.row_number_sql
    from_sql, order_sql = raw, ""
    if identities is not None and identities[0].links and "anonymousId" in columns:
        # Visitors' events under their leads, in file order (numbered before the join).
        from_sql, order_sql = linked_messages_sql(raw, source.row_number_sql), " ORDER BY pyro_rn"
        exprs["event_id"] = "pyro_rn" if numbered else exprs["event_id"]
    select = ", ".join(
        [
            f"{raw_lead_sql} AS lead_id",
            f"{event_sql} AS event",
            f"{ts_sql} AS ts_us",
            f"{exprs['event_id']} AS event_id",
        ]
        + [f"{sql} AS {quote_ident('p_' + name)}" for name, sql in props.items()]
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW pyro_events AS SELECT {select} FROM {from_sql} "
        f"WHERE {filter_sql}{order_sql}"
    )
    table = "pyro_events"
    rows = earliest = None
    if files.file_format(source.path) != "parquet" and _small_enough(source.path):
        table, rows, earliest = _parsed_once(con)
    elif files.file_format(source.path) == "parquet":  # from the footer, no scan
        counted = con.execute(f"SELECT count(*) FROM {raw}").fetchone()
        rows = int(counted[0]) if counted else None
        kind = exprs["timestamp_type"].upper()
        if kind.startswith("TIMESTAMP") or kind == "DATE":  # times in the order of values
            column = exprs["timestamp"]
            first = con.execute(
                f"SELECT {_timestamp_sql(f'min({column})', kind)} FROM {raw}"
            ).fetchone()
            earliest = int(first[0]) if first and first[0] is not None else None
    return EventTable(
        table,
        {name: quote_ident("p_" + name) for name in props},
        # Row numbers never repeat; a file's own ids may (the scorer keeps the first).
        unique_ids=numbered,
        traits=identities[1] if identities else None,
        identities=identities[0] if identities else None,
        diagnose=lambda: _check(con, source, checks, filter_sql),
        rows=rows,
        earliest_us=earliest,
        normal_lead_id=lead_id_sql,
    )


def _small_enough(path: Path) -> bool:
    """Whether text input is parsed once into memory: up to about 30 M events (2 GB of
    CSV, a gzipped file counted at five times its size); larger files stay views, read
    as they are scanned, so that memory stays bounded."""
    size = path.stat().st_size * (5 if files.is_gzip(path) else 1)
    return size <= PARSE_ONCE_BYTES


def _parsed_once(con: duckdb.DuckDBPyConnection) -> tuple[str, int, int | None]:
    """Text input (CSV, JSON Lines) parsed once into a temporary table, with its row count
    and earliest time: the scorer reads the events four or five times, and each read of
    the view would parse the text and its timestamps again."""
    con.execute("CREATE OR REPLACE TEMP TABLE pyro_events_parsed AS SELECT * FROM pyro_events")
    row = con.execute("SELECT count(*), min(ts_us) FROM pyro_events_parsed").fetchone()
    assert row is not None
    return "pyro_events_parsed", int(row[0]), None if row[1] is None else int(row[1])


def _named_column(source: Source, name: str) -> str:
    """The column ``--id`` names: as spelled, else the one it names loosely (``Lead ID``)."""
    if name in source.columns:
        return name
    found = _find(source.columns, [normalize_name(name)])
    if found is None:
        raise InputError(
            source.path,
            f"--id: no column {name!r} (columns found: {', '.join(source.columns)})",
            column=name,
        )
    return found


def _as_text(column_sql: str, source: Source) -> str:
    """A column as VARCHAR, without a cast when it already is one (casts cost at 100 M rows)."""
    name = column_sql[1:-1].replace('""', '"') if column_sql.startswith('"') else None
    if name in source.columns and source.type_of(name) == "VARCHAR":
        return column_sql
    return f"CAST({column_sql} AS VARCHAR)"


def _check_known_events(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    event_sql: str,
    filter_sql: str,
    known_events: Iterable[str],
) -> None:
    """``--strict``: the first row whose event the playbook does not know is an error."""
    known = set(known_events)
    names = con.execute(
        f"SELECT DISTINCT {event_sql} FROM {quote_ident(source.view)} WHERE {filter_sql}"
    ).fetchall()
    unknown = sorted(
        str(n) for (n,) in names if n is not None and normalize_name(str(n)) not in known
    )
    if unknown:
        listed = ", ".join(quote_literal(name) for name in unknown)
        found = _first_bad_row(
            con, source, f"({filter_sql}) AND {event_sql} IN ({listed})", event_sql
        )
        row, value = found if found else (None, unknown[0])
        raise InputError(
            source.path,
            f"unknown event {value!r} (not in the playbook; {len(unknown)} unknown names in all; "
            "drop --strict to ignore them)",
            row=row,
            column="event",
        )


def _segment_exprs(source: Source) -> tuple[dict[str, str], dict[str, str], str]:
    """Column SQL for Segment messages: ``track`` and ``page`` are events, others skipped."""
    columns = source.columns
    lead = [quote_ident(c) for c in ("userId", "anonymousId") if c in columns]
    time_field = next((c for c in SEGMENT_TIME_FIELDS if c in columns), None)
    if time_field is None:
        raise InputError(source.path, "Segment messages need a 'timestamp'", column="timestamp")
    event = quote_ident("event") if "event" in columns else "NULL"
    if "type" in columns:
        page = "CASE WHEN \"type\" = 'page' THEN 'page_view' ELSE " + event + " END"
        event = page
        rest = "\"type\" IN ('track', 'page')"
    else:
        rest = "TRUE"
    exprs = {
        "lead_id": f"coalesce({', '.join(lead)})" if len(lead) > 1 else lead[0],
        "event": event,
        "timestamp": quote_ident(time_field),
        "timestamp_type": source.type_of(time_field),
        "event_id": quote_ident("messageId") if "messageId" in columns else source.row_number_sql,
    }
    times = [c for c in SEGMENT_TIME_FIELDS if c in columns]
    if len(times) > 1:
        # Per message, the first time it has, as `/v1/track` reads it (`timestamp`, else
        # `originalTimestamp`...); of one type when the fields share one, else as text.
        types = {source.type_of(c) for c in times}
        same = len(types) == 1
        parts = [quote_ident(c) if same else f"CAST({quote_ident(c)} AS VARCHAR)" for c in times]
        exprs["timestamp"] = f"coalesce({', '.join(parts)})"
        exprs["timestamp_type"] = types.pop() if same else "VARCHAR"
    props: dict[str, str] = {}
    if "properties" in columns:
        ptype = source.type_of("properties")
        for key in _struct_keys(ptype):
            props.setdefault(normalize_name(key), f'"properties".{quote_ident(key)}')
    if "type" in columns:
        _page_fallbacks(source, props)
    return exprs, props, rest


def _page_fallbacks(source: Source, props: dict[str, str]) -> None:
    """A ``page`` call's ``url`` and ``name`` where ``/v1/page`` takes them: the page's
    ``context.page.url`` when ``properties`` has no ``url``, its ``name`` when it has no
    ``name`` (:func:`pyrometer.api.convert.to_track`), so a file scores as the service."""
    fallbacks: dict[str, str] = {}
    if "context" in source.columns:
        page = dict(_struct_fields(source.type_of("context"))).get("page", "")
        if "url" in dict(_struct_fields(page)):
            fallbacks["url"] = '"context"."page"."url"'
    if "name" in source.columns:
        fallbacks["name"] = quote_ident("name")
    for key, sql in fallbacks.items():
        given = props.get(key, "NULL")
        props[key] = (
            f"CASE WHEN \"type\" = 'page' THEN coalesce(CAST({given} AS VARCHAR), "
            f"CAST({sql} AS VARCHAR)) ELSE {given} END"
        )


def _struct_keys(type_text: str) -> list[str]:
    """Field names of a DuckDB ``STRUCT(a VARCHAR, "b c" BIGINT)`` type's top level."""
    return [key for key, _ in _struct_fields(type_text)]


def _struct_fields(type_text: str) -> list[tuple[str, str]]:
    """``(name, type)`` of each field of a DuckDB ``STRUCT(...)`` type's top level."""
    if not type_text.upper().startswith("STRUCT("):
        return []
    body, depth, fields, part = type_text[7:-1], 0, [], ""
    for ch in body + ",":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            name = part.strip()
            if name.startswith('"'):
                end = name.index('"', 1)
                fields.append((name[1:end], name[end + 1 :].strip()))
            elif name:
                key, _, rest = name.partition(" ")
                fields.append((key, rest.strip()))
            part = ""
        else:
            part += ch
    return fields


def _flat_traits(type_text: str, sql: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(normalised name, SQL)`` of every leaf of a traits struct: a nested ``company``
    object gives ``company_name``, ``company_employee_count``... as the service does."""
    for key, field_type in _struct_fields(type_text):
        name = normalize_name(f"{prefix} {key}") if prefix else normalize_name(key)
        field_sql = f"{sql}.{quote_ident(key)}"
        if field_type.upper().startswith("STRUCT(") and field_type.endswith(")"):
            yield from _flat_traits(field_type, field_sql, name)
        else:
            yield name, field_sql


def _check(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    checks: list[tuple[str, str, str, str]],
    filter_sql: str,
) -> None:
    """One pass counting every kind of bad row; only on failure, find the first one."""
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE coalesce({bad}, TRUE))" for _, bad, _, _ in checks)
        + f" FROM {quote_ident(source.view)} WHERE {filter_sql}"
    ).fetchone()
    assert counts is not None
    for (column, bad, value_sql, message), count in zip(checks, counts, strict=True):
        if count:
            found = _first_bad_row(
                con, source, f"({filter_sql}) AND coalesce({bad}, TRUE)", value_sql
            )
            row, value = found if found else (None, None)
            more = f" ({count - 1} more rows like it)" if count > 1 else ""
            shown = f": {value!r}" if value is not None else ""
            raise InputError(source.path, f"{message}{shown}{more}", row=row, column=column)


def open_leads(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    lead_id_column: str | None = None,
    encoding: str | None = None,
) -> LeadTable:
    """Leads from ``path``: an id column plus attributes; Segment ``identify`` traits work too.

    ``lead_id_column`` names the id column (``--id``) instead of the usual spellings."""
    source = register(con, path, "pyro_leads_raw", encoding)
    raw = quote_ident(source.view)
    columns = source.columns
    if "traits" in columns and "type" in columns and "userId" in columns:
        # Segment calls: a person's identify calls merged, visitors folded in, as in EVENTS.
        found = read_identities(
            con,
            source.view,
            columns,
            source.row_number_sql,
            "NULL",
            _traits_of(source),
            "pyro_ltr_",
        )
        if found is None or found[1] is None:
            raise InputError(path, "no identify call with traits", column="traits")
        return found[1]
    attributes: dict[str, str] = {}
    if (
        lead_id_column is None
        and "traits" in columns
        and ("userId" in columns or "anonymousId" in columns)
    ):
        raw_lead_sql = (
            "CAST(coalesce("
            + ", ".join(quote_ident(c) for c in ("userId", "anonymousId") if c in columns)
            + ") AS VARCHAR)"
        )
        for name, sql in _flat_traits(source.type_of("traits"), '"traits"'):
            attributes.setdefault(name, sql)
        filter_sql = "\"type\" = 'identify'" if "type" in columns else "TRUE"
    else:
        found = (
            _named_column(source, lead_id_column)
            if lead_id_column is not None
            else _find(columns, LEAD_ALIASES)
        )
        if found is None:
            raise InputError(
                path,
                f"missing column 'lead_id' (columns found: {', '.join(columns)})",
                column="lead_id",
            )
        raw_lead_sql = f"CAST({quote_ident(found)} AS VARCHAR)"
        for column in columns:
            if column == found:
                continue
            name = normalize_name(column)
            if name in attributes:
                raise InputError(
                    path, f"columns {column!r} and another both read as {name!r}", column=column
                )
            attributes[name] = quote_ident(column)
        filter_sql = "TRUE"
    lead_sql = lead_id_sql(raw_lead_sql)
    _check(
        con,
        source,
        [("lead_id", f"{lead_sql} IS NULL OR {lead_sql} = ''", raw_lead_sql, EMPTY_LEAD)],
        filter_sql,
    )
    dup = con.execute(
        f"SELECT rn, lid FROM (SELECT rn, lid, row_number() OVER (PARTITION BY lid ORDER BY rn) "
        f"AS k FROM (SELECT {source.row_number_sql} AS rn, {lead_sql} AS lid FROM {raw} "
        f"WHERE {filter_sql})) WHERE k = 2 ORDER BY rn LIMIT 1"
    ).fetchone()
    if dup is not None:
        raise InputError(
            path,
            f"lead {dup[1]!r} appears twice; one row per lead",
            row=int(dup[0]),
            column="lead_id",
        )
    select = ", ".join(
        [f"{lead_sql} AS lead_id"]
        + [f"{sql} AS {quote_ident('a_' + name)}" for name, sql in attributes.items()]
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW pyro_leads AS SELECT {select} FROM {raw} WHERE {filter_sql}"
    )
    return LeadTable("pyro_leads", {name: quote_ident("a_" + name) for name in attributes})


def _segment_identities(
    con: duckdb.DuckDBPyConnection, source: Source, ts_sql: str
) -> tuple[Stitching, LeadTable | None] | None:
    """The file's ``identify`` and ``alias`` calls, stitched (:mod:`pyrometer.io.segment`).

    Messages of a JSON file that may hold calls are parsed once, into a table: the calls,
    the links and every scoring pass read it instead of parsing the text again each time
    (up to the size :func:`_small_enough` allows, so that memory stays bounded).
    """
    text = files.file_format(source.path) != "parquet"
    if "type" in source.columns and text and _small_enough(source.path):
        view = quote_ident(source.view)
        con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_messages AS SELECT * FROM {view}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM pyro_messages")
    return read_identities(
        con, source.view, source.columns, source.row_number_sql, ts_sql, _traits_of(source)
    )


def _traits_of(source: Source) -> list[tuple[str, str]]:
    """Each trait's normalised name and the SQL reading it from a message."""
    if "traits" not in source.columns:
        return []
    return list(_flat_traits(source.type_of("traits"), '"traits"'))
