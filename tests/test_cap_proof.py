"""The cap proof: a lead is cleared exactly when no bin counts more than its rule's full."""

from __future__ import annotations

from collections import Counter

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.engines.cap_proof import MAX_BINS, WORD_BITS, LimitedRule, ProofLayout


@st.composite
def layouts(draw: st.DrawFn) -> ProofLayout:
    n = draw(st.integers(1, 12))
    rules = [
        LimitedRule(
            rule_id=i,
            full=draw(st.integers(0, 9)),
            windowed=draw(st.booleans()),
            weight=draw(st.sampled_from([0.0, 1.0, 3.0, 40.0])),
        )
        for i in range(n)
    ]
    return ProofLayout.plan(rules, words=draw(st.integers(1, 3)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[ProofLayout, list[tuple[int, int]]]:
    """A layout and one lead's capped events as (rule id, window number)."""
    layout = draw(layouts())
    events = draw(
        st.lists(
            st.tuples(
                st.sampled_from([r.rule_id for r in layout.rules]),
                st.integers(-3, 200),
            ),
            max_size=300,
        )
    )
    return layout, events


def words_of(layout: ProofLayout, events: list[tuple[int, int]]) -> list[int]:
    totals = [0] * layout.words
    for rule_id, window in events:
        bins = layout.of(rule_id)
        assert bins is not None
        totals[bins.word] += bins.unit(window % bins.bins if bins.bins > 1 else 0)
    return totals


@settings(max_examples=300)
@given(layouts())
def test_layout_fits_its_words(layout: ProofLayout) -> None:
    for word in range(layout.words):
        members = sorted(layout.in_word(word), key=lambda r: r.offset)
        end = 0
        for rule in members:
            assert rule.offset >= end
            assert 1 <= rule.bins <= MAX_BINS
            assert (1 << rule.width) - 1 >= rule.full
            end = rule.offset + rule.width * rule.bins
        assert end <= WORD_BITS


@settings(max_examples=500)
@given(cases())
def test_proof_holds_exactly_when_no_bin_is_over_full(
    case: tuple[ProofLayout, list[tuple[int, int]]],
) -> None:
    layout, events = case
    per_bin = Counter(
        (rule_id, window % layout.of(rule_id).bins)  # type: ignore[union-attr]
        for rule_id, window in events
    )
    fits = all(n <= layout.of(rule_id).full for (rule_id, _), n in per_bin.items())  # type: ignore[union-attr]
    totals = words_of(layout, events)
    assert layout.proven(totals, tally=len(events)) == fits
    # And so a cleared lead never has a window over full: a window is inside one bin.
    if fits:
        per_window = Counter(events)
        assert all(n <= layout.of(rule_id).full for (rule_id, _), n in per_window.items())  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(cases())
def test_sql_proof_is_the_python_proof(case: tuple[ProofLayout, list[tuple[int, int]]]) -> None:
    layout, events = case
    totals = words_of(layout, events)
    columns = [f"CAST('{total}' AS HUGEINT)" for total in totals]
    got = (
        duckdb.connect()
        .execute(f"SELECT {layout.proven_sql(columns, 'CAST(? AS HUGEINT)')}", [len(events)])
        .fetchone()
    )
    assert got is not None
    assert got[0] == layout.proven(totals, len(events))


def test_busy_rules_get_more_bins() -> None:
    layout = ProofLayout.plan(
        [
            LimitedRule(0, full=5, windowed=True, weight=100.0),
            LimitedRule(1, full=3, windowed=True, weight=1.0),
            LimitedRule(2, full=1, windowed=False, weight=50.0),
        ]
    )
    busy, quiet, lifetime = (layout.of(i) for i in range(3))
    assert busy is not None and quiet is not None and lifetime is not None
    assert busy.bins > quiet.bins
    assert lifetime.bins == 1  # one window for the lead's whole life: more bins are waste
