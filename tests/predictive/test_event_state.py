"""Event features carried from write to write (:mod:`pyrometer.predictive.event_state`)
must be the features of the lead's whole history counted afresh
(:func:`pyrometer.predictive.event_features.compute`), whatever the clock and the events
do between writes: events late, on a window's edge or in the future, the clock still or
jumping over every window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.predictive import event_features
from pyrometer.predictive.event_state import (
    CHUNK_OVERHEAD,
    DAY_US,
    NEVER,
    EventCounter,
    States,
)

TYPES = ["page_view", "email_open", "demo_request"]
NAMES = [*TYPES, "not_a_column"]
WINDOWS = [7, 30, 90]
HALF_LIFE = 30.0
T0 = 1_780_000_000_000_000  # 2026-05-28

CONFIG = event_features.EventConfig(
    id_column="lead_id", name_column="event", time_column="ts", types=TYPES,
    windows_days=WINDOWS, half_life_days=HALF_LIFE,
)  # fmt: skip


def _afresh(histories: list[list[tuple[int, int]]], now_us: int) -> np.ndarray:
    """The features of each lead's whole history as of ``now_us``, counted by the
    definition (events as ``(name index, ts_us)``)."""
    rows = [(f"l{i}", NAMES[k], ts) for i, h in enumerate(histories) for k, ts in h]
    log = pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "event": [r[1] for r in rows],
            "ts": pd.to_datetime([r[2] for r in rows], unit="us", utc=True),
        }
    )
    ids = pd.Series([f"l{i}" for i in range(len(histories))], dtype=object)
    times = pd.Series([pd.Timestamp(now_us, unit="us", tz="UTC")] * len(histories))
    return event_features.compute(CONFIG, log, ids, times).to_numpy()


def _coded(events: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    kinds = [k if k < len(TYPES) else -1 for k, _ in events]
    return np.array(kinds, dtype=np.int32), np.array([t for _, t in events], dtype=np.int64)


def _same(carried: np.ndarray, afresh: np.ndarray) -> None:
    """Counts and the youngest age exactly; the decayed sum to within rounding."""
    assert carried.shape == afresh.shape
    np.testing.assert_array_equal(carried[:, :-1], afresh[:, :-1])
    np.testing.assert_allclose(carried[:, -1], afresh[:, -1], rtol=1e-12, atol=1e-300)


# An offset from now: on a window's edge (a microsecond either side), late by up to
# 200 days, or in the future.
_edges = [w * DAY_US + d for w in (*WINDOWS, 30) for d in (-1, 0, 1)]
offsets = st.one_of(
    st.sampled_from([0, 1, *_edges]),
    st.integers(min_value=-3 * DAY_US, max_value=200 * DAY_US),
)
writes = st.lists(
    st.tuples(
        # How far the clock moves first: not at all, a little, onto an edge, over all.
        st.one_of(
            st.just(0),
            st.integers(min_value=0, max_value=2 * DAY_US),
            st.sampled_from(_edges),
            st.integers(min_value=0, max_value=400 * DAY_US),
        ),
        st.lists(st.tuples(st.integers(0, len(NAMES) - 1), offsets), max_size=6),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(writes, min_size=1, max_size=4))
def test_carried_features_are_the_whole_history_counted_afresh(
    leads: list[list[tuple[int, list[tuple[int, int]]]]],
) -> None:
    """Several leads written together, each write with the same clock for all (as a
    write transaction has), as many writes as the longest lead has; a lead without a
    write at a step gets no events then."""
    counter = EventCounter(len(TYPES), WINDOWS, HALF_LIFE)
    now = T0
    histories: list[list[tuple[int, int]]] = [[] for _ in leads]
    states: States | None = None
    for step in range(max(len(w) for w in leads)):
        now += max((w[step][0] for w in leads if step < len(w)), default=0)
        added = [
            [(k, now - offset) for k, offset in w[step][1]] if step < len(w) else [] for w in leads
        ]
        for history, new in zip(histories, added, strict=True):
            history.extend(new)
        if states is None:
            coded = [_coded(h) for h in histories]
            found, states = counter.start(
                [len(h) for h in histories],
                np.concatenate([k for k, _ in coded]),
                np.concatenate([t for _, t in coded]),
                now,
            )
        else:
            found, states = counter.advance(states, [_coded(a) for a in added], now)
        _same(found, _afresh(histories, now))
        for i, history in enumerate(histories):
            # Only the live events are kept: none older than the longest window.
            chunks = states.chunks[i]
            held = np.concatenate([t for _, t in chunks]) if chunks else []
            assert all(now - t <= 90 * DAY_US for t in held)
            assert sorted(held) == sorted(t for _, t in history if now - t <= 90 * DAY_US)
            assert states.at[i] == now and (states.until[i] > now or states.until[i] == NEVER)
            # What the cache's bound counts is what the state holds.
            in_chunks = sum(k.nbytes + t.nbytes + CHUNK_OVERHEAD for k, t in chunks)
            assert states.nbytes[i] == states.features[i].nbytes + in_chunks
        # A subset of the leads, in another order, carries on as well.
        if len(histories) > 1:
            order = list(range(len(histories)))[::-1]
            found, _ = counter.advance(states.take(order), [_coded([])] * len(order), now)
            _same(found, _afresh([histories[i] for i in order], now))


def test_a_quiet_lead_is_not_counted_again_until_an_event_leaves_a_window() -> None:
    """The point of carrying: the next write before an edge touches only its new
    events (the held ones are not even joined); the first write past it counts again."""
    counter = EventCounter(len(TYPES), WINDOWS, HALF_LIFE)
    events = [(0, T0 - 3 * DAY_US), (1, T0 - 10 * DAY_US)]
    _, state = counter.start([2], *_coded(events), T0)
    assert state.until[0] == T0 - 3 * DAY_US + 7 * DAY_US + 1  # page_view leaves 7d
    later = T0 + DAY_US
    found, carried = counter.advance(state, [_coded([(2, later)])], later)
    assert len(carried.chunks[0]) == 2  # the held chunk and the new one, not joined
    _same(found, _afresh([[*events, (2, later)]], later))
    past = int(state.until[0])
    found, recounted = counter.advance(carried, [_coded([])], past)
    assert len(recounted.chunks[0]) == 1
    assert found[0, 0] == 0  # page_view in 7d: it left
    _same(found, _afresh([[*events, (2, later)]], past))


def test_a_clock_before_the_state_is_refused() -> None:
    counter = EventCounter(len(TYPES), WINDOWS, HALF_LIFE)
    _, states = counter.start([1], *_coded([(0, T0 - DAY_US)]), T0)
    with pytest.raises(ValueError, match="later moment"):
        counter.advance(states, [_coded([])], T0 - 1)


def test_windows_must_be_whole_days() -> None:
    with pytest.raises(ValueError, match="whole days"):
        EventCounter(2, [7, 1.5], HALF_LIFE)
