"""Pass 2 and ledgers on DuckDB: the few events and leads pass 1 cannot settle.

* **Candidates** (``pyro_rules``): one row per (raw event name, rule that may match it),
  for the sample that weights the cap proof, the exact windows and ``explain``'s ledgers
  (:mod:`pyrometer.engines.duckdb.ledger`).
* **Pass 2a**, over the few events that move a lifecycle stage, suppress a lead or earn a
  ``once`` rule.
* **Pass 2b**, only for the leads the cap proof does not clear: per cap window, the
  earliest events that can earn points (``min(x, n)``) get their rank's points. Nothing
  is sorted.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from pyrometer.core.playbook import Decay
from pyrometer.engines.duckdb.sql import (
    all_fields_sql,
    factor_sql,
    given_sql,
    match_sql,
    number_literal,
    quote_literal,
    step_sql,
)
from pyrometer.engines.plan.rules import Candidates, Limit, OnceRule

RULES_DDL = (
    "CREATE OR REPLACE TEMP TABLE pyro_rules (raw_event VARCHAR, rule_id INTEGER, "
    "cond_id INTEGER, cand INTEGER, points DOUBLE, win_us BIGINT, stage VARCHAR, "
    "suppress BOOLEAN, bad BOOLEAN)"
)


def load_candidates(
    con: duckdb.DuckDBPyConnection, plan: Candidates, properties: Mapping[str, str]
) -> str:
    """Register ``pyro_rules`` (see :class:`~pyrometer.engines.plan.rules.Candidate`) and
    return the SQL of whether a row's rule conditions hold (alias ``r``). The join on the
    name is a plain equality; the conditions are a column, by ``cond_id``."""
    rows = [
        (
            c.raw,
            c.rule_id,
            c.cond_id,
            c.cand,
            c.points,
            c.window_us,
            c.meaning.stage,
            c.meaning.suppress,
            c.meaning.bad,
        )
        for c in plan.rows
    ]
    con.execute(RULES_DDL)
    if rows:
        con.executemany("INSERT INTO pyro_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    if len(plan.conditions) == 1:
        return "(r.rule_id IS NOT NULL)"
    cases = " ".join(
        f"WHEN {i} THEN {match_sql(match, properties)}"
        for i, match in enumerate(plan.conditions)
        if i
    )
    return f"(r.rule_id IS NOT NULL AND CASE r.cond_id WHEN 0 THEN TRUE {cases} END)"


def sample_sql(events_sql: str, match: str, rows: int) -> str:
    """Matches per rule among the table's first ``rows`` rows (``match``: what
    :func:`load_candidates` returned)."""
    return f"""
            SELECT r.rule_id, count(*)
            FROM (SELECT * FROM {events_sql} LIMIT {rows}) e
                 JOIN pyro_rules r ON e.event = r.raw_event
            WHERE {match}
            GROUP BY r.rule_id
        """


def joined_sql(events_sql: str, as_of_us: int, match: str, lead_filter: str = "") -> str:
    """Events joined to their candidate rules (``pyro_rules``; ``match`` is what
    :func:`load_candidates` returned): one row per (event, candidate rule), or one row with
    a NULL rule for an event no rule names. ``matched`` says whether the rule's conditions
    hold."""
    return f"""
            SELECT e.lead_id, e.event, e.ts_us, e.event_id, r.rule_id, r.points AS p,
                   coalesce(pyro_fdiv(e.ts_us, r.win_us), 0) AS win,
                   coalesce({match}, FALSE) AS matched
            FROM {events_sql} e LEFT JOIN pyro_rules r ON e.event = r.raw_event
            WHERE e.ts_us <= {as_of_us} {lead_filter}
        """


def rare_sql(
    events_sql: str,
    properties: Mapping[str, str],
    decay: Decay,
    as_of_us: int,
    once: tuple[OnceRule, ...],
) -> str:
    """Pass 2a, over the few events that move a stage, suppress or earn a ``once`` rule:
    per lead, the latest lifecycle event (ties broken by event id), whether any
    suppresses, and each ``once`` rule's points from its first event."""
    firsts: list[str] = []
    points: list[str] = []
    for rule in once:
        matches = [
            f"(e.event IN ({', '.join(quote_literal(r) for r in raws)}) "
            f"AND {all_fields_sql(where, properties)})"
            for raws, where in rule.alternatives
        ]
        i = rule.rule_id
        firsts.append(f", min(e.ts_us) FILTER (WHERE {' OR '.join(matches)}) AS o{i}")
        factor = factor_sql(decay, step_sql(decay, f"o{i}"), as_of_us)
        points.append(f" + coalesce({number_literal(rule.points)} * {factor}, 0.0)")
    return f"""
            SELECT lead_id, lifecycle, suppressed, 0.0 {"".join(points)} AS once_points
            FROM (
                SELECT e.lead_id,
                       max(struct_pack(t := e.ts_us, i := e.event_id, s := n.stage))
                           FILTER (WHERE n.stage IS NOT NULL) AS lifecycle,
                       bool_or(n.suppress) AS suppressed {"".join(firsts)}
                FROM {events_sql} e
                     JOIN (SELECT DISTINCT raw_event, stage, suppress FROM pyro_names WHERE rare) n
                     ON e.event = n.raw_event
                WHERE e.ts_us <= {as_of_us}
                GROUP BY e.lead_id
            )
        """


def exact_windows_sql(joined: str, decay: Decay, as_of_us: int, limits: Mapping[int, Limit]) -> str:
    """Pass 2b, only for the leads in ``pyro_redo``: per window of each capped rule, the
    earliest events that can earn points (``min(x, n)``) get their rank's points; the
    result replaces the uncapped sum pass 1 counted for them."""
    capped = [limit for limit in limits.values() if not limit.once]
    slots = max(limit.slots for limit in capped)
    factor = factor_sql(decay, step_sql(decay, "x.t"), as_of_us)
    exact = " ".join(
        f"WHEN {limit.rule_id} THEN list_sum(list_transform(firsts, lambda x, i: "
        f"{given_sql(limit, 'i - 1')} * {factor}))"
        for limit in capped
    )
    row_factor = factor_sql(decay, step_sql(decay, "j.ts_us"), as_of_us)
    ids = ", ".join(str(limit.rule_id) for limit in capped)
    return f"""
            SELECT lead_id, sum(CASE rule_id {exact} END - uncapped) AS correction
            FROM (
                SELECT j.lead_id, j.rule_id, j.win,
                       min(struct_pack(t := j.ts_us, i := j.event_id), {slots}) AS firsts,
                       sum(j.p * {row_factor}) AS uncapped
                FROM ({joined}) j
                WHERE j.matched AND j.rule_id IN ({ids})
                GROUP BY j.lead_id, j.rule_id, j.win
            )
            GROUP BY lead_id
        """
