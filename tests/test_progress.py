"""One progress bar across the phases of a run: it fills once and never moves back."""

from __future__ import annotations

import itertools
import re

import pytest
from conftest import event_table, lead_table
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.cli.commands import SCORE_PHASES
from pyrometer.cli.progress import PhaseBar
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook
from pyrometer.core.timeutil import to_us
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect

# A run: phases in order (some skipped), each with its statements' progress reports,
# which DuckDB starts again at 0 for each statement (-1: no statement running).
statements = st.lists(
    st.lists(st.floats(min_value=-1, max_value=100), min_size=1, max_size=6), max_size=4
)


@given(
    weights=st.lists(st.floats(min_value=0.01, max_value=10), min_size=1, max_size=6),
    data=st.data(),
)
def test_the_bar_only_moves_forward_and_ends_full(weights: list[float], data) -> None:
    phases = {f"phase {i}": w for i, w in enumerate(weights)}
    bar = PhaseBar(phases)
    ran = sorted(
        data.draw(st.sets(st.sampled_from(list(phases)), min_size=1)), key=list(phases).index
    )
    shown = [0.0]
    for name in ran:
        bar.enter(name)
        shown.append(bar.shown)
        for statement in data.draw(statements):
            shown.extend(bar.at(percent) for percent in statement)
    assert all(b >= a for a, b in itertools.pairwise(shown))
    assert all(0 <= s <= 100 + 1e-9 for s in shown)
    if ran[-1] == list(phases)[-1]:
        assert bar.at(100) == pytest.approx(100)


def test_slices_of_a_phase_share_it() -> None:
    bar = PhaseBar({"Reading": 1, "Scoring events": 2, "Classifying": 1})
    bar.enter("Reading")
    assert bar.at(100) == pytest.approx(25)
    bar.enter("Scoring events (1/2)")
    assert bar.at(50) == pytest.approx(37.5)
    assert bar.at(0) == pytest.approx(37.5)  # the next statement starts at 0: the bar holds
    bar.enter("Scoring events (2/2)")
    assert bar.at(100) == pytest.approx(75)
    bar.enter("something new")  # unknown: relabels only
    assert bar.description == "something new" and bar.at(0) == pytest.approx(75)
    bar.enter("Classifying")
    assert bar.at(100) == pytest.approx(100)


@pytest.mark.parametrize("slices", [1, 3])
def test_every_stage_the_scorer_reports_is_a_phase_of_the_bar(slices: int) -> None:
    """A stage the bar does not know would hold it still for that stage's whole time."""
    con = connect()
    as_of = to_us("2026-11-23T00:00:00Z")
    events = [
        Event.create(f"l{i % 7}", name, as_of - i * 3_600_000_000, f"e{i}")
        for i, name in enumerate(["page_view", "demo_request", "pricing_page_view"] * 10)
    ]
    stages: list[str] = []
    scorer = DuckDBBatchScorer(default_playbook(), con, slices=slices)
    relation = scorer.score_relation(
        event_table(con, events),
        lead_table(con, {"l1": {"job_title": "CEO"}}),
        as_of,
        progress=stages.append,
    )
    relation.fetchall()
    assert stages
    for stage in stages:
        name = re.sub(r" \(\d+/\d+\)$", "", stage)
        assert name in SCORE_PHASES, stage
