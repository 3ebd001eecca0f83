"""The ``identify`` and ``alias`` calls in a file of Segment messages, as the service reads them.

:func:`read_identities` reads the calls of a registered Segment file in file order and
stitches them (:func:`pyrometer.core.stitching.stitch`): which anonymous visitors are
which lead, and the traits each lead's calls give. The events reader moves a visitor's
events to its lead with the links (one small table, joined only when there are links);
``score`` and ``explain`` take the traits as lead attributes (:func:`with_traits`); the
importer sends the same calls to the service, so the three agree.

A file's traits cannot tell a trait sent as ``null`` from one not sent (DuckDB reads the
messages as one struct type): both leave the lead's value as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from pyrometer.core.stitching import IdentityCall, Stitching, stitch
from pyrometer.engines.duckdb_batch import LeadTable
from pyrometer.engines.sql_conditions import quote_ident, quote_literal
from pyrometer.io.lead_ids import lead_id_sql

__all__ = ["LINKS_TABLE", "linked_messages_sql", "read_identities", "with_traits"]

LINKS_TABLE = "pyro_links"  # the events file's links (prefix pyro_)


def _column(columns: tuple[str, ...], name: str) -> str:
    return f"CAST({quote_ident(name)} AS VARCHAR)" if name in columns else "NULL"


def _id_column(columns: tuple[str, ...], name: str) -> str:
    """A lead or visitor id column in its normal form (NULL when absent or blank)."""
    return f"nullif({lead_id_sql(_column(columns, name))}, '')" if name in columns else "NULL"


def read_identities(
    con: duckdb.DuckDBPyConnection,
    view: str,
    columns: tuple[str, ...],
    row_number_sql: str,
    ts_sql: str,
    traits: Sequence[tuple[str, str]],
    prefix: str = "pyro_",
) -> tuple[Stitching, LeadTable | None] | None:
    """The calls of the Segment messages in ``view`` (``None``: there are none).

    Registers ``{prefix}links`` (``pyro_anon``, ``pyro_lead``) when calls link visitors,
    and ``{prefix}traits`` when they give traits (returned as a lead table, else ``None``);
    a LEADS file read beside the events takes another prefix. ``ts_sql`` reads a
    message's time; ``traits`` gives each attribute's normalised name and the SQL that
    reads it from a message (the first of a name counts).
    """
    if "type" not in columns:
        return None
    raw = quote_ident(view)
    readers = dict(reversed(traits))  # normalised name -> SQL, the first of a name
    names = list(readers)
    packed = ", ".join(
        f"{quote_ident('t' + str(i))} := {readers[name]}" for i, name in enumerate(names)
    )
    trait_sql = f"struct_pack({packed})" if names else "NULL"
    rows = con.execute(f"""
        SELECT rn, "type", uid, aid, pid, mid, ts, tr FROM (
            SELECT {row_number_sql} AS rn, "type", {_id_column(columns, "userId")} AS uid,
                   {_id_column(columns, "anonymousId")} AS aid,
                   {_id_column(columns, "previousId")} AS pid,
                   {_column(columns, "messageId")} AS mid, {ts_sql} AS ts, {trait_sql} AS tr
            FROM {raw})
        WHERE "type" IN ('identify', 'alias')
        ORDER BY rn
    """).fetchall()
    if not rows:
        return None
    calls: list[IdentityCall] = []
    seen: set[str] = set()
    for rn, kind, uid, aid, pid, mid, ts, tr in rows:
        if mid is not None:
            if mid in seen:  # a resent call is one call, the first (as events are)
                continue
            seen.add(mid)
        given = {names[i]: v for i, v in enumerate((tr or {}).values()) if v is not None}
        when = None if ts is None else int(ts)
        if kind == "alias" and uid is not None and pid is not None:
            calls.append(IdentityCall(int(rn), uid, pid, message_id=mid, ts_us=when))
        elif kind == "identify" and (uid is not None or aid is not None):
            lead, visitor = (uid, aid) if uid is not None else (aid, None)
            calls.append(
                IdentityCall(
                    int(rn), lead, visitor, uid is not None, given, message_id=mid, ts_us=when
                )
            )
    visitors = sorted({c.visitor for c in calls if c.visitor is not None})
    first_named = _first_named(con, raw, columns, row_number_sql, visitors, prefix)
    stitching = stitch(calls, first_named)
    if stitching.links:
        _table(
            con,
            f"{prefix}links",
            {"pyro_anon": list(stitching.links), "pyro_lead": list(stitching.links.values())},
        )
    return stitching, _traits_table(con, raw, row_number_sql, readers, stitching, prefix)


def linked_messages_sql(raw: str, row_number_sql: str) -> str:
    """The messages of ``raw`` with a visitor's lead as the ``userId`` of its messages that
    have none (:data:`LINKS_TABLE` joined), each numbered ``pyro_rn`` in file order."""
    visitor = lead_id_sql('CAST(r."anonymousId" AS VARCHAR)')
    return (
        '(SELECT r.* REPLACE (coalesce(CAST(r."userId" AS VARCHAR), l.pyro_lead) AS "userId") '
        f"FROM (SELECT *, {row_number_sql} AS pyro_rn FROM {raw}) r "
        f"LEFT JOIN {LINKS_TABLE} l ON {visitor} = l.pyro_anon)"
    )


def _table(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, list[Any]]) -> None:
    """A temp table from Python lists, in one statement (one ``INSERT`` per row costs about
    a millisecond each in DuckDB: a minute for a file of 20,000 people)."""
    values = list(columns.values())
    select = ", ".join(f"unnest(${i + 1}) AS {quote_ident(c)}" for i, c in enumerate(columns))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}", values)


def _first_named(
    con: duckdb.DuckDBPyConnection,
    raw: str,
    columns: tuple[str, ...],
    row_number_sql: str,
    ids: list[str],
    prefix: str,
) -> dict[str, int]:
    """The first row where each of ``ids`` is a message's ``userId``."""
    if not ids or "userId" not in columns:
        return {}
    visitors = f"{prefix}visitors"
    _table(con, visitors, {"id": ids})
    found = con.execute(f"""
        SELECT uid, min(rn) FROM (
            SELECT {_id_column(columns, "userId")} AS uid, {row_number_sql} AS rn FROM {raw})
        WHERE uid IN (SELECT id FROM {visitors})
        GROUP BY uid
    """).fetchall()
    return {str(uid): int(rn) for uid, rn in found}


def _traits_table(
    con: duckdb.DuckDBPyConnection,
    raw: str,
    row_number_sql: str,
    readers: Mapping[str, str],
    stitching: Stitching,
    prefix: str,
) -> LeadTable | None:
    """Each lead's merged traits as a view, each value read from the call that gave it
    (so it keeps the file's type, as a LEADS file of identify calls does)."""
    if not stitching.traits:
        return None
    winners = _winning_rows(stitching)
    rows = [
        (lead, name, row)
        for lead, given in winners.items()
        for name, row in given.items()
        if name in readers
    ]
    if not rows:
        return None
    winning, view = f"{prefix}trait_rows", f"{prefix}traits"
    _table(
        con,
        winning,
        {
            "lead_id": [lead for lead, _, _ in rows],
            "name": [name for _, name, _ in rows],
            "rn": [row for _, _, row in rows],
        },
    )
    picks = ", ".join(
        f"any_value({sql}) FILTER (WHERE w.name = {quote_literal(name)}) "
        f"AS {quote_ident('a_' + name)}"
        for name, sql in readers.items()
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {view} AS
        SELECT w.lead_id, {picks}
        FROM {winning} w
             JOIN (SELECT *, {row_number_sql} AS pyro_rn FROM {raw}) r ON r.pyro_rn = w.rn
        GROUP BY w.lead_id
    """)
    return LeadTable(view, {name: quote_ident("a_" + name) for name in readers})


def _winning_rows(stitching: Stitching) -> dict[str, dict[str, int]]:
    """Per lead and trait, the row of the call whose value it has: the fold of
    :func:`stitch` again, with rows for values."""
    rows = [
        IdentityCall(
            c.row, c.lead_id, c.visitor if linked else None, c.named, {k: c.row for k in c.traits}
        )
        for c, linked in zip(stitching.calls, stitching.linked, strict=True)
    ]
    # With the links already decided, only the accepted ones are given again: stitch then
    # folds the same traits the same way, with each value replaced by its row.
    again = stitch(rows, {})
    return {lead: dict(given) for lead, given in again.traits.items() if lead in stitching.traits}


def with_traits(
    con: duckdb.DuckDBPyConnection, leads: LeadTable | None, traits: LeadTable | None
) -> LeadTable | None:
    """LEADS and the events file's traits as one lead table: a value in LEADS wins, a trait
    fills in what LEADS leaves empty (or leads LEADS does not list)."""
    if traits is None:
        return leads
    if leads is None:
        return traits
    names = list(dict.fromkeys([*leads.attributes, *traits.attributes]))

    def value(name: str) -> str:
        parts = [
            f"{alias}.{table.attributes[name]}"
            for alias, table in (("l", leads), ("t", traits))
            if name in table.attributes
        ]
        if len(parts) == 1:
            return parts[0]
        return f"coalesce({', '.join(f'CAST({p} AS VARCHAR)' for p in parts)})"

    select = ", ".join(
        ["coalesce(l.lead_id, t.lead_id) AS lead_id"]
        + [f"{value(name)} AS {quote_ident('m_' + name)}" for name in names]
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW pyro_leads_merged AS
        SELECT {select} FROM {leads.sql} l FULL OUTER JOIN {traits.sql} t ON l.lead_id = t.lead_id
    """)
    return LeadTable("pyro_leads_merged", {name: quote_ident("m_" + name) for name in names})
