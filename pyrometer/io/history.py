"""A history for backtests, read from files: events lead by lead, attributes, outcomes.

The backtest itself (:mod:`pyrometer.backtest`) is pure; this module turns EVENTS,
LEADS and OUTCOMES files into its inputs with the same readers ``pyrometer score`` uses
(same column spellings, ids, Segment files, one event per id), streaming the events
lead by lead in time order so that memory holds one lead's events at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrometer.backtest.metrics import Outcome
from pyrometer.backtest.outcomes import outcome_of_event, outcome_word
from pyrometer.core.conditions import normalize_name
from pyrometer.core.ids import WHITESPACE, normalize_lead_id
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import check_us
from pyrometer.engines.sql_conditions import quote_ident
from pyrometer.io.readers import InputError, _find, _timestamp_sql, register

if TYPE_CHECKING:
    import duckdb

    from pyrometer.engines.duckdb_batch import EventTable

FETCH_ROWS = 50_000
OUTCOME_TIME_COLUMNS = ("at", "timestamp", "time", "date", "closed_at", "won_date", "won_at")
OUTCOME_ID_COLUMNS = ("lead_id", "leadid", "lead", "id", "user_id", "userid", "contact_id")


@dataclass(frozen=True)
class History:
    """What a backtest reads: the events' table, attributes per lead, and figures."""

    events: EventTable
    attributes: dict[str, dict[str, Any]]
    leads: int
    rows: int
    first_us: int
    last_us: int
    per_lead: str = "pyro_bt_ids"
    """A table of each lead's events (``n``), first and last time (``first_us``,
    ``last_us``), ids as in ``events``."""
    proven: Playbook | None = None
    """The playbook whose cap proof over each lead's events the table's ``redo`` holds
    (``None``: none does)."""


def open_history(
    con: duckdb.DuckDBPyConnection,
    playbook: Playbook,
    events: Path,
    leads: Path | None,
    id_column: str | None = None,
    encoding: str | None = None,
) -> History:
    """Open EVENTS (and LEADS) as ``pyrometer score`` does; attributes are read whole."""
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer
    from pyrometer.io.readers import open_events, open_leads
    from pyrometer.io.segment import with_traits

    table = open_events(con, events, lead_id_column=id_column, encoding=encoding)
    scorer = DuckDBBatchScorer(playbook, con)
    table = scorer.distinct(table)
    # Per lead as spelled, in one scan; ids are normalised on every row only when one of
    # them is not in normal form (as `score` checks its scored leads).
    names = con.execute(f"SELECT DISTINCT event FROM {table.sql}").fetchall()
    proven: Playbook | None = None
    if all(name is not None for (name,) in names):
        # Pass 1 of a score (every row joins its name), with the playbook's cap proof,
        # which backtests of this playbook then need not make again
        # (pyrometer.engines.duckdb_backtest), and each lead's first time.
        select = (
            "SELECT lead_id, redo, events AS n, first_us, last_us, invalid FROM "
            f"({scorer.proven_leads_sql(table, {'first_us': 'min(ts_us)'})})"
        )
        proven = playbook
    else:
        select = (
            "SELECT lead_id, NULL AS redo, count(*) AS n, min(ts_us) AS first_us, "
            "max(ts_us) AS last_us, count(ts_us) < count(*) AS invalid "
            f"FROM {table.sql} GROUP BY lead_id"
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_bt_ids AS {select}")
    _check(con, table, events, [name for (name,) in names])
    if table.normal_lead_id is not None:
        normal = table.normal_lead_id("lead_id")
        row = con.execute(
            f"SELECT count(*) FROM pyro_bt_ids WHERE lead_id IS DISTINCT FROM {normal}"
        ).fetchone()
        if row and row[0]:
            con.execute(
                "CREATE OR REPLACE TEMP VIEW pyro_bt_events AS "
                f"SELECT * REPLACE ({normal} AS lead_id) FROM {table.sql}"
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_bt_ids AS SELECT lead_id, sum(n) AS n, "
                "min(first_us) AS first_us, max(last_us) AS last_us FROM (SELECT "
                f"{normal} AS lead_id, n, first_us, last_us FROM pyro_bt_ids) GROUP BY lead_id"
            )
            proven = None  # leads merged: their proofs are not
            table = replace(table, sql="pyro_bt_events")
        table = replace(table, normal_lead_id=None)
    lead_table = (
        open_leads(con, leads, lead_id_column=id_column, encoding=encoding) if leads else None
    )
    lead_table = with_traits(con, lead_table, table.traits)
    attributes: dict[str, dict[str, Any]] = {}
    if lead_table is not None:
        names = list(lead_table.attributes)
        select = ", ".join(["lead_id", *(lead_table.attributes[n] for n in names)])
        for row in con.execute(f"SELECT {select} FROM {lead_table.sql}").fetchall():
            attributes[str(row[0])] = {
                n: v for n, v in zip(names, row[1:], strict=True) if v is not None
            }
    found = con.execute(
        "SELECT count(*), sum(n), min(first_us), max(last_us) FROM pyro_bt_ids"
    ).fetchone()
    assert found is not None
    n_leads, rows, first, last = found
    if not rows:
        raise InputError(events, "no events")
    return History(table, attributes, int(n_leads), int(rows), int(first), int(last), proven=proven)


def _check(
    con: duckdb.DuckDBPyConnection, table: EventTable, path: Path, names: list[str | None]
) -> None:
    """Whether every row has a lead, an event name and a time, read from the leads' counts
    and the table's event ``names`` (no scan of its own); if not, the first bad row is
    named, as ``pyrometer score`` names it."""
    ids = "lead_id" if table.normal_lead_id is None else table.normal_lead_id("lead_id")
    found = con.execute(
        f"SELECT count(*) FILTER (WHERE {ids} IS NULL OR {ids} = '' OR invalid) FROM pyro_bt_ids"
    ).fetchall()
    if not found[0][0] and all(name is not None and normalize_name(name) for name in names):
        return
    if table.diagnose is not None:
        table.diagnose()  # raises, naming the first bad row
    raise InputError(path, "events lack a lead id, an event name or a time")


def iter_leads(
    con: duckdb.DuckDBPyConnection, history: History
) -> Iterator[tuple[str, list[Event]]]:
    """Each lead's events in time order, leads in id order, one lead in memory at a time."""
    table = history.events
    props = list(table.properties)
    select = ", ".join(
        ["lead_id", "event", "ts_us", "event_id", *(table.properties[p] for p in props)]
    )
    cursor = con.execute(f"SELECT {select} FROM {table.sql} ORDER BY lead_id, ts_us, event_id")
    names: dict[str, str] = {}
    current: str | None = None
    batch: list[Event] = []
    while rows := cursor.fetchmany(FETCH_ROWS):
        for row in rows:
            lead_id = str(row[0])
            if lead_id != current:
                if batch:
                    yield current or "", batch
                current, batch = lead_id, []
            raw = str(row[1])
            name = names.get(raw)
            if name is None:
                name = names[raw] = normalize_name(raw)
            properties = {p: v for p, v in zip(props, row[4:], strict=True) if v is not None}
            batch.append(Event(lead_id, name, int(row[2]), str(row[3]), properties))
    if batch:
        yield current or "", batch


def outcomes_from_events(playbook: Playbook, events: list[Event]) -> list[Outcome]:
    """The wins and losses a lead's own events record (purchase, won, lost...)."""
    out = []
    for event in events:
        kind = outcome_of_event(playbook, event.name)
        if kind is not None:
            out.append(Outcome(event.lead_id, kind, event.ts_us))
    return out


def read_outcomes(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    id_column: str | None = None,
    encoding: str | None = None,
) -> list[Outcome]:
    """OUTCOMES: a lead id, a time (``at``, ``timestamp``, ``won_date``...) and an optional
    ``outcome`` (won/lost words; without the column every row is a win). Rows without a
    time are skipped; a word that is neither won nor lost is an error naming its row."""
    source = register(con, path, "pyro_outcomes_raw", encoding)
    columns = source.columns
    lead_col = (
        id_column
        if id_column is not None and id_column in columns
        else _find(columns, OUTCOME_ID_COLUMNS)
    )
    if lead_col is None:
        raise InputError(path, "no lead id column (lead_id, or name it with --id)")
    time_col = _find(columns, OUTCOME_TIME_COLUMNS)
    if time_col is None:
        raise InputError(path, f"no time column (one of {', '.join(OUTCOME_TIME_COLUMNS)})")
    outcome_col = _find(columns, ("outcome", "status", "result", "converted"))
    ts_sql = _timestamp_sql(quote_ident(time_col), source.type_of(time_col))
    word_sql = f"CAST({quote_ident(outcome_col)} AS VARCHAR)" if outcome_col else "'won'"
    try:
        rows = con.execute(
            f"SELECT {source.row_number_sql}, CAST({quote_ident(lead_col)} AS VARCHAR), "
            f"{word_sql}, {ts_sql} FROM {quote_ident(source.view)}"
        ).fetchall()
    except Exception as exc:  # a time DuckDB cannot read
        raise InputError(
            path, f"cannot read times: {str(exc).splitlines()[0]}", column=time_col
        ) from None
    out = []
    for row_number, lead, word, ts in rows:
        if lead is None or ts is None or not lead.strip(WHITESPACE):
            continue
        kind = outcome_word(word)
        if kind is None:
            raise InputError(
                path, f"{word!r} is neither won nor lost", row=int(row_number), column=outcome_col
            )
        out.append(Outcome(normalize_lead_id(lead), kind, check_us(int(ts))))
    return out
