"""The DuckDB engine: runs the compiled plan (:mod:`pyrometer.engines.plan`) as SQL.

* **Pass 1**, one narrow hash aggregate per lead over one row per event: decayed points as
  if nothing were capped, events, latest activity, and the cap proof
  (:mod:`pyrometer.engines.duckdb.pass1`); in C where the native aggregate loads.
* **Pass 2a** and **2b**, over the rare events and the leads the proof does not clear
  (:mod:`pyrometer.engines.duckdb.pass2`).
* Fit and classes over the leads (:mod:`pyrometer.engines.duckdb.sql`).

This module only orders the passes, moves tables and reads results; what each pass
computes comes from the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

import duckdb

from pyrometer.core.conditions import normalize_name
from pyrometer.core.fit import fit_lines, suppressed_by_attributes
from pyrometer.core.model import EngagementLine, FitLine, ScoredLead
from pyrometer.core.playbook import Playbook, Stage, Temperature
from pyrometer.core.timeutil import to_us
from pyrometer.engines import native as native_ext
from pyrometer.engines import plan
from pyrometer.engines.duckdb import ledger, pass1, pass2
from pyrometer.engines.duckdb.sql import (
    classes_sql,
    fit_sql,
    number_literal,
    quote_literal,
)
from pyrometer.engines.duckdb.tables import EventTable, LeadTable, connect

# Tables over this many events are scored in slices of leads, one pass over the file each,
# so that the per-lead hash table stays within memory.
EVENTS_PER_SLICE = 60_000_000
WEIGHT_SAMPLE_ROWS = 100_000
PROVEN_UNTIL_US = 1 << 62  # later than any event: a proof over all of a lead's events


class DuckDBBatchScorer:
    """Scores tables of events and leads with one playbook on one DuckDB connection."""

    def __init__(
        self,
        playbook: Playbook,
        con: duckdb.DuckDBPyConnection | None = None,
        slices: int | None = None,
        native: bool | None = None,
    ):
        """``native``: run pass 1 as pyrometer's C aggregate (:mod:`pyrometer.engines.native`);
        ``None`` when it loads on ``con`` (made by :func:`pyrometer.engines.native.connect`,
        or any connection allowing unsigned extensions), else the same pass in SQL."""
        self.playbook = playbook
        self.slices = slices  # None: chosen from the table's size
        self.last_name_counts: dict[str | None, int] = {}
        self.con = con if con is not None else connect()
        if native is False:
            self.native = False
        else:
            self.native = native_ext.load(self.con)
            if native and not self.native:
                raise RuntimeError(f"native pass 1 unavailable: {native_ext.last_error}")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO pyro_fdiv(a, b) AS "
            "CASE WHEN a >= 0 THEN a // b ELSE -((-a - 1) // b) - 1 END"
        )
        self.con.execute("CREATE OR REPLACE TEMP MACRO pyro_fmod(a, b) AS ((a % b) + b) % b")

    # -- reading the table -----------------------------------------------------------

    def name_counts(self, events: EventTable) -> dict[str | None, int]:
        """Events per name as spelled in the data, an id seen twice counted once as scoring
        counts it (:meth:`distinct`); after scoring, ``last_name_counts`` holds those of the
        table just scored (what reports of unknown events count)."""
        return self._name_counts(self.distinct(events))

    def _name_counts(self, events: EventTable) -> dict[str | None, int]:
        """Rows per event name as spelled in the data (``None``: rows without a name).

        Read once and normalised by the plan, so ``"Demo Request"`` in a file meets
        ``demo_request`` in the playbook without normalising every row in SQL.
        """
        return {
            (None if row[0] is None else str(row[0])): int(row[1])
            for row in self.con.execute(
                f"SELECT event, count(*) FROM {events.sql} GROUP BY event"
            ).fetchall()
        }

    def _earliest(self, events: EventTable) -> int | None:
        """The earliest time in the table (from the reader when it knows it)."""
        if events.earliest_us is not None:
            return events.earliest_us
        row = self.con.execute(f"SELECT min(ts_us) FROM {events.sql}").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _raw_names(self, events: EventTable) -> list[str]:
        return [name for name in self._name_counts(events) if name is not None]

    # -- the plan, loaded --------------------------------------------------------------

    def _load_rules(self, events: EventTable, raw_names: Sequence[str]) -> str:
        """Register ``pyro_rules`` (the plan's candidates) and return the SQL of whether a
        row's conditions hold (:func:`pass2.load_candidates`)."""
        by_name = plan.terms(self.playbook, events.properties)
        candidates = plan.candidates(self.playbook, by_name, raw_names)
        return pass2.load_candidates(self.con, candidates, events.properties)

    def _sample_weights(self, events: EventTable, match: str) -> dict[int, float]:
        """Matches per rule among the table's first rows: which capped rules are busy, so
        the proof gives them more bins. Conditions count (a ``page_view`` of a pricing URL
        is a pricing event). ``match`` is what :meth:`_load_rules` returned."""
        rows = self.con.execute(pass2.sample_sql(events.sql, match, WEIGHT_SAMPLE_ROWS))
        return {int(rule_id): float(n) for rule_id, n in rows.fetchall()}

    def _load_names(
        self,
        events: EventTable,
        raw_names: Sequence[str],
        weights: dict[int, float],
        nonnegative: bool,
    ) -> pass1.Pass1:
        """Register ``pyro_names`` and ``pyro_keys`` from the plan's key table and compile
        pass 1's per-row SQL (:mod:`pyrometer.engines.duckdb.pass1`)."""
        table = plan.key_table(
            self.playbook,
            plan.terms(self.playbook, events.properties),
            raw_names,
            plan.proof_layout(self.playbook, weights),
        )
        self.con.execute(pass1.NAMES_DDL)
        self.con.execute(pass1.KEYS_DDL)
        if table.names:
            self.con.executemany(
                "INSERT INTO pyro_names VALUES (?, ?, ?, ?, ?, ?)", pass1.name_rows(table)
            )
            self.con.executemany(
                "INSERT INTO pyro_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", pass1.key_rows(table)
            )
        return pass1.compile_pass1(table, events.properties, nonnegative, self.native)

    def distinct(self, events: EventTable) -> EventTable:
        """The table with one event per id: the first row of an id in the table's order
        (a file's order), as the service keeps the first message stored with a
        ``messageId`` (:mod:`pyrometer.core.events`). Rows without an id all stay.

        Only a table whose ids repeat is copied; otherwise this costs one hash aggregate
        over the ids' 64-bit hashes, half that of one over the ids themselves (not run when
        the reader knows them unique). Distinct hashes prove distinct ids; a repeated hash
        (a repeated id, or for a million ids with a chance of 3 in 10^8, a collision) takes
        the exact path, which keeps every event of distinct ids.
        """
        if events.unique_ids:
            return events
        repeated = self.con.execute(
            f"SELECT 1 FROM {events.sql} WHERE event_id IS NOT NULL "
            "GROUP BY hash(event_id) HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if repeated is None:
            return replace(events, unique_ids=True)
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pyro_distinct AS
            SELECT * EXCLUDE (pyro_rn)
            FROM (SELECT *, row_number() OVER () AS pyro_rn FROM {events.sql})
            QUALIFY event_id IS NULL
                 OR row_number() OVER (PARTITION BY event_id ORDER BY pyro_rn) = 1
            ORDER BY pyro_rn
        """)
        counted = self.con.execute("SELECT count(*) FROM pyro_distinct").fetchone()
        # The earliest time can only be later without the repeats: the reader's stays a
        # lower bound, which is all it is used for.
        return replace(
            events, sql="pyro_distinct", unique_ids=True, rows=int(counted[0]) if counted else None
        )

    def _score_events(self, events: EventTable, as_of_us: int, say: Callable[[str], None]) -> None:
        """Fill ``pyro_act``: per lead, engagement and activity, exactly.

        Large tables are scored in slices of leads (by a hash of the lead id), one pass over
        the file each, so that every slice's hash table stays small enough for the memory.
        """
        events = self.distinct(events)
        counts = self._name_counts(events)
        self.last_name_counts = counts
        raw_names = [name for name in counts if name is not None]
        nameless = sum(counts[name] for name in raw_names if not normalize_name(name))
        if counts.get(None) or nameless:  # no name, or one of punctuation alone ("!!!")
            self._invalid(events, counts.get(None, 0) + nameless)
        match = self._load_rules(events, raw_names)  # for the sample and pass 2b
        compiled = self._load_names(
            events,
            raw_names,
            self._sample_weights(events, match),
            nonnegative=(self._earliest(events) or 0) >= 0,
        )
        slices = self._slices(events)
        for k in range(slices):
            say(f"Scoring events ({k + 1}/{slices})" if slices > 1 else "Scoring events")
            only = f"AND coalesce(hash(e.lead_id) % {slices}, 0) = {k}" if slices > 1 else ""
            per_lead = pass1.per_lead_sql(events.sql, self.playbook.decay, as_of_us, compiled, only)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE pyro_pass1 AS {per_lead}"
                if k == 0
                else f"INSERT INTO pyro_pass1 {per_lead}"
            )
        row = self.con.execute("SELECT count(*) FILTER (WHERE invalid) FROM pyro_pass1").fetchone()
        if row and row[0]:
            self._invalid(events, row[0])
        say("Stages and caps")
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_redo AS SELECT lead_id FROM pyro_pass1 WHERE redo"
        )
        redo = self.con.execute("SELECT count(*) FROM pyro_redo").fetchone()
        has_redo = bool(redo and redo[0])
        native_rare = compiled.native_keys is not None and compiled.native_rare
        if native_rare:
            # Lifecycle events at the same time with different stages: the event id decides,
            # which only the SQL pass reads.
            ties = self.con.execute("SELECT count(*) FILTER (WHERE tie) FROM pyro_pass1").fetchone()
            native_rare = not (ties and ties[0])
        rare = self.con.execute("SELECT count(*) FROM pyro_names WHERE rare").fetchone()
        has_rare = bool(rare and rare[0]) and not native_rare
        second = events
        if has_rare or has_redo:
            # One more pass over the file keeps the rows pass 2 needs: events that move a
            # stage, suppress or earn a `once` rule (unless the native pass 1 took them), and
            # every event of the leads to redo.
            wanted = " OR ".join(
                (["n.rare"] if has_rare else [])
                + (["e.lead_id IN (SELECT lead_id FROM pyro_redo)"] if has_redo else [])
            )
            names = (
                "JOIN (SELECT DISTINCT raw_event, rare FROM pyro_names) n ON e.event = n.raw_event"
                if has_rare
                else ""
            )
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE pyro_second AS
                SELECT e.* FROM {events.sql} e {names}
                WHERE e.ts_us <= {as_of_us} AND ({wanted})
            """)
            second = replace(events, sql="pyro_second", rows=None)
        if has_rare:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_rare AS "
                + pass2.rare_sql(
                    second.sql,
                    second.properties,
                    self.playbook.decay,
                    as_of_us,
                    plan.once_rules(self.playbook, raw_names, second.properties),
                )
            )
        if has_redo:
            joined = pass2.joined_sql(
                second.sql, as_of_us, match, "AND e.lead_id IN (SELECT lead_id FROM pyro_redo)"
            )
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_exact AS "
                + pass2.exact_windows_sql(
                    joined, self.playbook.decay, as_of_us, plan.limits(self.playbook)
                )
            )
        correction = "x.correction" if has_redo else "NULL"
        if native_rare:
            once, stage, suppressed = "a.once_points", "a.explicit_stage", "a.suppressed_by_event"
        elif has_rare:
            once, stage, suppressed = (
                "coalesce(r.once_points, 0.0)",
                "r.lifecycle.s",
                "coalesce(r.suppressed, FALSE)",
            )
        else:
            once, stage, suppressed = "0.0", "CAST(NULL AS VARCHAR)", "FALSE"
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pyro_act AS
            SELECT a.lead_id,
                   a.engagement + coalesce({correction}, 0.0) + {once} AS engagement,
                   a.events, a.last_us, {stage} AS explicit_stage,
                   {suppressed} AS suppressed_by_event
            FROM pyro_pass1 a
            {"LEFT JOIN pyro_rare r ON a.lead_id = r.lead_id" if has_rare else ""}
            {"LEFT JOIN pyro_exact x ON a.lead_id = x.lead_id" if has_redo else ""}
        """)

    @staticmethod
    def _invalid(events: EventTable, leads: int) -> None:
        if events.diagnose is not None:
            events.diagnose()  # raises, naming the first bad row
        raise ValueError(f"events of {leads} leads lack a lead id, an event name or a time")

    def _slices(self, events: EventTable) -> int:
        """How many slices of leads to score separately: one per 60 M events."""
        if self.slices is not None:
            return self.slices
        if events.rows is None:
            return 1
        return max(1, -(-events.rows // EVENTS_PER_SLICE))

    def _attributes(self, leads: LeadTable) -> dict[str, str]:
        """The lead columns as the rules read them: the playbook's attribute aliases
        resolved, as :meth:`Playbook.lead_attributes` does for one lead's record."""
        return self.playbook.aliases.resolve_attributes(leads.attributes)

    def _fit_sql(self, leads: LeadTable) -> str:
        attributes = self._attributes(leads)
        return fit_sql(plan.fit_plan(self.playbook, attributes), attributes, leads.sql)

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
            events = self.distinct(events)  # once: the ids stay the same when normalised
            self._score_events(events, as_of_us, say)
            if self._ids_not_normal(events):
                self._score_events(_normal_ids(events), as_of_us, say)
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
        temperature, stage, funnel = classes_sql(plan.class_plan(self.playbook))
        # Leads without attributes get the fit an empty record gets (rules on `missing`).
        joined = (
            "pyro_fit f FULL OUTER JOIN pyro_act a ON f.lead_id = a.lead_id"
            if leads is not None
            else "pyro_act a CROSS JOIN (SELECT CAST(NULL AS VARCHAR) AS lead_id, "
            "CAST(NULL AS DOUBLE) AS fit, CAST(NULL AS BOOLEAN) AS suppressed_by_attr) f"
        )
        base = f"""
            SELECT coalesce(f.lead_id, a.lead_id) AS lead_id,
                   coalesce(f.fit, {number_literal(default_fit[0])}) AS fit,
                   coalesce(a.engagement, 0.0) AS engagement,
                   a.explicit_stage,
                   coalesce(f.suppressed_by_attr, {str(default_fit[1]).upper()})
                       OR coalesce(a.suppressed_by_event, FALSE) AS suppressed,
                   a.last_us, coalesce(a.events, 0) AS events
            FROM {joined}
        """
        return self.con.sql(f"""
            SELECT lead_id, fit + engagement AS score, fit, engagement, temperature, stage,
                   {funnel} AS funnel, suppressed,
                   make_timestamp(last_us) AS last_activity, events
            FROM (SELECT *, {temperature} AS temperature, {stage} AS stage FROM ({base}))
        """)

    def _ids_not_normal(self, events: EventTable) -> bool:
        """Whether a lead scored in ``pyro_act`` has an id not in normal form."""
        if events.normal_lead_id is None:
            return False
        normal = events.normal_lead_id("lead_id")
        row = self.con.execute(
            f"SELECT count(*) FROM pyro_act WHERE lead_id IS DISTINCT FROM {normal}"
        ).fetchone()
        return bool(row and row[0])

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

    def _compile_for(self, events: EventTable) -> tuple[list[str], str, pass1.Pass1]:
        """The event names of ``events``, the rules they match and the compiled names: what
        the backtest's SQL reads, loaded into this connection once per call."""
        raw_names = self._raw_names(events)
        match = self._load_rules(events, raw_names)
        compiled = self._load_names(
            events,
            raw_names,
            self._sample_weights(events, match),
            nonnegative=(self._earliest(events) or 0) >= 0,
        )
        return raw_names, match, compiled

    def proven_leads_sql(self, events: EventTable, extra: Mapping[str, str]) -> str:
        """Per lead over all its events, whether the cap proof fails (``redo``), as pass 1
        proves it (:func:`pass1.per_lead_sql`), and the aggregates ``extra`` (by name):
        what a backtest reads of each lead in the same scan. ``events`` must be
        :meth:`distinct` already, and every row must have an event name."""
        *_, compiled = self._compile_for(events)
        return pass1.per_lead_sql(
            events.sql, self.playbook.decay, PROVEN_UNTIL_US, compiled, "", extra=extra
        )

    def earned_points_sql(
        self, events: EventTable, until_us: int
    ) -> tuple[str, str, Callable[..., str]]:
        """What events at or before ``until_us`` earn after caps and ``once`` windows, in
        two parts: the same at any as-of time from the event's on, since an event's rank in
        its window depends on earlier events only; backtests decay them to many as-of times
        at once. ``events`` must be :meth:`distinct` already.

        * SQL of each event's points as if nothing were capped (:func:`pass1.earned_rows_sql`);
        * SQL of the leads whose windows may earn less, by ``hash(lead_id)`` (``h``):
          those the cap proof does not clear, as pass 1 proves it (:func:`pass1.per_lead_sql`);
        * given a table of those hashes (``h``; ``None``: none), SQL of the rows
          (``lead_id``, ``ts_us``, ``points``) to add: the ``once`` rules' points and the
          capped rules' corrections in those leads' windows (:func:`ledger.corrections_sql`);
          ``number``, if given, turns a table of the events wanted into one with other
          ``lead_id``s (numbers, cheaper to rank by), one per lead.
        """
        raw_names, match, compiled = self._compile_for(events)
        limits = plan.limits(self.playbook)
        once_names = sorted(
            {
                raw
                for rule in plan.once_rules(self.playbook, raw_names, events.properties)
                for raws, _ in rule.alternatives
                for raw in raws
            }
        )
        once_ids = [i for i, limit in limits.items() if limit.once]

        def corrections(redo: str | None, number: Callable[[str], str] | None = None) -> str:
            # The events wanted first (by name, from the file's dictionary, or by lead),
            # then joined to rules.
            wanted = []
            if once_names and once_ids:
                wanted.append(f"event IN ({', '.join(quote_literal(r) for r in once_names)})")
            if redo is not None:
                wanted.append(f"hash(lead_id) IN (SELECT h FROM {redo})")
            if not wanted:
                return ledger.corrections_sql(None, limits)
            rows = f"(SELECT * FROM {events.sql} WHERE {' OR '.join(wanted)})"
            joined = pass2.joined_sql(number(rows) if number else rows, until_us, match)
            return ledger.corrections_sql(joined, limits)

        # Grouped by a hash of the id, cheaper than the id: leads sharing one are proven
        # together, their windows' events added up, so a collision can only redo more.
        proof = pass1.per_lead_sql(
            events.sql, self.playbook.decay, until_us, compiled, "", "hash(e.lead_id)"
        )
        return (
            pass1.earned_rows_sql(events.sql, until_us, compiled),
            f"SELECT lead_id AS h FROM ({proof}) WHERE redo",
            corrections,
        )

    def explain(
        self,
        events: EventTable | None,
        leads: LeadTable | None,
        as_of_us: int,
        lead_ids: Sequence[str],
    ) -> dict[str, ScoredLead]:
        """Scores of ``lead_ids`` with their full ledgers (every rule, every event)."""
        # One event per id over the whole table, before keeping some leads' events.
        events = self.distinct(events) if events is not None else None
        wanted = ", ".join(quote_literal(lead) for lead in lead_ids)
        if events is not None and events.normal_lead_id is not None:
            # The leads' rows, found by their ids' normal form, once (a few rows).
            normal = events.normal_lead_id("lead_id")
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_explained AS SELECT * REPLACE "
                f"({normal} AS lead_id) FROM {events.sql} WHERE {normal} IN ({wanted or 'NULL'})"
            )
            events = replace(
                events, sql="pyro_explained", rows=None, earliest_us=None, normal_lead_id=None
            )
        lead_filter = f"AND e.lead_id IN ({wanted})" if lead_ids else "AND FALSE"
        scored = {
            lead: lead_score
            for lead, lead_score in self.score(
                _only(events, wanted), _only(leads, wanted), as_of_us
            ).items()
        }
        lines: dict[str, list[EngagementLine]] = {}
        if events is not None:
            match = self._load_rules(events, self._raw_names(events))
            joined = pass2.joined_sql(events.sql, as_of_us, match, lead_filter)
            lines = ledger.engagement_lines(self.con, self.playbook, joined, as_of_us)
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
        return ledger.fit_rules_matched(
            self.con, self.playbook, leads, self._attributes(leads), wanted
        )


_Table = TypeVar("_Table", EventTable, LeadTable)


def _normal_ids(events: EventTable) -> EventTable:
    """``events`` with every row's lead id in normal form."""
    assert events.normal_lead_id is not None
    normal = events.normal_lead_id("lead_id")
    return replace(
        events,
        sql=f"(SELECT * REPLACE ({normal} AS lead_id) FROM {events.sql})",
        normal_lead_id=None,
    )


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
