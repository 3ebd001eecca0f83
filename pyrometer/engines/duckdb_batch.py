"""Batch scoring on DuckDB: a whole event table, as of one time, in vectorised SQL.

The playbook is compiled to SQL with the meaning :mod:`pyrometer.core.reference` defines.
Two passes over the events:

* **engagement**: events join a small table of (raw event name, rule) pairs, property
  conditions filter the matches, and a hash aggregate per (lead, rule, cap window) keeps
  the decayed sum for unlimited rules and, for capped and ``once`` rules, only the
  ``slots`` earliest events of each window (``min(x, n)``). Nothing is sorted.
* **activity**: per lead, the number of events, the latest one, the latest lifecycle event
  and whether a suppression event came.

The inputs are DuckDB relations with canonical columns (see :class:`EventTable`), made by
:mod:`pyrometer.io.readers` from CSV, Parquet or JSON Lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import duckdb

from pyrometer.core.classify import CLASSIFY_DECIMALS
from pyrometer.core.conditions import normalize_name
from pyrometer.core.fit import fit_lines, suppressed_by_attributes
from pyrometer.core.model import EngagementLine, FitLine, ScoredLead
from pyrometer.core.playbook import Metric, Playbook, Stage, Temperature
from pyrometer.core.timeutil import to_us
from pyrometer.engines.sql_conditions import (
    condition_sql,
    number_literal,
    quote_ident,
    quote_literal,
    where_sql,
)


@dataclass(frozen=True)
class EventTable:
    """Events as SQL: ``lead_id``, ``event`` (raw name), ``ts_us`` (BIGINT), ``event_id``.

    ``properties`` maps normalised property names to the SQL that reads each one.
    """

    sql: str
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadTable:
    """Leads as SQL: ``lead_id`` plus attribute columns (normalised name → SQL)."""

    sql: str
    attributes: Mapping[str, str] = field(default_factory=dict)


OUTPUT_COLUMNS = (
    "lead_id", "score", "fit", "engagement", "temperature", "stage", "funnel",
    "suppressed", "last_activity", "events",
)


class DuckDBBatchScorer:
    """Scores tables of events and leads with one playbook on one DuckDB connection."""

    def __init__(self, playbook: Playbook, con: duckdb.DuckDBPyConnection | None = None):
        self.playbook = playbook
        self.con = con if con is not None else duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO pyro_fdiv(a, b) AS "
            "CASE WHEN a >= 0 THEN a // b ELSE -((-a - 1) // b) - 1 END"
        )

    # -- compiled pieces -------------------------------------------------------------

    def _rule_rows(self, events: EventTable) -> tuple[list[tuple], dict[int, str]]:
        """(rule id, raw event name, match id) rows for the names that occur in ``events``.

        Raw names are read once (``SELECT DISTINCT``) and normalised here, so
        ``"Demo Request"`` in a file meets ``demo_request`` in the playbook without
        normalising every row in SQL.
        """
        raw_names = [row[0] for row in self.con.sql(
            f"SELECT DISTINCT event FROM {events.sql} WHERE event IS NOT NULL").fetchall()]
        by_normal: dict[str, list[str]] = defaultdict(list)
        for raw in raw_names:
            by_normal[normalize_name(str(raw))].append(str(raw))
        rows: list[tuple] = []
        conditions: dict[int, str] = {}
        missing = self.playbook.missing_values
        for rule_id, rule in enumerate(self.playbook.engagement):
            wheres: dict[str, list[str]] = defaultdict(list)
            for alt in rule.alternatives:
                wheres[alt.event].append(where_sql(alt.where, events.properties, missing))
            for name, clauses in wheres.items():
                match_sql = "TRUE" if "TRUE" in clauses else " OR ".join(clauses)
                match_id = 0
                if match_sql != "TRUE":
                    match_id = len(conditions) + 1
                    conditions[match_id] = match_sql
                rows += [(rule_id, raw, match_id) for raw in by_normal.get(name, [])]
        return rows, conditions

    def _load_rules(self, events: EventTable) -> str:
        """Register the rule table; returns the SQL that filters matches by condition."""
        rows, conditions = self._rule_rows(events)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_rules (rule_id INTEGER, raw_event VARCHAR, "
            "match_id INTEGER, points DOUBLE, limited BOOLEAN, cap DOUBLE, window_us BIGINT)"
        )
        rules = self.playbook.engagement
        if rows:
            self.con.executemany(
                "INSERT INTO pyro_rules VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(rid, raw, mid, rules[rid].points, rules[rid].limited,
                  rules[rid].cap_points if rules[rid].limited else None, rules[rid].window_us)
                 for rid, raw, mid in rows],
            )
        if not conditions:
            return "TRUE"
        cases = " ".join(f"WHEN {mid} THEN {sql}" for mid, sql in conditions.items())
        return f"(CASE r.match_id WHEN 0 THEN TRUE {cases} ELSE FALSE END)"

    def _decay_sql(self, ts_expr: str, as_of_us: int) -> str:
        decay = self.playbook.decay
        now_step = decay.step_of(as_of_us)
        return (f"pow(2.0, -({now_step} - pyro_fdiv({ts_expr}, {decay.step_us})) / "
                f"{number_literal(decay.half_life_steps)})")

    def _matches_sql(self, events: EventTable, as_of_us: int, lead_filter: str = "") -> str:
        match_filter = self._load_rules(events)
        return f"""
            SELECT e.lead_id, e.ts_us, e.event_id, e.event, r.rule_id, r.points, r.limited,
                   r.cap, CASE WHEN r.window_us IS NULL THEN 0
                          ELSE pyro_fdiv(e.ts_us, r.window_us) END AS win
            FROM {events.sql} e JOIN pyro_rules r ON e.event = r.raw_event
            WHERE e.ts_us <= {as_of_us} AND {match_filter} {lead_filter}
        """

    def _given_sql(self, rank_expr: str) -> str:
        """Points the event at ``rank_expr`` (0-based) of a capped window gets."""
        return (f"sign(points) * greatest(0.0, least(abs(points), cap - ({rank_expr}) * "
                f"abs(points)))")

    def _engagement_sql(self, events: EventTable, as_of_us: int) -> str:
        slots = max((rule.slots for rule in self.playbook.engagement if rule.limited), default=1)
        factor = self._decay_sql("ts_us", as_of_us)
        first_factor = self._decay_sql("x.t", as_of_us)
        given = self._given_sql("i - 1")
        return f"""
            WITH m AS ({self._matches_sql(events, as_of_us)}),
            g AS (
                SELECT lead_id, rule_id, any_value(points) AS points, any_value(cap) AS cap,
                       bool_or(limited) AS limited, sum({factor}) AS sum_factor,
                       min(struct_pack(t := ts_us, i := event_id), {slots})
                           FILTER (WHERE limited) AS firsts
                FROM m GROUP BY lead_id, rule_id, win
            )
            SELECT lead_id, sum(CASE WHEN limited
                THEN list_sum(list_transform(firsts, lambda x, i: {given} * {first_factor}))
                ELSE points * sum_factor END) AS engagement
            FROM g GROUP BY lead_id
        """

    def _activity_sql(self, events: EventTable, as_of_us: int) -> str:
        lifecycle = self.playbook.lifecycle.events
        suppress = set(self.playbook.suppression.events)
        raw_names = [str(row[0]) for row in self.con.sql(
            f"SELECT DISTINCT event FROM {events.sql} WHERE event IS NOT NULL").fetchall()]
        stage_cases = " ".join(
            f"WHEN {quote_literal(raw)} THEN {quote_literal(str(lifecycle[normalize_name(raw)]))}"
            for raw in raw_names if normalize_name(raw) in lifecycle)
        stage_sql = f"CASE event {stage_cases} END" if stage_cases else "CAST(NULL AS VARCHAR)"
        suppress_raw = [raw for raw in raw_names if normalize_name(raw) in suppress]
        suppress_sql = (f"event IN ({', '.join(quote_literal(r) for r in suppress_raw)})"
                        if suppress_raw else "FALSE")
        return f"""
            SELECT lead_id, count(*) AS events, max(ts_us) AS last_us,
                   arg_max(stage, struct_pack(t := ts_us, i := event_id))
                       FILTER (WHERE stage IS NOT NULL) AS explicit_stage,
                   bool_or(suppress) AS suppressed_by_event
            FROM (SELECT lead_id, ts_us, event_id, {stage_sql} AS stage,
                         {suppress_sql} AS suppress
                  FROM {events.sql} WHERE ts_us <= {as_of_us})
            GROUP BY lead_id
        """

    def _fit_sql(self, leads: LeadTable) -> str:
        missing = self.playbook.missing_values
        terms = [f"CASE WHEN {where_sql(rule.where, leads.attributes, missing)} "
                 f"THEN {number_literal(rule.points)} ELSE 0.0 END" for rule in self.playbook.fit]
        supp = [where_sql(w, leads.attributes, missing) for w in self.playbook.suppression.attributes]
        return f"""
            SELECT lead_id, {' + '.join(terms) if terms else '0.0'} AS fit,
                   {' OR '.join(supp) if supp else 'FALSE'} AS suppressed_by_attr
            FROM {leads.sql}
        """

    def _classes_sql(self) -> tuple[str, str, str]:
        pb = self.playbook
        score = f"round(fit + engagement, {CLASSIFY_DECIMALS})"
        temperature = (f"CASE WHEN {score} >= {number_literal(pb.temperature.hot)} THEN "
                       f"'{Temperature.HOT}' WHEN {score} >= {number_literal(pb.temperature.warm)} "
                       f"THEN '{Temperature.WARM}' ELSE '{Temperature.COLD}' END")
        metrics = {Metric.SCORE: score, Metric.FIT: f"round(fit, {CLASSIFY_DECIMALS})",
                   Metric.ENGAGEMENT: f"round(engagement, {CLASSIFY_DECIMALS})"}
        mql = " AND ".join(condition_sql(cond, metrics[metric], pb.missing_values)
                           for metric, cond in pb.lifecycle.mql.items()) or "TRUE"
        stage = (f"CASE WHEN explicit_stage IS NOT NULL AND explicit_stage <> '{Stage.LEAD}' "
                 f"THEN explicit_stage WHEN {mql} THEN '{Stage.MQL}' ELSE '{Stage.LEAD}' END")
        funnel = ("CASE stage " + " ".join(
            f"WHEN '{stage_name}' THEN {quote_literal(name)}"
            for stage_name, name in pb.lifecycle.funnel.items()) + " END")
        return temperature, stage, funnel

    # -- public ----------------------------------------------------------------------

    def score_relation(
        self,
        events: EventTable | None,
        leads: LeadTable | None,
        as_of_us: int,
        progress: Callable[[str], None] | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """One row per lead (:data:`OUTPUT_COLUMNS`), as a lazy DuckDB relation.

        ``progress`` is told which stage runs, for a progress bar.
        """
        say = progress or (lambda _stage: None)
        if events is not None:
            say("Scoring engagement")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_eng AS "
                             f"{self._engagement_sql(events, as_of_us)}")
            say("Reading activity")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_act AS "
                             f"{self._activity_sql(events, as_of_us)}")
        if leads is not None:
            say("Scoring fit")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_fit AS {self._fit_sql(leads)}")
        say("Classifying")
        if events is None:
            self.con.execute("CREATE OR REPLACE TEMP TABLE pyro_eng (lead_id VARCHAR, "
                             "engagement DOUBLE)")
            self.con.execute("CREATE OR REPLACE TEMP TABLE pyro_act (lead_id VARCHAR, "
                             "events BIGINT, last_us BIGINT, explicit_stage VARCHAR, "
                             "suppressed_by_event BOOLEAN)")
        if leads is None:
            self.con.execute("CREATE OR REPLACE TEMP TABLE pyro_fit (lead_id VARCHAR, "
                             "fit DOUBLE, suppressed_by_attr BOOLEAN)")
        default_fit = self._default_fit()
        temperature, stage, funnel = self._classes_sql()
        # Leads without attributes get the fit an empty record gets (rules on `missing`).
        base = f"""
            SELECT coalesce(f.lead_id, a.lead_id) AS lead_id,
                   coalesce(f.fit, {number_literal(default_fit[0])}) AS fit,
                   coalesce(e.engagement, 0.0) AS engagement,
                   a.explicit_stage,
                   coalesce(f.suppressed_by_attr, {str(default_fit[1]).upper()})
                       OR coalesce(a.suppressed_by_event, FALSE) AS suppressed,
                   a.last_us, coalesce(a.events, 0) AS events
            FROM pyro_fit f FULL OUTER JOIN pyro_act a ON f.lead_id = a.lead_id
            LEFT JOIN pyro_eng e ON e.lead_id = coalesce(f.lead_id, a.lead_id)
        """
        return self.con.sql(f"""
            SELECT lead_id, fit + engagement AS score, fit, engagement, temperature, stage,
                   {funnel} AS funnel, suppressed,
                   make_timestamp(last_us) AS last_activity, events
            FROM (SELECT *, {temperature} AS temperature, {stage} AS stage FROM ({base}))
        """)

    def _default_fit(self) -> tuple[float, bool]:
        """Fit and suppression of a lead with no attributes (rules on ``missing`` match)."""
        return (sum(line.points for line in fit_lines(self.playbook, {})),
                suppressed_by_attributes(self.playbook, {}))

    def score(
        self, events: EventTable | None, leads: LeadTable | None, as_of_us: int
    ) -> dict[str, ScoredLead]:
        """Every lead scored, as Python objects (for tests and small tables)."""
        rows = self.score_relation(events, leads, as_of_us).fetchall()
        return {row[0]: _scored(row) for row in rows}

    def explain(
        self,
        events: EventTable | None,
        leads: LeadTable | None,
        as_of_us: int,
        lead_ids: Sequence[str],
    ) -> dict[str, ScoredLead]:
        """Scores of ``lead_ids`` with their full ledgers (every rule, every event)."""
        wanted = ", ".join(quote_literal(lead) for lead in lead_ids)
        lead_filter = f"AND e.lead_id IN ({wanted})" if lead_ids else "AND FALSE"
        scored = {
            lead: lead_score for lead, lead_score in self.score(
                _only(events, wanted), _only(leads, wanted), as_of_us).items()
        }
        lines: dict[str, list[EngagementLine]] = defaultdict(list)
        if events is not None:
            factor = self._decay_sql("ts_us", as_of_us)
            rows = self.con.sql(f"""
                SELECT lead_id, rule_id, CAST(event_id AS VARCHAR), event, ts_us, given,
                       given * {factor} AS value
                FROM (SELECT *, CASE WHEN limited THEN {self._given_sql('rnk')}
                                ELSE points END AS given
                      FROM (SELECT *, row_number() OVER (PARTITION BY lead_id, rule_id, win
                                       ORDER BY ts_us, event_id) - 1 AS rnk
                            FROM ({self._matches_sql(events, as_of_us, lead_filter)})))
                ORDER BY lead_id, ts_us, event_id, rule_id
            """).fetchall()
            for lead, rule_id, event_id, event, ts_us, given, value in rows:
                rule = self.playbook.engagement[rule_id].name
                lines[lead].append(EngagementLine(rule, event_id, normalize_name(event), ts_us,
                                                  given, value))
        fit_rules = self._fit_rules_matched(leads, wanted)
        out = {}
        for lead, lead_score in scored.items():
            fits = tuple(FitLine(r.name, r.points) for r in self.playbook.fit
                         if r.name in fit_rules.get(lead, self._fit_rules_for_empty()))
            out[lead] = replace(lead_score, engagement_lines=tuple(lines.get(lead, ())),
                                fit_lines=fits)
        return out

    def _fit_rules_for_empty(self) -> set[str]:
        return {line.rule for line in fit_lines(self.playbook, {})}

    def _fit_rules_matched(self, leads: LeadTable | None, wanted: str) -> dict[str, set[str]]:
        if leads is None or not wanted:
            return {}
        missing = self.playbook.missing_values
        cols = ", ".join(f"{where_sql(rule.where, leads.attributes, missing)} AS "
                         f"{quote_ident('r' + str(i))}" for i, rule in enumerate(self.playbook.fit))
        if not cols:
            return {}
        rows = self.con.sql(
            f"SELECT lead_id, {cols} FROM {leads.sql} WHERE lead_id IN ({wanted})").fetchall()
        return {row[0]: {self.playbook.fit[i].name for i, hit in enumerate(row[1:]) if hit}
                for row in rows}


_Table = TypeVar("_Table", EventTable, LeadTable)


def _only(table: _Table | None, wanted: str) -> _Table | None:
    """The same table restricted to some leads."""
    if table is None:
        return None
    return replace(table, sql=f"(SELECT * FROM {table.sql} WHERE lead_id IN ({wanted or 'NULL'}))")


def _scored(row: Iterable) -> ScoredLead:
    (lead_id, _score, fit, engagement, temperature, stage, funnel, suppressed, last_activity,
     events) = row
    return ScoredLead(
        lead_id=lead_id,
        fit=fit,
        engagement=engagement,
        temperature=Temperature(temperature),
        stage=Stage(stage),
        funnel=funnel,
        suppressed=bool(suppressed),
        last_activity_us=to_us(last_activity) if last_activity is not None else None,
        event_count=int(events),
    )
