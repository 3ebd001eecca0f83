"""Pass 1 on DuckDB: the plan's key table as two small tables and one hash aggregate.

Every event joins ``pyro_names`` on its raw name alone, which DuckDB answers from the
file's dictionary of names, and gets the name's ``base`` key. The property conditions are
evaluated on every row, once each, and set bits of the key; ``pyro_keys`` then holds, per
key, the points, bins and count of such an event (:mod:`pyrometer.engines.plan.keys`). So
no ``CASE`` runs per row, except for the plan's branches. Where it loads, the aggregate is
pyrometer's C function instead (:mod:`pyrometer.engines.native`), given the key table as
a text spec; it also takes pass 2a's rare events when their meaning follows from the name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyrometer.core.playbook import Decay
from pyrometer.engines import native as native_ext
from pyrometer.engines.cap_proof import ProofLayout, RuleBins
from pyrometer.engines.duckdb.sql import (
    factor_sql,
    match_sql,
    number_literal,
    one_of,
    quote_literal,
    step_sql,
)
from pyrometer.engines.plan.keys import (
    TALLY_AT,
    Binned,
    ConditionsBranch,
    KeyTable,
    SharedBranch,
)

NAMES_DDL = (
    "CREATE OR REPLACE TEMP TABLE pyro_names (raw_event VARCHAR, base INTEGER, "
    "rare BOOLEAN, stage VARCHAR, suppress BOOLEAN, bad BOOLEAN)"
)
KEYS_DDL = (
    "CREATE OR REPLACE TEMP TABLE pyro_keys (k INTEGER, br INTEGER, pts DOUBLE, "
    "count BIGINT, width INTEGER, bins INTEGER, win_us BIGINT, one BIGINT, word INTEGER)"
)


@dataclass(frozen=True)
class Pass1:
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
    once_points: tuple[float, ...] = ()
    """Points of the ``once`` rules, by the index of their first time (``o0``, ``o1``...)
    in the native aggregate's result."""


def name_rows(table: KeyTable) -> list[tuple]:
    """``pyro_names``' rows."""
    return [(n.raw, n.base, n.rare, n.stage, n.suppress, n.bad) for n in table.names]


def key_rows(table: KeyTable) -> list[tuple]:
    """``pyro_keys``' rows: a key with one capped rule carries its bin; otherwise none."""
    rows = []
    for key in table.keys:
        width, nbins, win_us, one, word = 0, 1, None, 0, -1
        if len(key.binned) == 1:
            bins = key.binned[0].bins
            width, nbins, word, one = bins.width, bins.bins, bins.word, 1 << bins.offset
            win_us = key.binned[0].window_us
        rows.append((key.k, key.branch, key.points, key.count, width, nbins, win_us, one, word))
    return rows


def _native_keys(table: KeyTable, native_rare: bool) -> list[str]:
    """Per key, the native aggregate's spec of it (see :attr:`Pass1.native_keys`)."""
    out = []
    for name in table.names:
        meaning = (
            f"{table.stages.index(name.stage) if name.stage is not None else -1} "
            f"{int(name.suppress)} {name.once_mask}"
            if native_rare
            else "-1 0 0"
        )
        for k in range(name.base, name.base + (1 << table.key_bits)):
            key = table.keys[k]
            assert key.k == k and key.points is not None
            out.append(
                " ".join(
                    [str(native_ext.double_bits(key.points)), str(key.count), meaning]
                    + [str(len(key.binned))]
                    + [
                        f"{b.bins.word} {1 << b.bins.offset} {b.bins.width} {b.bins.bins} "
                        f"{b.window_us or 0}"
                        for b in key.binned
                    ]
                )
            )
    return out


def _unit_sql(bins: RuleBins, window_expr: str) -> str:
    """SQL for what one event of a rule adds to its word, in window ``window_expr``."""
    return (
        f"((CAST(1 AS BIGINT) << ({bins.offset} + {bins.width} * "
        f"CAST(pyro_fmod({window_expr}, {bins.bins}) AS INTEGER))))"
    )


def compile_pass1(
    table: KeyTable, properties: Mapping[str, str], nonnegative: bool, native: bool
) -> Pass1:
    """Pass 1's SQL for the key table: the event's points if nothing were capped, what it
    adds to its proof word, and its count. ``nonnegative``: no event is older than 1970,
    so plain integer division floors. ``native``: the C aggregate loaded."""
    layout = table.layout
    step_us = table.step_us
    shared = table.shared_window

    def div(expr: str, by: int | str) -> str:
        return f"({expr} // {by})" if nonnegative else f"pyro_fdiv({expr}, {by})"

    def window(window_us: int | None) -> str:
        if window_us is None:
            return "0"
        if window_us == step_us:
            return "step"
        return "win" if window_us == shared else div("ts_us", window_us)

    def unit(binned: Binned) -> str:
        return _unit_sql(binned.bins, window(binned.window_us))

    # branch id -> (points, word additions, count) of events that cannot read them from
    # their key's row
    branches: dict[int, tuple[str, list[str], str]] = {}
    for k, branch in table.branches.items():
        if isinstance(branch, SharedBranch):
            words = [
                " + ".join(unit(b) for b in branch.binned if b.bins.word == w) or "0"
                for w in range(layout.words)
            ]
            branches[k] = ("pts", words, str(branch.count))
        else:
            branches[k] = _conditions_branch(branch, layout, unit)

    once_rules = table.once_rules
    native_rare = len(once_rules) <= native_ext.MAX_ONCE and table.once_by_name
    # None: pass 1 runs in SQL (the native pass did not load, keeps fewer words, or would
    # get a spec of megabytes where the SQL pass joins a table instead).
    native_keys = (
        _native_keys(table, native_rare)
        if native
        and table.keyed
        and layout.words <= native_ext.MAX_WORDS
        and len(table.names) << table.key_bits <= native_ext.MAX_KEYS
        else None
    )

    if shared == step_us:
        generic_window = "step"
    elif not table.windows:
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
    # Per row, after the join on the name: each condition, then the key. Conditions in the
    # key are evaluated on every row (a name that does not use one has the same constants
    # for either value); the others only for the names that use them.
    columns = []
    for cond in table.conditions:
        sql = match_sql(cond.reads, properties)
        bit = cond.bit
        if cond.slot is not None:
            columns.append(f"coalesce({sql}, FALSE) AS c{bit}")
        elif cond.keyed:
            # Only for branches and later conditions that read it: otherwise unused.
            of = cond.negates
            assert of is not None
            columns.append(
                f"NOT c{of} AS c{bit}" if of < bit else f"coalesce({sql}, FALSE) AS c{bit}"
            )
        else:
            columns.append(
                f"CASE WHEN {one_of('e.event', sorted(cond.users))} "
                f"THEN coalesce({sql}, FALSE) END AS c{bit}"
            )
    slots = [(c.bit, c.slot) for c in table.conditions if c.slot is not None]
    bits = [f"CAST(c{bit} AS INTEGER) * {1 << i}" for bit, i in slots]
    # The bits are free in the name's base, so `|` gives the same key as `+`. Joined on
    # (SQL), `+` is cheaper: DuckDB knows the key's range. Not joined (native), `|` is:
    # DuckDB checks every `+` for overflow (5 % of the native pass 1's instructions).
    native_key = (
        " | ".join(
            ["n.base"]
            + [
                f"(CAST(c{bit} AS INTEGER) * {1 << i})" if i else f"CAST(c{bit} AS INTEGER)"
                for bit, i in slots
            ]
        )
        + " AS k"
    )
    columns.append(" + ".join(["n.base", *bits]) + " AS k")
    after = [f"{div('ts_us', step_us)} AS step"]
    if shared is not None and shared != step_us:
        after.append(f"{div('ts_us', shared)} AS win")
    bin_sql = f"({generic_window} % bins)" if nonnegative else f"pyro_fmod({generic_window}, bins)"
    # The bin of the event's one capped rule, as what it adds to its word.
    after.append(f"one << (width * CAST({bin_sql} AS INTEGER)) AS unit")
    return Pass1(
        columns,
        native_key,
        after,
        per_row(lambda b: b[0], "pts"),
        words,
        per_row(lambda b: b[2], "count"),
        layout,
        native_keys,
        native_rare,
        table.stages,
        table.once_points,
    )


def _conditions_branch(
    branch: ConditionsBranch, layout: ProofLayout, unit: Callable[[Binned], str]
) -> tuple[str, list[str], str]:
    """Points, word additions and count of an event of a name with many conditions,
    computed on the row from the condition columns."""

    def when(condition: int | None, then: str, otherwise: str) -> str:
        if condition is None:
            return then
        return f"(CASE WHEN c{condition} THEN {then} ELSE {otherwise} END)"

    terms = branch.terms
    pts = " + ".join(
        when(t.condition, f"CAST({number_literal(t.points)} AS DOUBLE)", "0.0") for t in terms
    )
    words = []
    for w in range(layout.words):
        parts = [
            when(t.condition, unit(t.binned), "0")
            for t in terms
            if t.binned is not None and t.binned.bins.word == w
        ]
        words.append(" + ".join(parts) if parts else "0")
    units = [when(t.condition, "1", "0") for t in terms if t.binned is not None]
    count = f"(1 + (CAST({' + '.join(units)} AS BIGINT) << {TALLY_AT}))" if units else "1"
    return pts or "CAST(0.0 AS DOUBLE)", words, count


def per_lead_sql(
    events_sql: str,
    decay: Decay,
    as_of_us: int,
    compiled: Pass1,
    lead_filter: str,
    lead: str = "e.lead_id",
    extra: Mapping[str, str] | None = None,
) -> str:
    """Pass 1: one hash aggregate per lead, not much dearer than a plain decayed sum.

    Per lead: decayed points as if nothing were capped, events, latest activity, and the
    cap proof's words (:mod:`pyrometer.engines.cap_proof`). ``redo`` marks the leads the
    proof does not clear; ``invalid`` the leads with a bad row (no time, blank name: their
    points are NaN) or without an id. The native aggregate, when used, also gives pass
    2a's columns when it can (``compiled.native_rare``). ``lead``: what to group by and
    give as ``lead_id`` (then ``invalid`` only counts rows), the lead id by default;
    ``extra``: more per-lead columns, by name, each an aggregate over the rows (``ts_us``...).
    """
    more = "".join(f", {sql} AS {name}" for name, sql in (extra or {}).items())
    kept = "".join(f", {name}" for name in (extra or {}))
    layout = compiled.layout
    proven = _proven_sql(layout)
    events_count = f"CAST(counted & {(1 << TALLY_AT) - 1} AS BIGINT)"
    rare = ""  # the rare events' columns, when the native aggregate takes them
    native = compiled.native_keys is not None
    columns = [*compiled.columns[:-1], compiled.native_key] if native else compiled.columns
    rows = _rows_sql(events_sql, columns, f"(e.ts_us <= {as_of_us} OR e.ts_us IS NULL)", lead)
    rows += f" {lead_filter}"
    if compiled.native_keys is not None:
        # The same per-lead columns from one C aggregate, which looks the key up itself.
        spec = " ".join(
            [
                str(decay.step_us),
                str(decay.step_of(as_of_us)),
                str(native_ext.double_bits(decay.half_life_steps)),
                str(len(compiled.native_keys)),
                str(len(compiled.once_points)),
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
            # Pass 2a's columns, as pass2.rare_sql computes them.
            stages = ", ".join(quote_literal(stage) for stage in compiled.stages)
            once = "".join(
                f" + coalesce({number_literal(points)} * "
                f"{factor_sql(decay, step_sql(decay, f'a.o{j}'), as_of_us)}, 0.0)"
                for j, points in enumerate(compiled.once_points)
            )
            parts += (
                f", {f'[{stages}][a.stage + 1]' if stages else 'CAST(NULL AS VARCHAR)'} "
                f"AS explicit_stage, a.tie AS tie, a.suppressed AS suppressed_by_event, "
                f"0.0{once} AS once_points"
            )
            rare = ", explicit_stage, tie, suppressed_by_event, once_points"
        per_lead = f"""
                SELECT lead_id, {parts}{kept}
                FROM (
                    SELECT lead_id, {native_ext.FUNCTION}(k, ts_us, '{spec}') AS a{more}
                    FROM ({rows})
                    GROUP BY lead_id
                )
            """
    else:
        factor = factor_sql(decay, "step", as_of_us)
        sums = "".join(f", {v} AS x{w}" for w, v in enumerate(compiled.words))
        per_lead = f"""
                SELECT lead_id,
                       sum(({compiled.points}) * {factor}) AS engagement{sums},
                       sum({compiled.count}) AS counted, max(ts_us) AS last_us,
                       count(ts_us) AS timed{more}
                FROM ({_keyed_sql(rows, compiled)})
                GROUP BY lead_id
            """
    no_id = "lead_id IS NULL OR lead_id = '' OR " if lead == "e.lead_id" else ""
    return f"""
            SELECT lead_id, coalesce(engagement, 0.0) AS engagement,
                   {events_count} AS events, last_us,
                   {no_id}isnan(engagement)
                       OR timed < {events_count} AS invalid,
                   NOT {proven} AS redo{rare}{kept}
            FROM ({per_lead})
        """


def _proven_sql(layout: ProofLayout) -> str:
    """Whether a lead's summed words (``x0``...) and ``counted`` pass the cap proof."""
    return layout.proven_sql(
        [f"coalesce(x{w}, CAST(0 AS HUGEINT))" for w in range(layout.words)],
        f"(counted >> {TALLY_AT})",
    )


def _rows_sql(events_sql: str, columns: list[str], where: str, lead: str = "e.lead_id") -> str:
    """Pass 1's rows: every event joined to its name, with its conditions and key."""
    return f"""
            SELECT {lead} AS lead_id, e.event, e.ts_us, {", ".join(columns)}
            FROM {events_sql} e JOIN pyro_names n ON e.event = n.raw_event
            WHERE {where}
        """


def _keyed_sql(rows: str, compiled: Pass1) -> str:
    """``rows`` joined to their key's constants (``pyro_keys``), with step and unit."""
    return f"""
            SELECT e.* EXCLUDE (k), k.* EXCLUDE (k), {", ".join(compiled.after)}
            FROM ({rows}) e JOIN pyro_keys k ON e.k = k.k
        """


def earned_rows_sql(events_sql: str, until_us: int, compiled: Pass1) -> str:
    """For backtests: every event up to ``until_us`` that earns points as if nothing were
    capped (the points of ``once`` rules aside: pass 2a's), as rows (``lead_id``,
    ``ts_us``, ``points``); :func:`per_lead_sql`'s ``redo`` says which leads' windows
    may earn less."""
    rows = _rows_sql(events_sql, compiled.columns, f"e.ts_us <= {until_us}")
    return f"""
            SELECT lead_id, ts_us, points
            FROM (SELECT lead_id, ts_us, CAST({compiled.points} AS DOUBLE) AS points
                  FROM ({_keyed_sql(rows, compiled)}))
            WHERE points <> 0
        """
