"""Files into the store: leads (attributes) and events, from CSV, Parquet or JSON Lines.

The file readers of the batch engine check and normalise the file; rows then go through
the same ingest as the API, in chunks, so imported events are scored the same way.
Importing the same file twice changes nothing: events keep their file's ids (or, without
an id column, ``FILE#ROW``) and an unchanged attribute is no change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pyrometer.core.conditions import normalize_name
from pyrometer.core.stitching import Stitching
from pyrometer.engines.duckdb_batch import connect
from pyrometer.io.readers import InputError, open_events, open_leads
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, IngestResult, Track
from pyrometer.service.runtime import Service

CHUNK = 1000
Progress = Callable[[int, int], None]  # (rows done, rows in all)


def detect_kind(path: Path, encoding: str | None = None, lead_id_column: str | None = None) -> str:
    """``events`` when the file has an event column, else ``leads``."""
    con = connect()
    try:
        open_events(con, path, encoding=encoding, lead_id_column=lead_id_column)
        return "events"
    except InputError as exc:
        if exc.column == "event" or exc.column == "timestamp":
            return "leads"
        raise
    finally:
        con.close()


def _chunks(cursor: duckdb.DuckDBPyConnection) -> Any:
    while True:
        rows = cursor.fetchmany(CHUNK)
        if not rows:
            return
        yield rows


def import_events(
    service: Service,
    path: Path,
    progress: Progress | None = None,
    encoding: str | None = None,
    lead_id_column: str | None = None,
) -> IngestResult:
    con = connect()
    table = open_events(con, path, encoding=encoding, lead_id_column=lead_id_column)
    if table.diagnose is not None:
        table.diagnose()  # names the first row without a lead, an event or a time
    id_type = con.execute(f"SELECT typeof(event_id) FROM {table.sql} LIMIT 1").fetchone()
    numbered = id_type is not None and id_type[0] != "VARCHAR"
    total = con.execute(f"SELECT count(*) FROM {table.sql}").fetchone()[0]  # type: ignore[index]
    props = list(table.properties.items())
    lead_sql = table.normal_lead_id("lead_id") if table.normal_lead_id else "lead_id"
    select = ", ".join([lead_sql, "event", "ts_us", "event_id"] + [sql for _, sql in props])
    cursor = con.execute(f"SELECT {select} FROM {table.sql}")
    accepted = duplicates = done = 0
    if table.identities is not None:
        # Segment identify and alias calls first, as score stitches them: the events that
        # follow are then already under their leads.
        _import_identities(service, path, table.identities)
    for rows in _chunks(cursor):
        tracks = []
        for position, row in enumerate(rows, done + 1):
            lead_id, event, ts_us, event_id = row[:4]
            if event_id is None:  # a row without an id stays an event of its own
                event_id, numbered_row = position, True
            else:
                numbered_row = numbered
            properties = {
                name: value
                for (name, _), value in zip(props, row[4:], strict=True)
                if value is not None
            }
            tracks.append(
                Track(
                    message_id=f"{path.name}#{event_id}" if numbered_row else str(event_id),
                    name=normalize_name(str(event)),
                    ts_us=int(ts_us),
                    user_id=str(lead_id),
                    properties=properties,
                )
            )
        result = ingest(service, tracks, [])
        accepted += result.accepted
        duplicates += result.duplicates
        done += len(rows)
        if progress:
            progress(done, total)
    return IngestResult(accepted, duplicates)


def import_leads(
    service: Service,
    path: Path,
    progress: Progress | None = None,
    encoding: str | None = None,
    lead_id_column: str | None = None,
) -> int:
    """Every lead's attributes merged in (fit rescored); returns the number of rows."""
    con = connect()
    table = open_leads(con, path, encoding=encoding, lead_id_column=lead_id_column)
    names = list(table.attributes)
    total = con.execute(f"SELECT count(*) FROM {table.sql}").fetchone()[0]  # type: ignore[index]
    columns = ", ".join(["lead_id"] + [table.attributes[n] for n in names])
    cursor = con.execute(f"SELECT {columns} FROM {table.sql}")
    done = 0
    now = service.clock()
    for rows in _chunks(cursor):
        identifies = [
            Identify(
                message_id=f"{path.name}#{row[0]}",
                user_id=str(row[0]),
                ts_us=now,
                traits={n: v for n, v in zip(names, row[1:], strict=True) if v is not None},
            )
            for row in rows
        ]
        ingest(service, [], identifies)
        done += len(rows)
        if progress:
            progress(done, total)
    return done


def _import_identities(service: Service, path: Path, stitching: Stitching) -> int:
    """A Segment file's calls, in file order, with the links :func:`stitch` made (a call
    whose link it refused, one that would merge two known leads, gives its traits only).

    Calls go in groups of at most :data:`CHUNK` that the service reads as the file does: a
    group ends before a call for a lead that an earlier call of the group linked as a
    visitor (in one request the service would follow that chain; across requests, as
    here, it does not)."""
    now = service.clock()
    group: list[Identify] = []
    visitors: set[str] = set()
    sent = 0
    for call, linked in zip(stitching.calls, stitching.linked, strict=True):
        if call.lead_id in visitors or len(group) >= CHUNK:
            ingest(service, [], group)
            group, visitors = [], set()
        group.append(
            Identify(
                message_id=call.message_id or f"{path.name}#{call.row}",
                user_id=call.lead_id,
                ts_us=call.ts_us if call.ts_us is not None else now,
                anonymous_id=call.visitor if linked else None,
                traits=dict(call.traits),
                anonymous=not call.named,  # an identify with only an anonymousId
            )
        )
        if linked and call.visitor is not None:
            visitors.add(call.visitor)
        sent += 1
    if group:
        ingest(service, [], group)
    return sent
