"""Batch scoring on DuckDB: a whole event table, as of one time, in vectorised SQL.

The playbook is compiled to SQL with the meaning :mod:`pyrometer.core.reference` defines.

* **Pass 1**, one hash aggregate per lead: events join a small table of (raw event name,
  candidate rule) rows; property conditions become a column; the aggregate sums decayed
  points as if nothing were capped, takes ``once`` rules' first event, counts each lead's
  events, latest activity, latest lifecycle event and suppression, and *proves* for each
  capped rule that its cap never bit (see :meth:`DuckDBBatchScorer._per_lead_sql`).
* **Pass 2**, only for the (lead, capped rule) pairs without that proof: per cap window,
  the earliest events that can earn points (``min(x, n)``), each with its rank's points.
  Nothing is sorted.

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
from pyrometer.core.playbook import EngagementRule, Metric, Playbook, Stage, Temperature
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
    diagnose: Callable[[], None] | None = field(default=None, compare=False)
    """Called when rows lack a lead, event or time; raises an error naming the first."""
    rows: int | None = None
    """How many rows, when the reader knows cheaply (Parquet metadata)."""


@dataclass(frozen=True)
class LeadTable:
    """Leads as SQL: ``lead_id`` plus attribute columns (normalised name → SQL)."""

    sql: str
    attributes: Mapping[str, str] = field(default_factory=dict)


# Pass 1 packs the per-rule event counts, 12 bits each, five to a BIGINT, so five rules
# cost one aggregate instead of five.
EVENTS_PER_SLICE = 40_000_000
COUNT_BITS = 12  # up to 4,095 events of one rule per lead; more and the lead is redone
COUNTS_PER_CHUNK = 5

OUTPUT_COLUMNS = (
    "lead_id",
    "score",
    "fit",
    "engagement",
    "temperature",
    "stage",
    "funnel",
    "suppressed",
    "last_activity",
    "events",
)


class DuckDBBatchScorer:
    """Scores tables of events and leads with one playbook on one DuckDB connection."""

    def __init__(
        self,
        playbook: Playbook,
        con: duckdb.DuckDBPyConnection | None = None,
        slices: int | None = None,
    ):
        self.playbook = playbook
        self.slices = slices  # None: chosen from the table's size
        self.con = con if con is not None else duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO pyro_fdiv(a, b) AS "
            "CASE WHEN a >= 0 THEN a // b ELSE -((-a - 1) // b) - 1 END"
        )

    # -- compiled pieces -------------------------------------------------------------

    def _raw_names(self, events: EventTable) -> list[str]:
        """Distinct event names as they are spelled in the data.

        Read once and normalised here, so ``"Demo Request"`` in a file meets
        ``demo_request`` in the playbook without normalising every row in SQL.
        """
        return [
            str(row[0])
            for row in self.con.execute(
                f"SELECT DISTINCT event FROM {events.sql} WHERE event IS NOT NULL"
            ).fetchall()
        ]

    def _load_rules(self, events: EventTable, raw_names: Sequence[str]) -> str:
        """Register ``pyro_rules``: one row per (raw event name, rule that may match it).

        Every raw name has at least one row (``rule_id`` NULL when no rule names it), so the
        join also brings what the name means for the lead's activity: its lifecycle
        ``stage``, whether it ``suppress``-es, whether it is ``bad`` (empty). The join on the
        name is a plain equality; whether the rule's property conditions hold is a column
        (returned as SQL). ``cand`` numbers a name's rows: ``cand = 0`` stands for the event.
        """
        missing = self.playbook.missing_values
        condition_ids: dict[str, int] = {"TRUE": 0}
        candidates: dict[str, list[tuple[int, int]]] = defaultdict(list)  # name -> (rule, cond)
        for rule_id, rule in enumerate(self.playbook.engagement):
            wheres: dict[str, list[str]] = defaultdict(list)
            for alt in rule.alternatives:
                wheres[alt.event].append(where_sql(alt.where, events.properties, missing))
            for name, clauses in wheres.items():
                match_sql = "TRUE" if "TRUE" in clauses else " OR ".join(clauses)
                cond_id = condition_ids.setdefault(match_sql, len(condition_ids))
                candidates[name].append((rule_id, cond_id))
        rules = self.playbook.engagement
        counts, maps = self._packing()
        lifecycle = self.playbook.lifecycle.events
        suppress = set(self.playbook.suppression.events)
        rows = []
        for raw in raw_names:
            name = normalize_name(raw)
            stage = str(lifecycle[name]) if name in lifecycle else None
            meaning = (stage, name in suppress, raw.strip() == "")
            for cand, (rule_id, cond_id) in enumerate(candidates.get(name, [])):
                rule = rules[rule_id]
                chunk, slot = counts.get(rule_id, (None, None))
                one = None if slot is None else 1 << (COUNT_BITS * slot)
                map_rule = rule_id if rule_id in maps else None
                window = self._window_us(rule)
                rows.append(
                    (
                        raw,
                        rule_id,
                        cond_id,
                        cand,
                        rule.points,
                        window,
                        chunk,
                        one,
                        map_rule,
                        *meaning,
                    )
                )
            if name not in candidates:
                rows.append((raw, None, 0, 0, None, None, None, None, None, *meaning))
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_rules (raw_event VARCHAR, rule_id INTEGER, "
            "cond_id INTEGER, cand INTEGER, points DOUBLE, win_us BIGINT, chunk INTEGER, "
            "one BIGINT, map_rule INTEGER, stage VARCHAR, suppress BOOLEAN, bad BOOLEAN)"
        )
        if rows:
            self.con.executemany(
                "INSERT INTO pyro_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        if len(condition_ids) == 1:
            return "(r.rule_id IS NOT NULL)"
        cases = " ".join(f"WHEN {i} THEN {sql}" for sql, i in condition_ids.items() if i)
        return f"(r.rule_id IS NOT NULL AND CASE r.cond_id WHEN 0 THEN TRUE {cases} END)"

    def _step_sql(self, ts_expr: str) -> str:
        return f"pyro_fdiv({ts_expr}, {self.playbook.decay.step_us})"

    def _factor_sql(self, step_expr: str, as_of_us: int) -> str:
        """What a point earned in decay step ``step_expr`` is worth at ``as_of_us``."""
        decay = self.playbook.decay
        return (
            f"pow(2.0, -({decay.step_of(as_of_us)} - ({step_expr})) / "
            f"{number_literal(decay.half_life_steps)})"
        )

    def _packing(self) -> tuple[dict[int, tuple[int, int]], set[int]]:
        """Where each capped rule's event count lives, (BIGINT chunk, slot), and which
        capped rules keep a mask of the windows they were seen in.

        A filtered aggregate per rule would cost a pass over the rows each; instead a row
        adds ``1 << (COUNT_BITS * slot)`` to its count chunk, and the counts are read back
        with shifts.
        """
        rules = self.playbook.engagement
        capped = [i for i, rule in enumerate(rules) if rule.cap is not None]
        windowed = {i for i in capped if self._window_us(rules[i]) is not None}
        return {rule_id: divmod(k, COUNTS_PER_CHUNK) for k, rule_id in enumerate(capped)}, windowed

    @staticmethod
    def _window_us(rule: EngagementRule) -> int | None:
        """A limited rule's window length; ``None`` for the lead's whole life (and for
        unlimited rules, which have no windows)."""
        return rule.cap.per_us if rule.cap is not None else None

    def _joined_sql(
        self, events: EventTable, as_of_us: int, raw_names: Sequence[str], lead_filter: str = ""
    ) -> str:
        """Events joined to their candidate rules: one row per (event, candidate rule), or
        one row with a NULL rule for an event no rule names. ``matched`` says whether the
        rule's conditions hold; ``is_primary`` marks one row per event."""
        match = self._load_rules(events, raw_names)
        return f"""
            SELECT e.lead_id, e.event, e.ts_us, e.event_id, r.rule_id, r.points AS p,
                   coalesce(pyro_fdiv(e.ts_us, r.win_us), 0) AS win, r.chunk, r.one,
                   r.map_rule, r.stage, r.suppress,
                   e.ts_us IS NULL OR e.lead_id IS NULL OR coalesce(r.bad, TRUE) AS bad,
                   coalesce({match}, FALSE) AS matched, coalesce(r.cand = 0, TRUE) AS is_primary
            FROM {events.sql} e LEFT JOIN pyro_rules r ON e.event = r.raw_event
            WHERE (e.ts_us <= {as_of_us} OR e.ts_us IS NULL) {lead_filter}
        """

    def _given_sql(self, rule: EngagementRule, rank_expr: str) -> str:
        """Points the event at ``rank_expr`` (0-based) of a rule's cap window gets."""
        size = abs(rule.points)
        sign = "" if rule.points >= 0 else "-"
        return (
            f"{sign}greatest(0.0, least({number_literal(size)}, "
            f"{number_literal(rule.cap_points)} - ({rank_expr}) * {number_literal(size)}))"
        )

    @staticmethod
    def _full_slots(rule: EngagementRule) -> int:
        """How many events of one window earn the rule's whole points."""
        full = 0
        while full < rule.slots and rule.points_at_rank(full) == rule.points != 0:
            full += 1
        return full

    def _per_lead_sql(self, joined: str, as_of_us: int) -> str:
        """Pass 1: one hash aggregate per lead, not much dearer than a plain decayed sum.

        It sums every matched event's decayed points as if nothing were capped (``once``
        rules are exact here: the first event's points), and proves, per (lead, capped
        rule), that no cap bit, without grouping by window: with ``n`` events in ``D``
        distinct windows no window holds more than ``1 + n - D`` events, and a 64-bit set
        of window numbers (mod 64) can only undercount ``D``. Pairs without that proof are
        flagged ``redo_<rule>`` for :meth:`_exact_windows_sql`, which corrects their points.
        """
        factor = self._factor_sql(self._step_sql("ts_us"), as_of_us)
        counts, maps = self._packing()
        rules = self.playbook.engagement
        inner: list[str] = []
        redo: list[str] = []
        exact: list[str] = []
        for chunk in sorted({chunk for chunk, _ in counts.values()}):
            inner.append(f"sum(one) FILTER (WHERE matched AND chunk = {chunk}) AS c{chunk}")
        if counts:
            # A lead with more capped events than a slot holds is simply redone exactly.
            inner.append("count(*) FILTER (WHERE matched AND chunk IS NOT NULL) AS n_capped")
        once = [i for i, rule in enumerate(rules) if rule.once]
        for i in once:
            inner.append(f"min(ts_us) FILTER (WHERE matched AND rule_id = {i}) AS o{i}")
            step = self._step_sql(f"o{i}")
            exact.append(
                f" + coalesce({number_literal(rules[i].points)} * "
                f"{self._factor_sql(step, as_of_us)}, 0.0)"
            )
        mask = (1 << COUNT_BITS) - 1
        for i, (chunk, slot) in counts.items():
            count = f"((coalesce(c{chunk}, 0) >> {COUNT_BITS * slot}) & {mask})"
            full = self._full_slots(rules[i])
            if i in maps:
                inner.append(f"bit_or(bm) FILTER (WHERE matched AND map_rule = {i}) AS b{i}")
                proven = f"{count} - bit_count(coalesce(b{i}, CAST(0 AS UBIGINT))) < {full}"
            else:
                proven = f"{count} <= {full}"
            redo.append(
                f"coalesce(n_capped > {mask} OR ({count} > 0 AND NOT ({proven})), FALSE) "
                f"AS redo_{i}"
            )
        not_once = f" AND rule_id NOT IN ({', '.join(map(str, once))})" if once else ""
        return f"""
            SELECT lead_id, engagement {"".join(exact)} AS engagement, events, last_us,
                   lifecycle.s AS explicit_stage, suppressed_by_event,
                   invalid OR lead_id IS NULL OR lead_id = '' AS invalid
                   {"".join(", " + r for r in redo)}
            FROM (
                SELECT lead_id,
                       coalesce(sum(p * {factor}) FILTER (WHERE matched{not_once}), 0.0)
                           AS engagement,
                       {"".join(agg + ", " for agg in inner)}
                       count(*) FILTER (WHERE is_primary) AS events,
                       max(ts_us) AS last_us,
                       max(struct_pack(t := ts_us, i := event_id, s := stage))
                           FILTER (WHERE is_primary AND stage IS NOT NULL) AS lifecycle,
                       coalesce(bool_or(suppress), FALSE) AS suppressed_by_event,
                       bool_or(bad) AS invalid
                FROM (SELECT *, CAST(1 AS UBIGINT) << CAST(((win % 64) + 64) % 64 AS INTEGER)
                                    AS bm
                      FROM ({joined}))
                GROUP BY lead_id
            )
        """

    def _exact_windows_sql(self, joined: str, as_of_us: int) -> str:
        """Pass 2, only for the (lead, limited rule) pairs in ``pyro_redo``: per window, the
        earliest events that can earn points (``min(x, n)``) get their rank's points; the
        result replaces the uncapped sum pass 1 counted for them."""
        limited = [(i, rule) for i, rule in enumerate(self.playbook.engagement) if rule.limited]
        slots = max(rule.slots for _, rule in limited)
        factor = self._factor_sql(self._step_sql("x.t"), as_of_us)
        exact = " ".join(
            f"WHEN {i} THEN list_sum(list_transform(firsts, lambda x, i: "
            f"{self._given_sql(rule, 'i - 1')} * {factor}))"
            for i, rule in limited
        )
        row_factor = self._factor_sql(self._step_sql("j.ts_us"), as_of_us)
        return f"""
            SELECT lead_id, sum(CASE rule_id {exact} END - uncapped) AS correction
            FROM (
                SELECT j.lead_id, j.rule_id, j.win,
                       min(struct_pack(t := j.ts_us, i := j.event_id), {slots}) AS firsts,
                       sum(j.p * {row_factor}) AS uncapped
                FROM ({joined}) j
                JOIN pyro_redo r ON j.lead_id = r.lead_id AND j.rule_id = r.rule_id
                WHERE j.matched
                GROUP BY j.lead_id, j.rule_id, j.win
            )
            GROUP BY lead_id
        """

    def _score_events(self, events: EventTable, as_of_us: int, say: Callable[[str], None]) -> None:
        """Fill ``pyro_act``: per lead, engagement and activity, exactly.

        Large tables are scored in slices of leads (by a hash of the lead id), one pass over
        the file each: every slice's hash table stays small enough for the caches and the
        memory, which costs less than the extra reads of a columnar file.
        """
        raw_names = self._raw_names(events)
        slices = self._slices(events)
        for k in range(slices):
            say(f"Scoring events ({k + 1}/{slices})" if slices > 1 else "Scoring events")
            only = f"AND coalesce(hash(e.lead_id) % {slices}, 0) = {k}" if slices > 1 else ""
            per_lead = self._per_lead_sql(
                self._joined_sql(events, as_of_us, raw_names, only), as_of_us
            )
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE pyro_act AS {per_lead}"
                if k == 0
                else f"INSERT INTO pyro_act {per_lead}"
            )
        row = self.con.execute("SELECT count(*) FILTER (WHERE invalid) FROM pyro_act").fetchone()
        if row and row[0]:
            if events.diagnose is not None:
                events.diagnose()  # raises, naming the first bad row
            raise ValueError(f"events of {row[0]} leads lack a lead id, an event name or a time")
        capped = [i for i, rule in enumerate(self.playbook.engagement) if rule.cap is not None]
        if not capped:
            return
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_redo AS "
            + " UNION ALL ".join(
                f"SELECT lead_id, {i} AS rule_id FROM pyro_act WHERE redo_{i}" for i in capped
            )
        )
        row = self.con.execute("SELECT count(*) FROM pyro_redo").fetchone()
        if not row or not row[0]:
            return
        # Only the redone leads' events go through the rules again.
        redone = self._joined_sql(
            events, as_of_us, raw_names, "AND e.lead_id IN (SELECT lead_id FROM pyro_redo)"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_exact AS "
            + self._exact_windows_sql(redone, as_of_us)
        )
        self.con.execute(
            "UPDATE pyro_act SET engagement = pyro_act.engagement + x.correction "
            "FROM pyro_exact x WHERE pyro_act.lead_id = x.lead_id"
        )

    def _slices(self, events: EventTable) -> int:
        """How many slices of leads to score separately: one per 40 M events."""
        if self.slices is not None:
            return self.slices
        if events.rows is None:
            return 1
        return max(1, -(-events.rows // EVENTS_PER_SLICE))

    def _fit_sql(self, leads: LeadTable) -> str:
        missing = self.playbook.missing_values
        terms = [
            f"CASE WHEN {where_sql(rule.where, leads.attributes, missing)} "
            f"THEN {number_literal(rule.points)} ELSE 0.0 END"
            for rule in self.playbook.fit
        ]
        supp = [
            where_sql(w, leads.attributes, missing) for w in self.playbook.suppression.attributes
        ]
        return f"""
            SELECT lead_id, {" + ".join(terms) if terms else "0.0"} AS fit,
                   {" OR ".join(supp) if supp else "FALSE"} AS suppressed_by_attr
            FROM {leads.sql}
        """

    def _classes_sql(self) -> tuple[str, str, str]:
        pb = self.playbook
        score = f"round(fit + engagement, {CLASSIFY_DECIMALS})"
        temperature = (
            f"CASE WHEN {score} >= {number_literal(pb.temperature.hot)} THEN "
            f"'{Temperature.HOT}' WHEN {score} >= {number_literal(pb.temperature.warm)} "
            f"THEN '{Temperature.WARM}' ELSE '{Temperature.COLD}' END"
        )
        metrics = {
            Metric.SCORE: score,
            Metric.FIT: f"round(fit, {CLASSIFY_DECIMALS})",
            Metric.ENGAGEMENT: f"round(engagement, {CLASSIFY_DECIMALS})",
        }
        mql = (
            " AND ".join(
                condition_sql(cond, metrics[metric], pb.missing_values)
                for metric, cond in pb.lifecycle.mql.items()
            )
            or "TRUE"
        )
        stage = (
            f"CASE WHEN explicit_stage IS NOT NULL AND explicit_stage <> '{Stage.LEAD}' "
            f"THEN explicit_stage WHEN {mql} THEN '{Stage.MQL}' ELSE '{Stage.LEAD}' END"
        )
        funnel = (
            "CASE stage "
            + " ".join(
                f"WHEN '{stage_name}' THEN {quote_literal(name)}"
                for stage_name, name in pb.lifecycle.funnel.items()
            )
            + " END"
        )
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
            self._score_events(events, as_of_us, say)
        else:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_act (lead_id VARCHAR, engagement DOUBLE, "
                "events BIGINT, last_us BIGINT, explicit_stage VARCHAR, "
                "suppressed_by_event BOOLEAN, invalid BOOLEAN)"
            )
        if leads is not None:
            say("Scoring fit")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_fit AS {self._fit_sql(leads)}")
        else:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_fit (lead_id VARCHAR, "
                "fit DOUBLE, suppressed_by_attr BOOLEAN)"
            )
        say("Classifying")
        default_fit = self._default_fit()
        temperature, stage, funnel = self._classes_sql()
        # Leads without attributes get the fit an empty record gets (rules on `missing`).
        base = f"""
            SELECT coalesce(f.lead_id, a.lead_id) AS lead_id,
                   coalesce(f.fit, {number_literal(default_fit[0])}) AS fit,
                   coalesce(a.engagement, 0.0) AS engagement,
                   a.explicit_stage,
                   coalesce(f.suppressed_by_attr, {str(default_fit[1]).upper()})
                       OR coalesce(a.suppressed_by_event, FALSE) AS suppressed,
                   a.last_us, coalesce(a.events, 0) AS events
            FROM pyro_fit f FULL OUTER JOIN pyro_act a ON f.lead_id = a.lead_id
        """
        return self.con.sql(f"""
            SELECT lead_id, fit + engagement AS score, fit, engagement, temperature, stage,
                   {funnel} AS funnel, suppressed,
                   make_timestamp(last_us) AS last_activity, events
            FROM (SELECT *, {temperature} AS temperature, {stage} AS stage FROM ({base}))
        """)

    def _default_fit(self) -> tuple[float, bool]:
        """Fit and suppression of a lead with no attributes (rules on ``missing`` match)."""
        return (
            sum(line.points for line in fit_lines(self.playbook, {})),
            suppressed_by_attributes(self.playbook, {}),
        )

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
            lead: lead_score
            for lead, lead_score in self.score(
                _only(events, wanted), _only(leads, wanted), as_of_us
            ).items()
        }
        lines: dict[str, list[EngagementLine]] = defaultdict(list)
        if events is not None:
            rules = self.playbook.engagement
            given = " ".join(
                f"WHEN {i} THEN "
                + (self._given_sql(rule, "rnk") if rule.limited else number_literal(rule.points))
                for i, rule in enumerate(rules)
            )
            factor = self._factor_sql(self._step_sql("ts_us"), as_of_us)
            joined = self._joined_sql(events, as_of_us, self._raw_names(events), lead_filter)
            rows = self.con.execute(f"""
                SELECT lead_id, rule_id, CAST(event_id AS VARCHAR), event, ts_us, given,
                       given * {factor} AS value
                FROM (SELECT *, CASE rule_id {given} END AS given
                      FROM (SELECT *, row_number() OVER (PARTITION BY lead_id, rule_id, win
                                       ORDER BY ts_us, event_id) - 1 AS rnk
                            FROM ({joined}) WHERE matched))
                ORDER BY lead_id, ts_us, event_id, rule_id
            """).fetchall()
            for lead, rule_id, event_id, event, ts_us, points, value in rows:
                lines[lead].append(
                    EngagementLine(
                        rules[rule_id].name, event_id, normalize_name(event), ts_us, points, value
                    )
                )
        fit_rules = self._fit_rules_matched(leads, wanted)
        empty = {line.rule for line in fit_lines(self.playbook, {})}  # a lead without a row
        out = {}
        for lead, lead_score in scored.items():
            fits = tuple(
                FitLine(r.name, r.points)
                for r in self.playbook.fit
                if r.name in fit_rules.get(lead, empty)
            )
            out[lead] = replace(
                lead_score, engagement_lines=tuple(lines.get(lead, ())), fit_lines=fits
            )
        return out

    def _fit_rules_matched(self, leads: LeadTable | None, wanted: str) -> dict[str, set[str]]:
        if leads is None or not wanted:
            return {}
        missing = self.playbook.missing_values
        cols = ", ".join(
            f"{where_sql(rule.where, leads.attributes, missing)} AS {quote_ident('r' + str(i))}"
            for i, rule in enumerate(self.playbook.fit)
        )
        if not cols:
            return {}
        rows = self.con.sql(
            f"SELECT lead_id, {cols} FROM {leads.sql} WHERE lead_id IN ({wanted})"
        ).fetchall()
        return {
            row[0]: {self.playbook.fit[i].name for i, hit in enumerate(row[1:]) if hit}
            for row in rows
        }


_Table = TypeVar("_Table", EventTable, LeadTable)


def _only(table: _Table | None, wanted: str) -> _Table | None:
    """The same table restricted to some leads."""
    if table is None:
        return None
    return replace(table, sql=f"(SELECT * FROM {table.sql} WHERE lead_id IN ({wanted or 'NULL'}))")


def _scored(row: Iterable) -> ScoredLead:
    (
        lead_id,
        _score,
        fit,
        engagement,
        temperature,
        stage,
        funnel,
        suppressed,
        last_activity,
        events,
    ) = row
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
