"""Batch scoring on DuckDB: a whole event table, as of one time, in vectorised SQL.

The playbook is compiled to SQL with the meaning :mod:`pyrometer.core.reference` defines.

* **Pass 1**, one narrow hash aggregate per lead over one row per event: decayed points as
  if nothing were capped, events, latest activity, and a proof, in a few integers, that no
  cap bit (:mod:`pyrometer.engines.cap_proof`). Events join a small table on the raw event
  name alone; the property conditions set bits of a key into a second small table of
  per-event constants (points, count, cap bins), so no ``CASE`` runs per row. Where it
  loads, this pass is one aggregate in C instead (:mod:`pyrometer.engines.native`): it
  reads the key and the time, holds the key's constants itself, and also takes pass 2a's
  rare events; same results, about 40 % fewer instructions over all passes.
* **Pass 2a**, over the few events that move a lifecycle stage, suppress a lead or earn a
  ``once`` rule, read with the leads to redo in one more scan.
* **Pass 2b**, only for the leads the proof does not clear: per cap window, the earliest
  events that can earn points (``min(x, n)``) get their rank's points. Nothing is sorted.

The inputs are DuckDB relations with canonical columns (see :class:`EventTable`), made by
:mod:`pyrometer.io.readers` from CSV, Parquet or JSON Lines.
"""

from __future__ import annotations

import hashlib
import math
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
from pyrometer.core.stitching import Stitching
from pyrometer.core.timeutil import to_us
from pyrometer.engines import native as native_ext
from pyrometer.engines.cap_proof import (
    LimitedRule,
    ProofLayout,
    RuleBins,
)
from pyrometer.engines.sql_conditions import (
    bounds_sql,
    number_literal,
    one_of,
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


# Tables over this many events are scored in slices of leads, one pass over the file each,
# so that the per-lead hash table stays within memory.
EVENTS_PER_SLICE = 60_000_000
WEIGHT_SAMPLE_ROWS = 100_000
KEY_CONDITIONS = 8  # property conditions with a bit of the join key; more: computed per row
TALLY_AT = 32  # pass 1 counts events below this bit and the cap proof's tally above it
PROOF_WORDS = 3

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


@dataclass(frozen=True)
class _Pass1:
    """Pass 1's compiled SQL: per-row columns, uncapped points, additions to each word."""

    columns: list[str]
    """Per event, after the join on the name: conditions and the key ``k``."""
    native_key: str
    """The key ``k`` as the native pass computes it."""
    after: list[str]
    """Per event, after the join on the key: decay step, cap window, ``unit``."""
    points: str
    words: list[str]
    """Each proof word's aggregate."""
    count: str
    """1 per event, plus from bit :data:`TALLY_AT` the units it adds to the proof words."""
    layout: ProofLayout
    native_keys: list[str] | None = None
    """Per key, what :mod:`pyrometer.engines.native` needs to know of it (``pts count stage
    suppress once_mask nbins`` and per bin ``word one width bins win_us``); ``None``: pass 1
    runs in SQL (the native pass did not load, or cannot score this playbook: conditions
    beyond the key's bits, more proof words than it keeps, too many keys)."""
    native_rare: bool = False
    """Whether the native aggregate also takes the rare events (stages, suppression, first
    events of ``once`` rules without conditions, at most :data:`native_ext.MAX_ONCE`)."""
    stages: tuple[str, ...] = ()
    """Lifecycle stages by the index the native aggregate returns."""
    once_rules: tuple[int, ...] = ()
    """``once`` rules by the index of their first time (``o0``, ``o1``...) in the native
    aggregate's result."""


@dataclass(frozen=True)
class _Term:
    """A rule an event name may earn, and the SQL of its property conditions."""

    rule_id: int
    match_sql: str  # "TRUE" when the name alone decides


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

    # -- compiled pieces -------------------------------------------------------------

    def name_counts(self, events: EventTable) -> dict[str | None, int]:
        """Events per name as spelled in the data, an id seen twice counted once as scoring
        counts it (:meth:`distinct`); after scoring, ``last_name_counts`` holds those of the
        table just scored (what reports of unknown events count)."""
        return self._name_counts(self.distinct(events))

    def _name_counts(self, events: EventTable) -> dict[str | None, int]:
        """Rows per event name as spelled in the data (``None``: rows without a name).

        Read once and normalised here, so ``"Demo Request"`` in a file meets
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

    def _terms(self, events: EventTable) -> dict[str, list[_Term]]:
        """Normalised event name → the rules it may earn, with their conditions as SQL."""
        missing = self.playbook.missing_values
        terms: dict[str, list[_Term]] = defaultdict(list)
        for rule_id, rule in enumerate(self.playbook.engagement):
            wheres: dict[str, list[str]] = defaultdict(list)
            for alt in rule.alternatives:
                wheres[alt.event].append(where_sql(alt.where, events.properties, missing))
            for name, clauses in wheres.items():
                match_sql = "TRUE" if "TRUE" in clauses else " OR ".join(clauses)
                terms[name].append(_Term(rule_id, match_sql))
        return terms

    def _meaning(self, raw: str) -> tuple[str | None, bool, bool]:
        """What a raw name means besides points: (lifecycle stage, suppresses, bad)."""
        name = self._name(raw)
        stage = self.playbook.stage_event(name)
        return (
            None if stage is None else str(stage),
            self.playbook.suppresses(name),
            raw.strip() == "",
        )

    def _name(self, raw: str) -> str:
        """What an event name as spelled in the data means: normalised, aliases resolved
        (the ledger still shows the name as sent)."""
        return self.playbook.event_name(normalize_name(raw))

    def _load_rules(self, events: EventTable, raw_names: Sequence[str]) -> str:
        """Register ``pyro_rules``: one row per (raw event name, rule that may match it).

        Used where every (event, rule) pair is needed: the exact windows of leads whose
        caps may have bitten, and the ledgers of ``explain``. Every raw name has at least
        one row (``rule_id`` NULL when no rule names it). The join on the name is a plain
        equality; whether the rule's property conditions hold is a column (returned as
        SQL). ``cand`` numbers a name's rows: ``cand = 0`` stands for the event.
        """
        terms = self._terms(events)
        condition_ids: dict[str, int] = {"TRUE": 0}
        rules = self.playbook.engagement
        rows = []
        for raw in raw_names:
            name = self._name(raw)
            meaning = self._meaning(raw)
            for cand, term in enumerate(terms.get(name, [])):
                cond_id = condition_ids.setdefault(term.match_sql, len(condition_ids))
                rule = rules[term.rule_id]
                rows.append(
                    (raw, term.rule_id, cond_id, cand, rule.points, rule.window_us, *meaning)
                )
            if name not in terms:
                rows.append((raw, None, 0, 0, None, None, *meaning))
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_rules (raw_event VARCHAR, rule_id INTEGER, "
            "cond_id INTEGER, cand INTEGER, points DOUBLE, win_us BIGINT, stage VARCHAR, "
            "suppress BOOLEAN, bad BOOLEAN)"
        )
        if rows:
            self.con.executemany("INSERT INTO pyro_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
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

    def _layout(self, weights: Mapping[int, float]) -> ProofLayout:
        """Bins for every capped rule that gives points (zero points need no proof).

        ``once`` rules are not in it: a lead with two newsletter sign-ups is common, so
        their first events are taken in pass 2a instead.
        """
        rules = self.playbook.engagement
        return ProofLayout.plan(
            words=PROOF_WORDS,
            limited=[
                LimitedRule(
                    i, self._full_slots(rule), rule.window_us is not None, weights.get(i, 0.0)
                )
                for i, rule in enumerate(rules)
                if rule.cap is not None and rule.points != 0
            ],
        )

    def _sample_weights(self, events: EventTable, match: str) -> dict[int, float]:
        """Matches per rule among the table's first rows: which capped rules are busy, so
        the proof gives them more bins. Conditions count (a ``page_view`` of a pricing URL
        is a pricing event). ``match`` is what :meth:`_load_rules` returned."""
        rows = self.con.execute(f"""
            SELECT r.rule_id, count(*)
            FROM (SELECT * FROM {events.sql} LIMIT {WEIGHT_SAMPLE_ROWS}) e
                 JOIN pyro_rules r ON e.event = r.raw_event
            WHERE {match}
            GROUP BY r.rule_id
        """).fetchall()
        return {int(rule_id): float(n) for rule_id, n in rows}

    def _unit_sql(self, bins: RuleBins, window_expr: str) -> str:
        """SQL for what one event of a rule adds to its word, in window ``window_expr``."""
        return (
            f"((CAST(1 AS BIGINT) << ({bins.offset} + {bins.width} * "
            f"CAST(pyro_fmod({window_expr}, {bins.bins}) AS INTEGER))))"
        )

    def _load_names(
        self,
        events: EventTable,
        raw_names: Sequence[str],
        weights: Mapping[int, float],
        nonnegative: bool,
    ) -> _Pass1:
        """Register ``pyro_names`` and ``pyro_keys`` and compile pass 1's per-row SQL: the
        event's points if nothing were capped, what it adds to its proof word, and its count.

        Every event joins ``pyro_names`` on its raw name alone, which DuckDB answers from
        the file's dictionary of names, and gets the name's ``base`` key. The property
        conditions of the playbook are evaluated on every row, once each, and set bits of
        the key (a condition's exact negation needs no bit of its own); ``pyro_keys`` then
        holds, per key, the points, bins and count of an event of that name with those
        conditions. So no ``CASE`` runs per row, except for a name whose events can count
        in several capped rules at once, or with more conditions than the key has bits.
        ``nonnegative``: no event is older than 1970, so plain integer division floors.
        """
        terms = self._terms(events)
        layout = self._layout(weights)
        rules = self.playbook.engagement
        once_names = {n for n, ts in terms.items() if any(rules[t.rule_id].once for t in ts)}
        windows = {rules[b.rule_id].window_us for b in layout.rules if rules[b.rule_id].window_us}
        shared = next(iter(windows)) if len(windows) == 1 else None
        step_us = self.playbook.decay.step_us
        spellings: dict[str, list[str]] = defaultdict(list)
        for raw in raw_names:
            spellings[self._name(raw)].append(raw)

        def div(expr: str, by: int | str) -> str:
            return f"({expr} // {by})" if nonnegative else f"pyro_fdiv({expr}, {by})"

        # condition SQL -> (bit, SQL reusing earlier columns, raw names using it)
        conditions: dict[str, tuple[int, str, set[str]]] = {}
        for name, name_terms in terms.items():
            for term in name_terms:
                if term.match_sql == "TRUE" or rules[term.rule_id].once:
                    continue
                if term.match_sql not in conditions:
                    # `not: {contains: /pricing}` reuses the column of `contains: /pricing`.
                    reused = term.match_sql
                    for known, (bit, _, users) in conditions.items():
                        reused, found = _reuse(reused, known, f"c{bit}")
                        if found:
                            users.update(spellings[name])
                    conditions[term.match_sql] = (len(conditions), reused, set())
                conditions[term.match_sql][2].update(spellings[name])
        # A condition that is the exact negation of another (`not: {contains: /pricing}`
        # beside `contains: /pricing`) needs no bit of its own.
        negates: dict[int, int] = {}
        for sql, (bit, _, _) in conditions.items():
            for other, (of, _, _) in conditions.items():
                if sql == f"((coalesce(NOT {other}, FALSE)))" and of not in negates:
                    negates[bit] = of
        own = [bit for bit, _, _ in conditions.values() if bit not in negates]
        slot = {bit: i for i, bit in enumerate(own[:KEY_CONDITIONS])}
        keyed = set(slot) | {bit for bit, of in negates.items() if of in slot}
        key_bits = len(slot)

        def holds(bit: int, combo: int) -> bool:
            """Whether condition ``bit`` holds for an event whose key bits are ``combo``."""
            if bit in negates:
                return not holds(negates[bit], combo)
            return bool(combo >> slot[bit] & 1)

        def window(rule: EngagementRule) -> str:
            if rule.window_us is None:
                return "0"
            if rule.window_us == step_us:
                return "step"
            return "win" if rule.window_us == shared else div("ts_us", rule.window_us)

        # branch id -> (points, word additions, count) of events that cannot read them from
        # their key's row
        branches: dict[int, tuple[str, list[str], str]] = {}
        names = []
        keys = []
        # None: pass 1 runs in SQL (the native pass did not load, keeps fewer words, or
        # would get a spec of megabytes where the SQL pass joins a table instead).
        native_keys: list[str] | None = (
            []
            if self.native
            and layout.words <= native_ext.MAX_WORDS
            and len(raw_names) << key_bits <= native_ext.MAX_KEYS
            else None
        )
        once_rules = tuple(i for i, rule in enumerate(rules) if rule.once)
        # Rare events in the native aggregate: their meaning must follow from the name alone.
        native_rare = len(once_rules) <= native_ext.MAX_ONCE and all(
            t.match_sql == "TRUE" for ts in terms.values() for t in ts if rules[t.rule_id].once
        )
        stages = tuple(dict.fromkeys(str(s) for s in self.playbook.lifecycle.events.values()))
        for nid, raw in enumerate(raw_names):
            name = self._name(raw)
            stage, suppress, bad = self._meaning(raw)
            rare = stage is not None or suppress or name in once_names
            names.append((raw, nid << key_bits, rare, stage, suppress, bad))
            once_mask = sum(
                1 << j
                for j, i in enumerate(once_rules)
                if any(t.rule_id == i for t in terms.get(name, []))
            )
            meaning = (
                f"{stages.index(stage) if stage is not None else -1} {int(suppress)} {once_mask}"
                if native_rare
                else "-1 0 0"
            )
            name_terms = [t for t in terms.get(name, []) if not rules[t.rule_id].once]
            own_bits = {conditions[t.match_sql][0] for t in name_terms if t.match_sql in conditions}
            wide = None
            if own_bits - keyed and not bad:
                # Conditions beyond the key's bits: computed on the row, in a branch.
                wide = len(branches) + 1
                branches[wide] = self._branch_sql(
                    name_terms, layout, lambda sql: f"c{conditions[sql][0]}", window
                )
            for combo in range(1 << key_bits):
                k = (nid << key_bits) + combo
                if wide is not None:
                    # pts, count, width, bins, win_us, one, word: all from the branch
                    keys.append((k, wide, None, None, 0, 1, None, 0, -1))
                    native_keys = None
                    continue

                matched = [
                    t
                    for t in name_terms
                    if t.match_sql == "TRUE" or holds(conditions[t.match_sql][0], combo)
                ]
                binned = [b for t in matched if (b := layout.of(t.rule_id)) is not None]
                pts = math.nan if bad else float(sum(rules[t.rule_id].points for t in matched))
                count = 1 + (len(binned) << TALLY_AT)
                width, nbins, win_us, one, word, branch = 0, 1, None, 0, -1, None
                if len(binned) == 1:
                    width, nbins, word = binned[0].width, binned[0].bins, binned[0].word
                    one = 1 << binned[0].offset
                    win_us = rules[binned[0].rule_id].window_us
                elif binned:
                    branch = len(branches) + 1
                    branches[branch] = (
                        "pts",
                        [
                            " + ".join(
                                self._unit_sql(b, window(rules[b.rule_id]))
                                for b in binned
                                if b.word == w
                            )
                            or "0"
                            for w in range(layout.words)
                        ],
                        str(count),
                    )
                keys.append((k, branch, pts, count, width, nbins, win_us, one, word))
                if native_keys is not None:
                    native_keys.append(
                        " ".join(
                            [str(native_ext.double_bits(pts)), str(count), meaning]
                            + [str(len(binned))]
                            + [
                                f"{b.word} {1 << b.offset} {b.width} {b.bins} "
                                f"{rules[b.rule_id].window_us or 0}"
                                for b in binned
                            ]
                        )
                    )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_names (raw_event VARCHAR, base INTEGER, "
            "rare BOOLEAN, stage VARCHAR, suppress BOOLEAN, bad BOOLEAN)"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE pyro_keys (k INTEGER, br INTEGER, pts DOUBLE, "
            "count BIGINT, width INTEGER, bins INTEGER, win_us BIGINT, one BIGINT, word INTEGER)"
        )
        if names:
            self.con.executemany("INSERT INTO pyro_names VALUES (?, ?, ?, ?, ?, ?)", names)
            self.con.executemany("INSERT INTO pyro_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", keys)

        if shared == step_us:
            generic_window = "step"
        elif not windows:
            generic_window = "0"
        elif shared is not None:
            generic_window = "win"
        else:
            generic_window = f"coalesce({div('ts_us', 'win_us')}, 0)"

        def per_row(pick: Callable[[tuple[str, list[str], str]], str], column: str) -> str:
            cases = "".join(
                f" WHEN br = {k} THEN {pick(b)}" for k, b in branches.items() if pick(b) != column
            )
            return f"CASE{cases} ELSE {column} END" if cases else column

        words = []
        for w in range(layout.words):
            cases = "".join(
                f" WHEN br = {k} THEN {b[1][w]}" for k, b in branches.items() if b[1][w] != "0"
            )
            words.append(
                f"sum(CASE{cases} WHEN word = {w} THEN unit ELSE 0 END)"
                if cases
                else f"sum(unit) FILTER (WHERE word = {w})"
            )
        # Per row, after the join on the name: each condition, then the key. Conditions in
        # the key are evaluated on every row (a name that does not use one has the same
        # constants for either value); the others only for the names that use them.
        columns = []
        for bit, sql, users in conditions.values():
            if bit in slot:
                columns.append(f"coalesce({sql}, FALSE) AS c{bit}")
            elif bit in keyed:
                # Only for branches and later conditions that read it: otherwise unused.
                of = negates[bit]
                columns.append(
                    f"NOT c{of} AS c{bit}" if of < bit else f"coalesce({sql}, FALSE) AS c{bit}"
                )
            else:
                columns.append(
                    f"CASE WHEN {one_of('e.event', sorted(users))} "
                    f"THEN coalesce({sql}, FALSE) END AS c{bit}"
                )
        bits = [f"CAST(c{bit} AS INTEGER) * {1 << i}" for bit, i in slot.items()]
        # The bits are free in the name's base, so `|` gives the same key as `+`. Joined on
        # (SQL), `+` is cheaper: DuckDB knows the key's range. Not joined (native), `|` is:
        # DuckDB checks every `+` for overflow (5 % of the native pass 1's instructions).
        native_key = (
            " | ".join(
                ["n.base"]
                + [
                    f"(CAST(c{bit} AS INTEGER) * {1 << i})" if i else f"CAST(c{bit} AS INTEGER)"
                    for bit, i in slot.items()
                ]
            )
            + " AS k"
        )
        columns.append(" + ".join(["n.base", *bits]) + " AS k")
        after = [f"{div('ts_us', step_us)} AS step"]
        if shared is not None and shared != step_us:
            after.append(f"{div('ts_us', shared)} AS win")
        bin_sql = (
            f"({generic_window} % bins)" if nonnegative else f"pyro_fmod({generic_window}, bins)"
        )
        # The bin of the event's one capped rule, as what it adds to its word.
        after.append(f"one << (width * CAST({bin_sql} AS INTEGER)) AS unit")
        return _Pass1(
            columns,
            native_key,
            after,
            per_row(lambda b: b[0], "pts"),
            words,
            per_row(lambda b: b[2], "count"),
            layout,
            native_keys,
            native_rare,
            stages,
            once_rules,
        )

    def _branch_sql(
        self,
        terms: Sequence[_Term],
        layout: ProofLayout,
        condition: Callable[[str], str],
        window: Callable[[EngagementRule], str],
    ) -> tuple[str, list[str], str]:
        """Points, word additions and count of an event of a name with many conditions,
        computed on the row from the condition columns."""
        rules = self.playbook.engagement

        def when(term: _Term, then: str, otherwise: str) -> str:
            if term.match_sql == "TRUE":
                return then
            return f"(CASE WHEN {condition(term.match_sql)} THEN {then} ELSE {otherwise} END)"

        pts = " + ".join(
            when(t, f"CAST({number_literal(rules[t.rule_id].points)} AS DOUBLE)", "0.0")
            for t in terms
        )
        words = []
        for w in range(layout.words):
            parts = [
                when(t, self._unit_sql(b, window(rules[t.rule_id])), "0")
                for t in terms
                if (b := layout.of(t.rule_id)) is not None and b.word == w
            ]
            words.append(" + ".join(parts) if parts else "0")
        units = [when(t, "1", "0") for t in terms if layout.of(t.rule_id) is not None]
        count = f"(1 + (CAST({' + '.join(units)} AS BIGINT) << {TALLY_AT}))" if units else "1"
        return pts or "CAST(0.0 AS DOUBLE)", words, count

    def _joined_sql(
        self, events: EventTable, as_of_us: int, match: str, lead_filter: str = ""
    ) -> str:
        """Events joined to their candidate rules (``pyro_rules``; ``match`` is what
        :meth:`_load_rules` returned): one row per (event, candidate rule), or one row with
        a NULL rule for an event no rule names. ``matched`` says whether the rule's
        conditions hold."""
        return f"""
            SELECT e.lead_id, e.event, e.ts_us, e.event_id, r.rule_id, r.points AS p,
                   coalesce(pyro_fdiv(e.ts_us, r.win_us), 0) AS win,
                   coalesce({match}, FALSE) AS matched
            FROM {events.sql} e LEFT JOIN pyro_rules r ON e.event = r.raw_event
            WHERE e.ts_us <= {as_of_us} {lead_filter}
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

    def _per_lead_sql(
        self, events: EventTable, as_of_us: int, compiled: _Pass1, lead_filter: str
    ) -> str:
        """Pass 1: one hash aggregate per lead, not much dearer than a plain decayed sum.

        Per lead: decayed points as if nothing were capped, events, latest activity, and
        the cap proof's words (:mod:`pyrometer.engines.cap_proof`). ``redo`` marks the
        leads the proof does not clear; ``invalid`` the leads with a bad row (no time,
        blank name: their points are NaN) or without an id. The native aggregate, when
        used, also gives pass 2a's columns when it can (``compiled.native_rare``).
        """
        layout = compiled.layout
        proven = layout.proven_sql(
            [f"coalesce(x{w}, CAST(0 AS HUGEINT))" for w in range(layout.words)],
            f"(counted >> {TALLY_AT})",
        )
        events_sql = f"CAST(counted & {(1 << TALLY_AT) - 1} AS BIGINT)"
        extra = ""  # the rare events' columns, when the native aggregate takes them
        native = compiled.native_keys is not None
        columns = [*compiled.columns[:-1], compiled.native_key] if native else compiled.columns
        rows = f"""
            SELECT e.lead_id, e.event, e.ts_us, {", ".join(columns)}
            FROM {events.sql} e JOIN pyro_names n ON e.event = n.raw_event
            WHERE (e.ts_us <= {as_of_us} OR e.ts_us IS NULL) {lead_filter}
        """
        if native:
            assert compiled.native_keys is not None
            # The same per-lead columns from one C aggregate, which looks the key up itself.
            decay = self.playbook.decay
            spec = " ".join(
                [
                    str(decay.step_us),
                    str(decay.step_of(as_of_us)),
                    str(native_ext.double_bits(decay.half_life_steps)),
                    str(len(compiled.native_keys)),
                    str(len(compiled.once_rules)),
                    *compiled.native_keys,
                ]
            )
            # Led by a hash of itself, which the aggregate compares instead of the whole text.
            spec = hashlib.sha256(spec.encode()).hexdigest()[: native_ext.SPEC_ID] + " " + spec
            parts = ", ".join(
                f"a.{c} AS {c}"
                for c in ["engagement", "counted", "last_us", "timed"]
                + [f"x{w}" for w in range(layout.words)]
            )
            if compiled.native_rare:
                # Pass 2a's columns, as _rare_sql computes them.
                stages = ", ".join(quote_literal(stage) for stage in compiled.stages)
                once = "".join(
                    f" + coalesce({number_literal(self.playbook.engagement[i].points)} * "
                    f"{self._factor_sql(self._step_sql(f'a.o{j}'), as_of_us)}, 0.0)"
                    for j, i in enumerate(compiled.once_rules)
                )
                parts += (
                    f", {f'[{stages}][a.stage + 1]' if stages else 'CAST(NULL AS VARCHAR)'} "
                    f"AS explicit_stage, a.tie AS tie, a.suppressed AS suppressed_by_event, "
                    f"0.0{once} AS once_points"
                )
                extra = ", explicit_stage, tie, suppressed_by_event, once_points"
            per_lead = f"""
                SELECT lead_id, {parts}
                FROM (
                    SELECT lead_id, {native_ext.FUNCTION}(k, ts_us, '{spec}') AS a
                    FROM ({rows})
                    GROUP BY lead_id
                )
            """
        else:
            factor = self._factor_sql("step", as_of_us)
            sums = "".join(f", {v} AS x{w}" for w, v in enumerate(compiled.words))
            per_lead = f"""
                SELECT lead_id,
                       sum(({compiled.points}) * {factor}) AS engagement{sums},
                       sum({compiled.count}) AS counted, max(ts_us) AS last_us,
                       count(ts_us) AS timed
                FROM (
                    SELECT e.* EXCLUDE (k), k.* EXCLUDE (k), {", ".join(compiled.after)}
                    FROM ({rows}) e JOIN pyro_keys k ON e.k = k.k
                )
                GROUP BY lead_id
            """
        return f"""
            SELECT lead_id, coalesce(engagement, 0.0) AS engagement,
                   {events_sql} AS events, last_us,
                   lead_id IS NULL OR lead_id = '' OR isnan(engagement)
                       OR timed < {events_sql} AS invalid,
                   NOT {proven} AS redo{extra}
            FROM ({per_lead})
        """

    def _rare_sql(self, events: EventTable, as_of_us: int, raw_names: Sequence[str]) -> str:
        """Pass 2a, over the few events that move a stage, suppress or earn a ``once`` rule:
        per lead, the latest lifecycle event (ties broken by event id), whether any
        suppresses, and each ``once`` rule's points from its first event."""
        missing = self.playbook.missing_values
        spellings: dict[str, list[str]] = defaultdict(list)
        for raw in raw_names:
            spellings[self._name(raw)].append(raw)
        firsts: list[str] = []
        points: list[str] = []
        for i, rule in enumerate(self.playbook.engagement):
            if not rule.once:
                continue
            matches = [
                f"(e.event IN ({', '.join(quote_literal(r) for r in spellings[alt.event])}) "
                f"AND {where_sql(alt.where, events.properties, missing)})"
                for alt in rule.alternatives
                if spellings.get(alt.event)
            ]
            if not matches:
                continue
            firsts.append(f", min(e.ts_us) FILTER (WHERE {' OR '.join(matches)}) AS o{i}")
            factor = self._factor_sql(self._step_sql(f"o{i}"), as_of_us)
            points.append(f" + coalesce({number_literal(rule.points)} * {factor}, 0.0)")
        return f"""
            SELECT lead_id, lifecycle, suppressed, 0.0 {"".join(points)} AS once_points
            FROM (
                SELECT e.lead_id,
                       max(struct_pack(t := e.ts_us, i := e.event_id, s := n.stage))
                           FILTER (WHERE n.stage IS NOT NULL) AS lifecycle,
                       bool_or(n.suppress) AS suppressed {"".join(firsts)}
                FROM {events.sql} e
                     JOIN (SELECT DISTINCT raw_event, stage, suppress FROM pyro_names WHERE rare) n
                     ON e.event = n.raw_event
                WHERE e.ts_us <= {as_of_us}
                GROUP BY e.lead_id
            )
        """

    def _exact_windows_sql(self, joined: str, as_of_us: int) -> str:
        """Pass 2b, only for the leads in ``pyro_redo``: per window of each capped rule,
        the earliest events that can earn points (``min(x, n)``) get their rank's points;
        the result replaces the uncapped sum pass 1 counted for them."""
        capped = [
            (i, rule) for i, rule in enumerate(self.playbook.engagement) if rule.cap is not None
        ]
        slots = max(rule.slots for _, rule in capped)
        factor = self._factor_sql(self._step_sql("x.t"), as_of_us)
        exact = " ".join(
            f"WHEN {i} THEN list_sum(list_transform(firsts, lambda x, i: "
            f"{self._given_sql(rule, 'i - 1')} * {factor}))"
            for i, rule in capped
        )
        row_factor = self._factor_sql(self._step_sql("j.ts_us"), as_of_us)
        ids = ", ".join(str(i) for i, _ in capped)
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
            per_lead = self._per_lead_sql(events, as_of_us, compiled, only)
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
                + self._rare_sql(second, as_of_us, raw_names)
            )
        if has_redo:
            joined = self._joined_sql(
                second, as_of_us, match, "AND e.lead_id IN (SELECT lead_id FROM pyro_redo)"
            )
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_exact AS "
                + self._exact_windows_sql(joined, as_of_us)
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
        missing = self.playbook.missing_values
        attributes = self._attributes(leads)
        terms = [
            f"CASE WHEN {where_sql(rule.where, attributes, missing)} "
            f"THEN {number_literal(rule.points)} ELSE 0.0 END"
            for rule in self.playbook.fit
        ]
        supp = [where_sql(w, attributes, missing) for w in self.playbook.suppression.attributes]
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
                bounds_sql(cond, metrics[metric]) for metric, cond in pb.lifecycle.mql.items()
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
        temperature, stage, funnel = self._classes_sql()
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

    def earned_points_sql(
        self, events: EventTable, until_us: int, names_from: EventTable | None = None
    ) -> str:
        """SQL of every point an event earns, after caps and ``once`` windows: rows
        (``lead_id``, ``ts_us``, ``points``) whose points at each time add up to what the
        events then earned, events at or before ``until_us``. Undecayed, so the same at any
        as-of time from the event's on (an event's rank in its window depends on earlier
        events only); backtests decay them to many as-of times at once. ``events`` must be
        :meth:`distinct` already. As passes 1 and 2b: every matching event's points as if
        nothing were capped, plus, only in the windows with more events than earn full
        points, each event's rank's points less those. ``names_from``: a cheaper table
        with the same event names to read them from."""
        rules = self.playbook.engagement
        limited = {i: self._full_slots(r) for i, r in enumerate(rules) if r.limited and r.points}
        match = self._load_rules(events, self._raw_names(names_from or events))
        joined = (
            "SELECT lead_id, ts_us, event_id, rule_id, p, win "
            f"FROM ({self._joined_sql(events, until_us, match)}) WHERE matched"
        )
        uncapped = f"SELECT lead_id, ts_us, p AS points FROM ({joined})"
        if not limited:
            return uncapped
        ids = ", ".join(map(str, limited))
        full = " ".join(f"WHEN {i} THEN {n}" for i, n in limited.items())
        given = " ".join(f"WHEN {i} THEN {self._given_sql(rules[i], 'rnk')}" for i in limited)
        # Windows found by a hash of (lead, rule, window): a collision only ranks a window
        # more (its correction is then 0), the count is over both windows' events and the
        # threshold the lower of the two rules', so no window over its slots is missed.
        return f"""
            WITH pyro_earn AS MATERIALIZED (
                SELECT *, hash(lead_id, rule_id, win) AS wk FROM ({joined}))
            SELECT lead_id, ts_us, p AS points FROM pyro_earn
            UNION ALL
            SELECT lead_id, ts_us, CASE rule_id {given} END - p AS points
            FROM (SELECT e.lead_id, e.ts_us, e.rule_id, e.p, row_number() OVER (
                             PARTITION BY e.lead_id, e.rule_id, e.win
                             ORDER BY e.ts_us, e.event_id) - 1 AS rnk
                  FROM pyro_earn e SEMI JOIN (
                      SELECT wk FROM pyro_earn WHERE rule_id IN ({ids}) GROUP BY wk
                      HAVING count(*) > min(CASE rule_id {full} END)) x
                  ON e.wk = x.wk
                  WHERE e.rule_id IN ({ids}))
        """

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
        lines: dict[str, list[EngagementLine]] = defaultdict(list)
        if events is not None:
            rules = self.playbook.engagement
            given = " ".join(
                f"WHEN {i} THEN "
                + (self._given_sql(rule, "rnk") if rule.limited else number_literal(rule.points))
                for i, rule in enumerate(rules)
            )
            factor = self._factor_sql(self._step_sql("ts_us"), as_of_us)
            match = self._load_rules(events, self._raw_names(events))
            joined = self._joined_sql(events, as_of_us, match, lead_filter)
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
        attributes = self._attributes(leads)
        cols = ", ".join(
            f"{where_sql(rule.where, attributes, missing)} AS {quote_ident('r' + str(i))}"
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


def _reuse(sql: str, part: str, column: str) -> tuple[str, bool]:
    """``sql`` with every whole occurrence of the parenthesised expression ``part``
    replaced by ``column`` (not where ``part`` is a function's argument list)."""
    pieces = sql.split(part)
    if len(pieces) == 1:
        return sql, False
    out = pieces[0]
    found = False
    for piece in pieces[1:]:
        if out and (out[-1].isalnum() or out[-1] in "_\"'"):
            out += part + piece
        else:
            out += column + piece
            found = True
    return out, found


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
