"""``explain`` on DuckDB: every (event, rule) a lead earned, and the fit rules it met.

Scores come from the same passes as ``score``; the ledger is computed apart, exactly and
without the cap proof (a few leads' events), so that its lines add up to the score.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import duckdb

from pyrometer.core.conditions import normalize_name
from pyrometer.core.model import EngagementLine
from pyrometer.core.playbook import Decay, Playbook
from pyrometer.engines import plan
from pyrometer.engines.duckdb.sql import (
    all_fields_sql,
    factor_sql,
    given_sql,
    number_literal,
    quote_ident,
    step_sql,
)
from pyrometer.engines.duckdb.tables import LeadTable
from pyrometer.engines.plan.rules import Limit


def ledger_sql(
    joined: str, decay: Decay, as_of_us: int, points: list[float], limits: Mapping[int, Limit]
) -> str:
    """``explain``'s ledger: every matched (event, rule), ranked in its cap window, with
    the points it gets and their value at ``as_of_us``."""
    given = " ".join(
        f"WHEN {i} THEN "
        + (given_sql(limits[i], "rnk") if i in limits else number_literal(rule_points))
        for i, rule_points in enumerate(points)
    )
    factor = factor_sql(decay, step_sql(decay, "ts_us"), as_of_us)
    return f"""
                SELECT lead_id, rule_id, CAST(event_id AS VARCHAR), event, ts_us, given,
                       given * {factor} AS value
                FROM (SELECT *, CASE rule_id {given} END AS given
                      FROM (SELECT *, row_number() OVER (PARTITION BY lead_id, rule_id, win
                                       ORDER BY ts_us, event_id) - 1 AS rnk
                            FROM ({joined}) WHERE matched))
                ORDER BY lead_id, ts_us, event_id, rule_id
            """


def earned_sql(joined: str, limits: Mapping[int, Limit], full: Mapping[int, int]) -> str:
    """Every point the events of ``joined`` (:func:`pass2.joined_sql`) earn, after caps
    and ``once`` windows, undecayed: rows (``lead_id``, ``ts_us``, ``points``) whose points
    at each time add up to what the events then earned. As passes 1 and 2b: every matching
    event's points as if nothing were capped, plus, only in the windows with more events
    than ``full`` (per rule, the events that earn its whole points), each event's rank's
    points less those. Windows are found by a hash of (lead, rule, window): a collision
    only ranks a window more (its correction is then 0); the count is over both windows'
    events and the threshold the lower of the two rules', so no window is missed."""
    rows = f"SELECT lead_id, ts_us, event_id, rule_id, p, win FROM ({joined}) WHERE matched"
    ranked = {i: limit for i, limit in limits.items() if limit.points}
    if not ranked:
        return f"SELECT lead_id, ts_us, p AS points FROM ({rows})"
    ids = ", ".join(map(str, ranked))
    slots = " ".join(f"WHEN {i} THEN {full[i]}" for i in ranked)
    given = " ".join(f"WHEN {i} THEN {given_sql(limit, 'rnk')}" for i, limit in ranked.items())
    return f"""
            WITH pyro_earn AS MATERIALIZED (
                SELECT *, hash(lead_id, rule_id, win) AS wk FROM ({rows}))
            SELECT lead_id, ts_us, p AS points FROM pyro_earn
            UNION ALL
            SELECT lead_id, ts_us, CASE rule_id {given} END - p AS points
            FROM (SELECT e.lead_id, e.ts_us, e.rule_id, e.p, row_number() OVER (
                             PARTITION BY e.lead_id, e.rule_id, e.win
                             ORDER BY e.ts_us, e.event_id) - 1 AS rnk
                  FROM pyro_earn e SEMI JOIN (
                      SELECT wk FROM pyro_earn WHERE rule_id IN ({ids}) GROUP BY wk
                      HAVING count(*) > min(CASE rule_id {slots} END)) x
                  ON e.wk = x.wk
                  WHERE e.rule_id IN ({ids}))
        """


def engagement_lines(
    con: duckdb.DuckDBPyConnection, playbook: Playbook, joined: str, as_of_us: int
) -> dict[str, list[EngagementLine]]:
    """Per lead, its ledger lines in time order (``joined``: :func:`pass2.joined_sql`)."""
    rules = playbook.engagement
    rows = con.execute(
        ledger_sql(
            joined,
            playbook.decay,
            as_of_us,
            [rule.points for rule in rules],
            plan.limits(playbook),
        )
    ).fetchall()
    lines: dict[str, list[EngagementLine]] = defaultdict(list)
    for lead, rule_id, event_id, event, ts_us, points, value in rows:
        lines[lead].append(
            EngagementLine(
                rules[rule_id].name, event_id, normalize_name(event), ts_us, points, value
            )
        )
    return lines


def fit_rules_matched(
    con: duckdb.DuckDBPyConnection,
    playbook: Playbook,
    leads: LeadTable,
    attributes: Mapping[str, str],
    wanted: str,
) -> dict[str, set[str]]:
    """Per lead among ``wanted`` (SQL literals), the names of the fit rules it meets."""
    fit = plan.fit_plan(playbook, attributes)
    cols = ", ".join(
        f"{all_fields_sql(term.where, attributes)} AS {quote_ident('r' + str(i))}"
        for i, term in enumerate(fit.terms)
    )
    if not cols:
        return {}
    rows = con.sql(f"SELECT lead_id, {cols} FROM {leads.sql} WHERE lead_id IN ({wanted})")
    return {
        row[0]: {fit.terms[i].name for i, hit in enumerate(row[1:]) if hit}
        for row in rows.fetchall()
    }
