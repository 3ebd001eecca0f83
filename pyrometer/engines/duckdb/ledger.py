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


def corrections_sql(joined: str | None, limits: Mapping[int, Limit]) -> str:
    """What the events of ``joined`` (:func:`pass2.joined_sql`) earn beyond their uncapped
    points (pass 1's, which leave ``once`` rules out): rows (``lead_id``, ``ts_us``,
    ``points``). A ``once`` rule's events get their rank's points; a capped rule's events
    get their rank's points less the uncapped ones. ``joined`` holds only the rows this
    is needed for: the ``once`` rules' events, and the capped rules' events of the leads
    the cap proof does not clear (``None``: no rows)."""
    ranked = {i: limit for i, limit in limits.items() if limit.points}
    if not ranked or joined is None:
        return "SELECT NULL AS lead_id, CAST(NULL AS BIGINT) AS ts_us, 0.0 AS points WHERE FALSE"
    given = " ".join(
        f"WHEN {i} THEN {given_sql(limit, 'rnk')}" + ("" if limit.once else " - p")
        for i, limit in ranked.items()
    )
    return f"""
            SELECT lead_id, ts_us, points
            FROM (SELECT lead_id, ts_us, CASE rule_id {given} END AS points
                  FROM (SELECT lead_id, ts_us, rule_id, p, row_number() OVER (
                                   PARTITION BY lead_id, rule_id, win
                                   ORDER BY ts_us, event_id) - 1 AS rnk
                        FROM ({joined})
                        WHERE matched AND rule_id IN ({", ".join(map(str, ranked))})))
            WHERE points <> 0
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
