"""A backtest's every as-of time in one SQL pass over the events, then counted as arrays.

An event's earned points (after caps and ``once`` windows) depend on earlier events only,
so they are the same at every as-of time from the event's on: the batch engine gives
them once (:meth:`DuckDBBatchScorer.earned_points_sql`): every event's points as if
nothing were capped, plus the windows ranked only for the leads its cap proof does not
clear and for ``once`` rules. Here they are summed per lead
and *as-of stretch* (the events between two consecutive as-of times), each point scaled
to the last as-of time's decay step; :mod:`pyrometer.backtest.matrix` turns those sums
into every lead's band at every as-of time (a running sum and one scale per as-of time)
and counts them as :meth:`pyrometer.backtest.metrics.Tally.add` does, a block of leads
at a time. Results equal the Python sweep's (:func:`pyrometer.backtest.run.run`), which
stays the reference and the fallback: :func:`run_sql` returns ``None`` for as-of times
that are not evenly spaced or that span more than
:data:`~pyrometer.backtest.matrix.MAX_SPAN_HALF_LIVES` half-lives.

Temperature is all a backtest counts; stages and suppression are not read.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pyrometer.backtest import matrix, numbering
from pyrometer.backtest.metrics import Outcome, Tally, lead_outcomes
from pyrometer.backtest.outcomes import outcome_of_event
from pyrometer.backtest.run import Result
from pyrometer.core.conditions import normalize_name, normalize_record
from pyrometer.core.fit import fit_and_suppression
from pyrometer.core.playbook import Playbook
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, EventTable
from pyrometer.engines.sql_conditions import quote_literal

CELLS_PER_BLOCK = 2_000_000  # leads × as-of times held as arrays at once (~16 MB each)
GAINED_CELLS = 16_000_000  # leads × as-of times of summed gains held at once (128 MB)
THREADS = min(4, os.cpu_count() or 1)  # blocks whose bands are made and counted at once
HASH_NUMBERS = True  # rows numbered by numpy from their lead id's hash (else joined in SQL)
MEMORY_LIMIT = "1GB"  # DuckDB's share while backtesting (it spills beyond); arrays come on top


@dataclass(frozen=True)
class Block:
    """Some leads (in id order) and their band codes at every as-of time."""

    lead_ids: list[str] | None  # only when asked for
    first: matrix.Ints
    codes: Any  # int8 matrix, leads × as-of times
    won: matrix.Ints
    closed: matrix.Ints


def supported(playbooks: Sequence[Playbook], as_of_times: Sequence[int]) -> bool:
    """Whether :func:`run_sql` can take these: evenly spaced as-of times, and a span of
    at most :data:`~pyrometer.backtest.matrix.MAX_SPAN_HALF_LIVES` half-lives."""
    if not as_of_times:
        return False
    gaps = {b - a for a, b in pairwise(as_of_times)}
    if len(gaps) > 1 or any(g <= 0 for g in gaps):
        return False
    for book in playbooks:
        decay = book.decay
        span = decay.step_of(as_of_times[-1]) - decay.step_of(as_of_times[0])
        if span / decay.half_life_steps > matrix.MAX_SPAN_HALF_LIVES:
            return False
    return True


class _Leads:
    """``pyro_bt_leads``: each lead with an event by the last as-of time, numbered
    (``idx``) in the order of its id's hash (``h``; of its id if two leads share one),
    with its first as-of time, and its outcome."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        events: EventTable,
        as_of_times: Sequence[int],
        outcomes: Iterable[Outcome] | None,
        first_book: Playbook,
        per_lead: str | None = None,
    ) -> None:
        self.con = con
        start, last = as_of_times[0], as_of_times[-1]
        every = as_of_times[1] - as_of_times[0] if len(as_of_times) > 1 else 1
        self.every = every
        self.stretch = (
            f"(CASE WHEN {{ts}} <= {start} THEN 0 "
            f"ELSE ({{ts}} - {start} + {every - 1}) // {every} END)"
        )
        won = closed = "CAST(NULL AS BIGINT)"
        ends: list[str] = []
        if outcomes is not None:
            known = lead_outcomes(outcomes)
            con.register(
                "pyro_bt_outcome_rows",
                pa.table(
                    {
                        "lead_id": pa.array(list(known), pa.string()),
                        "won_us": pa.array([o.won_us for o in known.values()], pa.int64()),
                        "closed_us": pa.array([o.closed_us for o in known.values()], pa.int64()),
                    }
                ),
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE pyro_bt_outcomes AS "
                "SELECT * FROM pyro_bt_outcome_rows"
            )
            con.unregister("pyro_bt_outcome_rows")
        else:  # the first playbook's lifecycle events: purchase, won, lost...
            raw = [
                str(r[0])
                for r in con.execute(
                    f"SELECT DISTINCT event FROM {events.sql} WHERE event IS NOT NULL"
                ).fetchall()
            ]
            kinds = {r: outcome_of_event(first_book, normalize_name(r)) for r in raw}
            wins = [quote_literal(r) for r, k in kinds.items() if k == "won"]
            ends = [quote_literal(r) for r, k in kinds.items() if k is not None]
            if wins:
                won = f"min(CASE WHEN event IN ({', '.join(wins)}) THEN ts_us END)"
            if ends:
                closed = f"min(CASE WHEN event IN ({', '.join(ends)}) THEN ts_us END)"
        # Each lead's first event and events (``per_lead`` has them: ``lead_id``, ``n``,
        # ``first_us``), and without a file its outcomes, from the few events that say.
        if per_lead is None:
            per_lead = (
                "(SELECT lead_id, count(*) AS n, min(ts_us) AS first_us "
                f"FROM {events.sql} GROUP BY lead_id)"
            )
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pyro_bt_all AS
            SELECT lead_id, n, first_us, CAST(NULL AS BIGINT) AS won_us,
                   CAST(NULL AS BIGINT) AS closed_us
            FROM {per_lead}
        """)
        if outcomes is None and ends:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE pyro_bt_outcomes AS
                SELECT lead_id, {won} AS won_us, {closed} AS closed_us
                FROM {events.sql} WHERE event IN ({", ".join(ends)}) GROUP BY lead_id
            """)
        if outcomes is not None or ends:
            con.execute("""
                UPDATE pyro_bt_all a SET won_us = o.won_us, closed_us = o.closed_us
                FROM pyro_bt_outcomes o WHERE a.lead_id = o.lead_id
            """)
        counted = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM pyro_bt_all").fetchone()
        assert counted is not None
        self.all_leads, self.all_events = int(counted[0]), int(counted[1])
        # Events find their lead's number by a hash of its id, cheaper than the id, unless
        # two leads share one (for a million, a chance of 3 in 10^8): leads numbered in
        # hash order, so that numpy finds a row's number from its hash alone (no join).
        hashes = con.execute(
            "SELECT count(*) = count(DISTINCT hash(lead_id)) FROM pyro_bt_all "
            f"WHERE first_us <= {last}"
        ).fetchall()
        distinct = bool(hashes[0][0])
        by_hash = distinct and HASH_NUMBERS
        self.number_on = "hash({lead}) = l.h" if distinct else "{lead} = l.lead_id"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pyro_bt_leads AS
            SELECT lead_id, hash(lead_id) AS h,
                   row_number() OVER (ORDER BY {"hash(lead_id)" if distinct else "lead_id"}) - 1
                       AS idx,
                   {self.stretch.format(ts="first_us")} AS first,
                   coalesce(won_us, {matrix.NO_TIME}) AS won_us,
                   coalesce(closed_us, {matrix.NO_TIME}) AS closed_us
            FROM pyro_bt_all WHERE first_us <= {last}
        """)
        got = con.execute(
            "SELECT first, won_us, closed_us, h FROM pyro_bt_leads ORDER BY idx"
        ).fetchnumpy()
        self.hashes = (
            numbering.HashNumbers(np.asarray(got["h"], dtype=np.uint64)) if by_hash else None
        )
        self._ids: list[str] | None = None
        self.first = np.asarray(got["first"], dtype=np.int64)
        self.won = np.asarray(got["won_us"], dtype=np.int64)
        self.closed = np.asarray(got["closed_us"], dtype=np.int64)

    @property
    def ids(self) -> list[str]:
        """The leads' ids by ``idx`` (read when first asked: a million strings)."""
        if self._ids is None:
            rows = self.con.execute("SELECT lead_id FROM pyro_bt_leads ORDER BY idx").fetchall()
            self._ids = [str(row[0]) for row in rows]
        return self._ids

    def fits(self, book: Playbook, attributes: Mapping[str, Mapping[str, Any]]) -> matrix.Floats:
        """Each lead's fit under ``book``, as :func:`pyrometer.backtest.sweep.sweep_lead`
        computes it (the attributes are in memory already)."""
        fits, _ = fit_and_suppression(book, {})
        default = sum(line.points for line in fits)
        out = np.full(len(self.first), default, dtype=np.float64)
        if attributes:
            position = {lead: i for i, lead in enumerate(self.ids)}
            for lead, record in attributes.items():
                i = position.get(lead)
                if i is not None and record:
                    fits, _ = fit_and_suppression(book, normalize_record(dict(record)))
                    out[i] = sum(line.points for line in fits)
        return out


def _jobs(
    con: duckdb.DuckDBPyConnection,
    book: Playbook,
    events: EventTable,
    leads: _Leads,
    attributes: Mapping[str, Mapping[str, Any]],
    as_of_times: Sequence[int],
    with_ids: bool,
    proven: str | None,
) -> Iterator[_Job]:
    """:func:`blocks`' blocks, their bands not made yet."""
    decay = book.decay
    steps = [decay.step_of(t) for t in as_of_times]
    scorer = DuckDBBatchScorer(book, con)
    rows, capped, corrections = scorer.earned_points_sql(events, as_of_times[-1])
    # The leads whose windows may earn less than their events' points, by the cap proof
    # (over all their events, if proven already: more events can only make it fail).
    if proven is not None:
        capped = f"SELECT hash(lead_id) AS h FROM {proven} WHERE redo"
    con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_bt_redo AS {capped}")
    redo = bool(con.execute("SELECT count(*) FROM pyro_bt_redo").fetchall()[0][0])
    # One row per event earning points as if nothing were capped, by lead number; then
    # the few rows to add: the `once` rules' points, and what caps take back in the
    # windows of the leads the proof does not clear. Fetched as Arrow.
    # Each row's as-of stretch (k) and its decay step from the last as-of time's (ds).
    when = (
        f"CAST({leads.stretch.format(ts='ts_us')} AS INTEGER) AS k, "
        f"CAST(greatest(pyro_fdiv(ts_us, {decay.step_us}) - {steps[-1]}, -1000000000) "
        "AS INTEGER) AS ds, CAST(points AS DOUBLE) AS points"
    )
    number_on = leads.number_on.format(lead="e.lead_id")
    by_hash = leads.hashes is not None
    if by_hash:  # each row's lead id hashed, its number found by numpy below
        got = _arrow(con.sql(f"SELECT hash(e.lead_id) AS lead, {when} FROM ({rows}) e"))
    else:
        got = _arrow(
            con.sql(f"""
                SELECT CAST(l.idx AS INTEGER) AS lead, {when}
                FROM ({rows}) e JOIN pyro_bt_leads l ON {number_on}
            """)
        )
    lead, k, ds, points = (got.column(c).to_numpy() for c in ("lead", "k", "ds", "points"))
    del got
    added_sql = corrections(
        "pyro_bt_redo" if redo else None,
        lambda wanted: (
            f"(SELECT e.* REPLACE (l.idx AS lead_id) FROM {wanted} e "
            f"JOIN pyro_bt_leads l ON {number_on})"
        ),
    )
    # The rows to add are read by DuckDB while numpy numbers the rows (it lets go of the
    # GIL for both); nothing else uses the connection meanwhile.
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(
            lambda: _arrow(
                con.sql(f"SELECT CAST(lead_id AS INTEGER) AS lead, {when} FROM ({added_sql})")
            )
        )
        if by_hash:
            assert leads.hashes is not None
            lead, found = leads.hashes.numbers(lead)
            if not found.all():  # a lead without an event by the last as-of time: none
                lead, k, ds, points = lead[found], k[found], ds[found], points[found]
            del found
        added = reading.result()
    if added.num_rows:
        lead, k, ds, points = (
            np.concatenate([old, added.column(c).to_numpy()])
            for old, c in ((lead, "lead"), (k, "k"), (ds, "ds"), (points, "points"))
        )
    del added
    # Decayed and summed per cell (lead and as-of time) by numpy, not hashed in SQL: the
    # (lead, stretch) groups are nearly as many as the events (30 events a lead over 180
    # days fall on ~28 days).
    n = len(as_of_times)
    value = points * _decayed(ds, decay.half_life_steps)
    del points, ds
    fit = leads.fits(book, attributes)
    scale = matrix.scales(steps, decay.half_life_steps)
    hot, warm = book.temperature.hot, book.temperature.warm
    total = len(leads.first)
    size = max(1, CELLS_PER_BLOCK // n)  # leads whose bands are made at once
    group = max(size, GAINED_CELLS // n // size * size)  # leads whose gains are summed at once
    cells = np.asarray(lead, dtype=np.int64) * n + k
    del lead, k
    offsets = [0, len(cells)]
    if total > group:
        # The rows by group of leads, each group's in their order (a stable radix sort of
        # small numbers), so that each cell adds up as in one pass.
        groups = -(-total // group)
        number = cells // (group * n)
        order = np.argsort(number.astype(np.int16 if groups < 1 << 15 else np.int64), kind="stable")
        offsets = [0, *np.cumsum(np.bincount(number, minlength=groups)).tolist()]
        del number
        cells, value = cells[order], value[order]
        del order
    for g, start in enumerate(range(0, total, group)):
        end = min(start + group, total)
        lo, hi = offsets[g], offsets[g + 1]
        gained = matrix.gains(cells[lo:hi] - start * n, value[lo:hi], end - start, n)
        for a in range(start, end, size):
            b = min(a + size, end)
            yield _Job(
                leads.ids[a:b] if with_ids else None,
                leads.first[a:b],
                fit[a:b],
                gained[a - start : b - start],
                scale,
                hot,
                warm,
                leads.won[a:b],
                leads.closed[a:b],
            )
        del gained


def blocks(
    con: duckdb.DuckDBPyConnection,
    book: Playbook,
    events: EventTable,
    leads: _Leads,
    attributes: Mapping[str, Mapping[str, Any]],
    as_of_times: Sequence[int],
    with_ids: bool = False,
    proven: str | None = None,
) -> Iterator[Block]:
    """Every lead's bands under ``book`` at ``as_of_times``, a block of leads at a time.
    ``proven``: a table of leads (``lead_id``) with ``book``'s cap proof over all their
    events (``redo``: it fails), as :func:`pyrometer.io.history.open_history` makes it."""
    for job in _jobs(con, book, events, leads, attributes, as_of_times, with_ids, proven):
        yield job.block()


@dataclass(frozen=True)
class _Job:
    """A block of leads whose bands are still to be made (:meth:`block`)."""

    lead_ids: list[str] | None
    first: matrix.Ints
    fit: matrix.Floats
    gained: matrix.Floats
    scale: matrix.Floats
    hot: float
    warm: float
    won: matrix.Ints
    closed: matrix.Ints

    def block(self) -> Block:
        codes = matrix.bands(self.first, self.fit, self.gained, self.scale, self.hot, self.warm)
        return Block(self.lead_ids, self.first, codes, self.won, self.closed)

    def tally(self, like: Tally) -> Tally:
        """The block's leads counted in a tally of their own (as ``like`` counts)."""
        block = self.block()
        own = Tally(like.as_of_times, {}, like.horizon_us, like.capacity_per_day)
        matrix.tally_bands(own, block.first, block.codes, block.won, block.closed)
        return own


def _tally_all(tally: Tally, jobs: Iterable[_Job], threads: int) -> None:
    """Every job's block made and counted into ``tally``, ``threads`` blocks at a time
    (numpy lets go of the GIL for its loops over a block's cells), in the jobs' order.
    At most ``threads + 1`` blocks are in flight, so memory stays near one thread's."""
    if threads <= 1:  # counted straight into ``tally``: no tally of its own per block
        for job in jobs:
            block = job.block()
            matrix.tally_bands(tally, block.first, block.codes, block.won, block.closed)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[Tally]] = deque()
        for job in jobs:
            pending.append(pool.submit(job.tally, tally))
            while len(pending) > threads:
                tally.merge(pending.popleft().result())
        while pending:
            tally.merge(pending.popleft().result())


def _decayed(ds: npt.NDArray[np.int32], half_life_steps: float) -> matrix.Floats:
    """``2 ** (ds / H)`` for every row: computed once per decay step and looked up, the
    same numbers (a backtest's events span some hundred steps, not millions)."""
    if not len(ds):
        return np.zeros(0)
    low, high = int(ds.min()), int(ds.max())
    if high - low > min(len(ds), 1_000_000):
        return np.asarray(np.exp2(ds / half_life_steps), dtype=np.float64)
    return np.asarray(np.exp2(np.arange(low, high + 1) / half_life_steps)[ds - low])


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation's rows as an Arrow table (DuckDB 2 and 1)."""
    return (getattr(relation, "to_arrow_table", None) or relation.arrow)()


def run_sql(
    con: duckdb.DuckDBPyConnection,
    playbooks: Sequence[tuple[str, Playbook]],
    events: EventTable,
    attributes: Mapping[str, Mapping[str, Any]],
    outcomes: Iterable[Outcome] | None,
    as_of_times: Sequence[int],
    horizon_us: int,
    capacity_per_day: float | None = None,
    progress: Callable[[str], None] | None = None,
    per_lead: str | None = None,
    proven: Playbook | None = None,
) -> Result | None:
    """What :func:`pyrometer.backtest.run.run` gives for the same history (``events``
    distinct, ids in normal form, as :func:`pyrometer.io.history.open_history` opens
    them), or ``None`` when :func:`supported` says no. ``per_lead``: a table of each lead's
    events and first time already counted (:attr:`pyrometer.io.history.History.per_lead`);
    ``proven``: the playbook whose cap proof that table's ``redo`` holds
    (:attr:`~pyrometer.io.history.History.proven`), which need not be proven again."""
    if not playbooks:
        raise ValueError("no playbook to backtest")
    if not supported([book for _, book in playbooks], as_of_times):
        return None
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        say("Reading leads and outcomes")
        leads = _Leads(con, events, as_of_times, outcomes, playbooks[0][1], per_lead)
        metrics = []
        for name, book in playbooks:
            say(f"Scoring {name} at {len(as_of_times)} as-of times")
            tally = Tally(as_of_times, {}, horizon_us, capacity_per_day)
            mine = per_lead if proven is not None and book is proven else None
            jobs = _jobs(con, book, events, leads, attributes, as_of_times, False, mine)
            _tally_all(tally, jobs, THREADS)
            metrics.append(tally.result())
    finally:
        if row is not None:
            con.execute(f"SET memory_limit = {quote_literal(str(row[0]))}")
    return Result(
        names=tuple(name for name, _ in playbooks),
        metrics=tuple(metrics),
        as_of_times=tuple(as_of_times),
        horizon_us=horizon_us,
        leads=leads.all_leads,
        events=leads.all_events,
        outcomes_from="events" if outcomes is None else "file",
        seconds=time.perf_counter() - started,
    )
