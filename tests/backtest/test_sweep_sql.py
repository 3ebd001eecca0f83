"""All as-of times in one SQL pass: the bands of scoring each as-of time separately, and
the same figures as the Python sweep."""

from __future__ import annotations

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
from pyrometer.engines import duckdb_backtest
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect


def by_lead(events: list[Event]) -> list[tuple[str, list[Event]]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.lead_id, []).append(event)
    return sorted(grouped.items())


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60, deadline=None)
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


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60, deadline=None)
@given(
    playbook=playbooks(),
    stream=streams(),
    start_days=st.integers(-5, 30),
    count=st.integers(1, 40),
    horizon_days=st.sampled_from([1, 7, 30]),
    from_file=st.booleans(),
    small_blocks=st.booleans(),
    wins=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "z"]), st.booleans(), st.integers(0, 60)),
        max_size=6,
    ),
)
def test_sql_backtest_counts_what_the_python_sweep_counts(
    playbook, stream, start_days, count, horizon_days, from_file, small_blocks, wins
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
    # Small blocks: bands made 2 leads at a time, gains summed 4 leads at a time.
    sizes = (
        {"CELLS_PER_BLOCK": 2 * count, "GAINED_CELLS": 5 * count}
        if small_blocks
        else {"CELLS_PER_BLOCK": duckdb_backtest.CELLS_PER_BLOCK}
    )
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
