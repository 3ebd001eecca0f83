"""All as-of times in one SQL pass: the bands of scoring each as-of time separately, and
the same figures as the Python sweep."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

from conftest import event_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_equivalence import DAY_US, START_US, playbooks, streams

from pyrometer.backtest.matrix import CODES_TO_BANDS
from pyrometer.backtest.metrics import Outcome
from pyrometer.backtest.run import run
from pyrometer.backtest.sweep import as_of_grid
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import parse_time_us
from pyrometer.engines import duckdb_backtest
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
from pyrometer.io.history import iter_leads, open_history


def by_lead(events: list[Event]) -> list[tuple[str, list[Event]]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.lead_id, []).append(event)
    return sorted(grouped.items())


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25, deadline=None)
@given(
    playbook=playbooks(),
    stream=streams(),
    start_days=st.integers(-5, 30),
    every=st.sampled_from([DAY_US // 3, DAY_US, 4 * DAY_US]),
    count=st.integers(1, 40),
)
def test_sql_sweep_equals_scoring_each_as_of_time_separately(
    playbook, stream, start_days, every, count
) -> None:
    events, leads = stream
    start = START_US + start_days * DAY_US
    times = as_of_grid(start, start + (count - 1) * every, every)
    con = connect()
    bands: dict[str, str] = {}
    if events:
        table = DuckDBBatchScorer(playbook, con).distinct(event_table(con, events))
        known = duckdb_backtest._Leads(con, table, times, [], playbook)
        for block in duckdb_backtest.blocks(con, playbook, table, known, leads, times, True):
            assert block.lead_ids is not None
            for i, lead in enumerate(block.lead_ids):
                first = int(block.first[i])
                bands[lead] = "".join(
                    CODES_TO_BANDS[int(c)] for c in block.codes[i, first:].tolist()
                )
    for step, as_of in enumerate(times):
        expected = score_reference(playbook, events, leads, as_of)
        observed = {lead for lead, b in bands.items() if len(b) > len(times) - 1 - step}
        assert observed == {lead for lead, s in expected.items() if s.event_count > 0}
        for lead in observed:
            got = bands[lead][step - (len(times) - len(bands[lead]))]
            assert got == str(expected[lead].temperature)[0], (lead, as_of)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25, deadline=None)
@given(
    playbook=playbooks(),
    stream=streams(),
    start_days=st.integers(-5, 30),
    count=st.integers(1, 40),
    horizon_days=st.sampled_from([1, 7, 30]),
    from_file=st.booleans(),
    small_blocks=st.booleans(),
    by_hash=st.booleans(),
    threads=st.sampled_from([1, 3]),
    wins=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "z"]), st.booleans(), st.integers(0, 60)),
        max_size=6,
    ),
)
def test_sql_backtest_counts_what_the_python_sweep_counts(
    playbook,
    stream,
    start_days,
    count,
    horizon_days,
    from_file,
    small_blocks,
    by_hash,
    threads,
    wins,
) -> None:
    events, leads = stream
    if not events:
        return
    start = START_US + start_days * DAY_US
    times = as_of_grid(start, start + (count - 1) * DAY_US, DAY_US)
    outcomes = (
        [Outcome(lead, "won" if won else "lost", START_US + d * DAY_US) for lead, won, d in wins]
        if from_file
        else None
    )
    books = [("a", playbook), ("default", default_playbook())]
    want = run(books, by_lead(events), leads, outcomes, times, horizon_days * DAY_US, 2.0)
    con = connect()
    table = DuckDBBatchScorer(playbook, con).distinct(event_table(con, events))
    # Small blocks: bands made 2 leads at a time, gains summed 4 leads at a time. Rows
    # numbered by numpy from their lead's hash, or joined to their lead in SQL (as when
    # two leads share a hash). Blocks counted on one thread or on several.
    sizes: dict[str, object] = (
        {"CELLS_PER_BLOCK": 2 * count, "GAINED_CELLS": 5 * count}
        if small_blocks
        else {"CELLS_PER_BLOCK": duckdb_backtest.CELLS_PER_BLOCK}
    )
    sizes["HASH_NUMBERS"] = by_hash
    sizes["THREADS"] = threads
    with patch.multiple(duckdb_backtest, **sizes):
        got = duckdb_backtest.run_sql(
            con, books, table, leads, outcomes, times, horizon_days * DAY_US, 2.0
        )
    assert got is not None
    assert (got.leads, got.events, got.outcomes_from) == (
        want.leads,
        want.events,
        want.outcomes_from,
    )
    assert got.metrics == want.metrics


def test_uneven_as_of_times_are_left_to_the_python_sweep() -> None:
    book = default_playbook()
    assert duckdb_backtest.supported([book], [0, DAY_US, 2 * DAY_US])
    assert not duckdb_backtest.supported([book], [0, DAY_US, 3 * DAY_US])
    # 600 half-lives of 30 days: 2 ** 600 would lose the small points' precision.
    assert not duckdb_backtest.supported([book], as_of_grid(0, 600 * 30 * DAY_US, DAY_US))


def test_the_cap_proof_made_when_the_history_is_opened_gives_the_same_figures(
    tmp_path: Path,
) -> None:
    # Leads whose page views bind the daily cap (the proof fails for them) and leads whose
    # do not, from a file as `pyrometer backtest` opens it.
    rows = ["lead_id,event,timestamp,url"]
    for lead in range(40):
        for day in range(20):
            views = 1 + (lead * 7 + day) % (9 if lead % 3 else 2)
            for v in range(views):
                rows.append(f"l{lead},page_view,2026-09-{1 + day:02d}T{8 + v:02d}:00:00Z,/docs")
        rows.append(f"l{lead},newsletter_signup,2026-09-0{1 + lead % 5}T07:00:00Z,")
        rows.append(f"l{lead},newsletter_signup,2026-09-0{2 + lead % 5}T07:00:00Z,")
        if lead % 4 == 0:
            rows.append(f"l{lead},purchase,2026-09-{15 + lead % 10}T09:00:00Z,")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    book = default_playbook()
    first = parse_time_us("2026-09-03T00:00:00Z")
    times = as_of_grid(first, first + 29 * DAY_US, DAY_US)
    got = {}
    for proven in (True, False):
        con = connect()
        history = open_history(con, book, path, None)
        assert history.proven is book
        redo = con.execute("SELECT count(*) FILTER (WHERE redo), count(*) FROM pyro_bt_ids")
        assert 0 < redo.fetchall()[0][0] < 40
        got[proven] = duckdb_backtest.run_sql(
            con,
            [("default", book)],
            history.events,
            {},
            None,
            times,
            30 * DAY_US,
            per_lead=history.per_lead,
            proven=history.proven if proven else None,
        )
    assert got[True] is not None and got[False] is not None
    assert got[True].metrics == got[False].metrics
    (metrics,) = got[True].metrics
    assert metrics.observations > 0 and metrics.won_leads > 0
    con = connect()
    history = open_history(con, book, path, None)
    want = run([("default", book)], list(iter_leads(con, history)), {}, None, times, 30 * DAY_US)
    assert got[True].metrics == want.metrics
