"""The DuckDB engine's inputs and outputs: event and lead tables as SQL, and connections.

Readers (:mod:`pyrometer.io.readers`) turn CSV, Parquet or JSON Lines into these; the
scorer reads nothing else, so one scorer serves every file format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import duckdb

from pyrometer.core.stitching import Stitching
from pyrometer.engines import native as native_ext


@dataclass(frozen=True)
class EventTable:
    """Events as SQL: ``lead_id``, ``event`` (raw name), ``ts_us`` (BIGINT), ``event_id``.

    ``properties`` maps normalised property names to the SQL that reads each one.
    """

    sql: str
    properties: Mapping[str, str] = field(default_factory=dict)
    unique_ids: bool = False
    """Whether no ``event_id`` repeats, as the reader knows (ids are row numbers); else the
    scorer looks, and keeps one event per id (:meth:`DuckDBBatchScorer.distinct`)."""
    traits: LeadTable | None = None
    """Attributes the events file itself gives its leads (Segment ``identify`` traits)."""
    identities: Stitching | None = None
    """The file's Segment ``identify`` and ``alias`` calls, stitched; its events are
    already under the leads they belong to."""
    diagnose: Callable[[], None] | None = field(default=None, compare=False)
    """Called when rows lack a lead, event or time; raises an error naming the first."""
    rows: int | None = None
    """How many rows, when the reader knows cheaply (Parquet metadata)."""
    earliest_us: int | None = None
    """The earliest time, when the reader knows cheaply (Parquet statistics)."""
    normal_lead_id: Callable[[str], str] | None = field(default=None, compare=False)
    """When ``lead_id`` may not be in normal form (:mod:`pyrometer.core.ids`): the SQL of
    an id expression's normal form. Scoring then checks the scored leads' ids (one per
    lead, cheap) and scores again with every row's id normalised only if one is not."""


@dataclass(frozen=True)
class LeadTable:
    """Leads as SQL: ``lead_id`` plus attribute columns (normalised name → SQL)."""

    sql: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def connect(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for the engine: one on which pass 1 can run natively (see
    :mod:`pyrometer.engines.native`). Every connection pyrometer makes comes from here."""
    return native_ext.connect(database, read_only)
