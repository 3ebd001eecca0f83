"""Spark's inputs: event and lead DataFrames with the columns the engine reads.

A data engineer's own DataFrame or a lake of Parquet files (any path Spark reads:
``file://``, ``hdfs://``, ``s3a://``, a folder or a glob) becomes an :class:`EventFrame`
with the columns the file readers give DuckDB (:mod:`pyrometer.io.readers`): ``lead_id``,
``event``, ``ts_us`` (epoch microseconds), ``event_id``, and one ``p_<name>`` column per
property, found by the same column names (``user_id``, ``event_name``, ``occurred_at``…).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pyrometer.core.conditions import normalize_name
from pyrometer.core.ids import WHITESPACE
from pyrometer.core.timeutil import MAX_US, MIN_US
from pyrometer.io.readers import EVENT_ALIASES, LEAD_ALIASES  # the spellings files accept


@dataclass(frozen=True)
class EventFrame:
    """Events: ``lead_id``, ``event`` (raw name), ``ts_us`` (BIGINT), ``event_id``, and
    ``properties``: normalised property name → its column."""

    frame: DataFrame
    properties: Mapping[str, str] = field(default_factory=dict)
    unique_ids: bool = False
    """Whether no ``event_id`` repeats (they were numbered here); else the scorer looks."""
    written_ids: DataFrame | None = None
    """The same rows with each lead id as written (text, not put in its normal form):
    the scorer aggregates by these, and only if one of the leads it finds is not in
    normal form does it score again from :attr:`frame`, as the DuckDB engine does. Putting
    every row's id in normal form costs more than the rest of reading it."""


@dataclass(frozen=True)
class LeadFrame:
    """Leads: ``lead_id`` plus attribute columns (normalised name → column)."""

    frame: DataFrame
    attributes: Mapping[str, str] = field(default_factory=dict)


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    normal = {normalize_name(c): c for c in columns}
    return next((normal[n] for n in names if n in normal), None)


def _named(columns: list[str], name: str) -> str:
    if name in columns:
        return name
    found = _find(columns, (normalize_name(name),))
    if found is None:
        raise ValueError(f"--id: no column {name!r} (columns found: {', '.join(columns)})")
    return found


def lead_id(value: Column) -> Column:
    """A lead id in its normal form (:func:`pyrometer.core.ids.normalize_lead_id`): Unicode
    NFC, white space around it trimmed. Spark has no NFC function, so an id with a
    character outside ASCII (its length in characters differs from its length in bytes)
    is composed by the ICU library Spark itself ships (``icu4j``), called in the JVM;
    ASCII ids (nearly all) are left as they are. An id that starts and ends with
    printable ASCII has nothing to trim, even after NFC: only the rest pay for the
    regular expression."""
    text = value.cast("string")
    ascii_only = text.isNull() | (F.length(text) == F.octet_length(text))
    composed = F.when(ascii_only, text).otherwise(
        F.call_function("java_method", F.lit(_NFC_CLASS), F.lit("compose"), text, F.lit(False))
    )
    space = "".join(f"\\x{{{ord(ch):x}}}" for ch in WHITESPACE)
    edges = F.ascii(text).between(33, 126) & F.ascii(F.substring(text, -1, 1)).between(33, 126)
    return F.when(edges, composed).otherwise(
        F.regexp_replace(composed, f"^[{space}]+|[{space}]+$", "")
    )


_NFC_CLASS = "com.ibm.icu.text.Normalizer"
"""``compose(text, false)`` is NFC; ICU is a dependency of Spark itself (collations)."""


def epoch_us(column: Column, kind: T.DataType) -> Column:
    """Epoch microseconds from a time column of any common type; NULL if unparsable or
    outside the accepted range. Numbers are epoch seconds, milliseconds or microseconds by
    their size, as the file readers read them."""
    if isinstance(kind, T.TimestampType | T.TimestampNTZType | T.DateType):
        us = F.unix_micros(column.cast("timestamp"))
    elif isinstance(kind, T.NumericType | T.StringType):
        text = F.trim(column.cast("string"))
        number = (
            F.when(text.rlike(r"^[0-9]+(\.[0-9]+)?$"), text.try_cast("double"))
            if isinstance(kind, T.StringType)
            else column.cast("double")
        )
        scaled = (
            F.when(number >= 1e14, number)
            .when(number >= 1e11, number * 1e3)
            .otherwise(number * 1e6)
            .try_cast("long")
        )
        if isinstance(kind, T.StringType):
            scaled = F.coalesce(F.unix_micros(text.try_cast("timestamp")), scaled)
        us = scaled
    else:
        raise ValueError(
            f"the time column has type {kind.simpleString()}; expected timestamps (ISO-8601 "
            "text, a TIMESTAMP or DATE column, or epoch numbers)"
        )
    return F.when(us.between(MIN_US, MAX_US), us)


def events_frame(df: DataFrame, lead_id_column: str | None = None) -> EventFrame:
    """Events as the engine reads them, from a DataFrame with the usual column names."""
    columns = df.columns
    found: dict[str, str] = {}
    for canonical in ("lead_id", "event", "timestamp"):
        if canonical == "lead_id" and lead_id_column is not None:
            found[canonical] = _named(columns, lead_id_column)
            continue
        name = _find(columns, EVENT_ALIASES[canonical])
        if name is None:
            raise ValueError(f"missing column {canonical!r} (columns found: {', '.join(columns)})")
        found[canonical] = name
    id_column = _find([c for c in columns if c != found["lead_id"]], EVENT_ALIASES["event_id"])
    used = {found["lead_id"], found["event"], found["timestamp"], id_column}
    properties: dict[str, str] = {}
    selected = [
        lead_id(F.col(f"`{found['lead_id']}`")).alias("lead_id"),
        F.col(f"`{found['event']}`").cast("string").alias("event"),
        epoch_us(F.col(f"`{found['timestamp']}`"), df.schema[found["timestamp"]].dataType).alias(
            "ts_us"
        ),
        # Without an id column, file order numbers the events (and orders ties), as the
        # file readers' row numbers do.
        (
            F.col(f"`{id_column}`").cast("string") if id_column else F.monotonically_increasing_id()
        ).alias("event_id"),
    ]
    for column in columns:
        name = normalize_name(column)
        if column in used or name in properties:
            continue
        properties[name] = f"p_{name}"
        selected.append(F.col(f"`{column}`").alias(f"p_{name}"))
    written = [F.col(f"`{found['lead_id']}`").cast("string").alias("lead_id"), *selected[1:]]
    return EventFrame(
        df.select(*selected),
        properties,
        unique_ids=id_column is None,
        written_ids=df.select(*written),
    )


def leads_frame(df: DataFrame, lead_id_column: str | None = None) -> LeadFrame:
    """Leads as the engine reads them: a lead id column plus attributes."""
    columns = df.columns
    id_col = (
        _named(columns, lead_id_column)
        if lead_id_column is not None
        else _find(columns, LEAD_ALIASES)
    )
    if id_col is None:
        raise ValueError(f"leads: missing column 'lead_id' (columns found: {', '.join(columns)})")
    attributes: dict[str, str] = {}
    selected = [lead_id(F.col(f"`{id_col}`")).alias("lead_id")]
    for column in columns:
        name = normalize_name(column)
        if column == id_col or name in attributes:
            continue
        attributes[name] = f"a_{name}"
        selected.append(F.col(f"`{column}`").alias(f"a_{name}"))
    return LeadFrame(df.select(*selected), attributes)


def read_events(spark: SparkSession, path: str, lead_id_column: str | None = None) -> EventFrame:
    """Events from Parquet at ``path``: a file, a folder of files, or a glob."""
    return events_frame(spark.read.parquet(path), lead_id_column)


def read_leads(spark: SparkSession, path: str, lead_id_column: str | None = None) -> LeadFrame:
    return leads_frame(spark.read.parquet(path), lead_id_column)
