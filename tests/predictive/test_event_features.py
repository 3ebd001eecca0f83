"""Point-in-time features: nothing after a lead's decision time may reach its features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.predictive import event_features
from pyrometer.predictive.loading import DataError
from pyrometer.predictive.pipeline import prepare

from .conftest import make_history

T0 = pd.Timestamp("2024-03-01")


def _log(rows: list[tuple[str, str, pd.Timestamp]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "event": [r[1] for r in rows],
            "timestamp": [r[2].isoformat() for r in rows],
        },
        dtype=object,
    )


def test_counts_recency_and_decay_as_of_decision_time() -> None:
    log = _log(
        [
            ("a", "Page View", T0 - pd.Timedelta(days=1)),
            ("a", "page_view", T0 - pd.Timedelta(days=10)),
            ("a", "demo request", T0 - pd.Timedelta(days=60)),
            ("a", "page_view", T0 + pd.Timedelta(days=1)),  # after: ignored
            ("b", "page_view", T0 - pd.Timedelta(days=40)),
        ]
    )
    config = event_features.configure(log, "events", "Lead ID")
    leads = pd.Series(["a", "b", "c"], dtype=object)
    times = pd.Series([T0.isoformat()] * 3, dtype=object)
    f = event_features.compute(config, log, leads, times).set_index(leads)
    p = event_features.PREFIX
    assert f.loc["a", f"{p}page_view in 7d"] == 1
    assert f.loc["a", f"{p}page_view in 30d"] == 2
    assert f.loc["a", f"{p}demo_request in 90d"] == 1
    assert f.loc["a", f"{p}days since last"] == 1
    assert np.isclose(
        f.loc["a", f"{p}decayed engagement"], 2 ** (-1 / 30) + 2 ** (-10 / 30) + 2 ** (-60 / 30)
    )
    assert f.loc["b", f"{p}page_view in 30d"] == 0 and f.loc["b", f"{p}page_view in 90d"] == 1
    assert f.loc["c", f"{p}total in 30d"] == 0
    assert np.isnan(f.loc["c", f"{p}days since last"])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"), st.sampled_from(["open", "click"]), st.integers(-100, 100)
        ),
        max_size=30,
    ),
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(["open", "click"]), st.integers(1, 100)),
        min_size=1,
        max_size=10,
    ),
)
def test_events_after_the_decision_change_nothing(
    before: list[tuple[str, str, int]], after: list[tuple[str, str, int]]
) -> None:
    decision = {"a": T0, "b": T0 + pd.Timedelta(days=5), "c": T0 - pd.Timedelta(days=5)}
    past = [(lead, name, decision[lead] - pd.Timedelta(days=abs(d))) for lead, name, d in before]
    future = [(lead, name, decision[lead] + pd.Timedelta(hours=d)) for lead, name, d in after]
    config = event_features.configure(_log(past + future + [("a", "open", T0)]), "e", None)
    config.types = ["open", "click"]
    leads = pd.Series(list("abc"), dtype=object)
    times = pd.Series([decision[k].isoformat() for k in "abc"], dtype=object)
    only_past = event_features.compute(config, _log(past), leads, times)
    with_future = event_features.compute(config, _log(past + future), leads, times)
    pd.testing.assert_frame_equal(only_past, with_future)


def test_training_with_events_uses_them(tmp_path: Path) -> None:
    history = make_history(300)
    rng = np.random.default_rng(1)
    won = history["Converted"] == "Won"
    rows = []
    for lead, created, w in zip(history["Lead ID"], history["Created"], won, strict=True):
        start = pd.Timestamp(created)
        for _ in range(int(rng.poisson(4 if w else 1))):  # engaged leads convert more
            rows.append((lead, "pricing_view", start - pd.Timedelta(days=int(rng.integers(0, 20)))))
        rows.append((lead, "pricing_view", start + pd.Timedelta(days=3)))  # after: ignored
    _log(rows).to_csv(tmp_path / "events.csv", index=False)
    history.to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID", events=tmp_path / "events.csv")
    assert prepared.schema.time_column == "Created"
    name = f"{event_features.PREFIX}pricing_view in 30d"
    assert name in prepared.schema.columns
    counts = prepared.X[name].to_numpy()
    assert counts[won.to_numpy()].mean() > counts[~won.to_numpy()].mean() + 1


def test_lead_ids_join_in_their_normal_form() -> None:
    """Events and leads spelled differently (white space, composed or not) are one lead."""
    log = _log(
        [
            (" Jose\u0301", "page_view", T0 - pd.Timedelta(days=1)),
            ("Jos\u00e9\t", "page_view", T0 - pd.Timedelta(days=2)),
            ("   ", "page_view", T0 - pd.Timedelta(days=2)),  # no lead: joins nothing
        ]
    )
    config = event_features.configure(log, "events", None)
    leads = pd.Series(["Jos\u00e9 ", " "], dtype=object)
    times = pd.Series([T0.isoformat()] * 2, dtype=object)
    f = event_features.compute(config, log, leads, times)
    p = event_features.PREFIX
    assert f[f"{p}page_view in 7d"].tolist() == [2, 0]


def test_an_event_time_outside_the_accepted_range_names_row_and_column() -> None:
    """The same range of times as every other input (pyrometer.core.timeutil)."""
    log = _log(
        [
            ("a", "page_view", T0 - pd.Timedelta(days=1)),
            ("a", "page_view", pd.Timestamp("1850-06-01")),  # pandas reads it; we do not
        ]
    )
    config = event_features.configure(log, "events", None)
    leads = pd.Series(["a"], dtype=object)
    times = pd.Series([T0.isoformat()], dtype=object)
    with pytest.raises(DataError, match=r"events: row 2, column 'timestamp': .*1900-01-01"):
        event_features.compute(config, log, leads, times)
