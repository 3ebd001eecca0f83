from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrometer.predictive.pipeline import prepare

from .conftest import make_history


def _leaky_history(tmp_path: Path) -> Path:
    frame = make_history(500)
    won = frame["Converted"] == "Won"
    rng = np.random.default_rng(0)
    # Written by sales after the outcome: a verdict that mirrors it, mostly.
    frame["Sales Verdict"] = np.where(won ^ (rng.random(len(frame)) < 0.03), "good", "bad")
    # Filled in only once a deal closed.
    frame["Contract Size"] = np.where(won, rng.integers(1, 100, len(frame)).astype(str), "")
    path = tmp_path / "leaky.csv"
    frame.to_csv(path, index=False)
    return path


def test_leaky_columns_are_named_with_a_reason(tmp_path: Path) -> None:
    prepared = prepare(_leaky_history(tmp_path), "Converted", "Lead ID")
    leaks = {leak.column: leak for leak in prepared.leaks}
    assert "on its own" in leaks["Sales Verdict"].message()
    assert "filled in for 100% of converted leads but 0%" in leaks["Contract Size"].message()
    assert "Visits" not in leaks and "Noise" not in leaks and "Source" not in leaks


def test_drop_leaky_removes_them(tmp_path: Path) -> None:
    prepared = prepare(_leaky_history(tmp_path), "Converted", "Lead ID", drop_leaky=True)
    assert "Sales Verdict" not in prepared.schema.columns
    assert "Contract Size" not in prepared.schema.columns
    assert "Visits" in prepared.schema.columns
    assert "leak" in prepared.schema.dropped["Sales Verdict"]


def test_dates_after_the_decision_time_are_flagged(tmp_path: Path) -> None:
    frame = make_history(300)
    created = frame["Created"].map(lambda d: np.datetime64(d))
    rng = np.random.default_rng(2)
    # Recorded when the deal was settled, weeks after the lead came in.
    settled = created + rng.integers(5, 60, len(frame)).astype("timedelta64[D]")
    frame["Settled On"] = [str(d)[:10] for d in settled]
    frame.to_csv(tmp_path / "h.csv", index=False)
    prepared = prepare(tmp_path / "h.csv", "Converted", "Lead ID", time_column="Created")
    leaks = {leak.column: leak.message() for leak in prepared.leaks}
    assert "fall after the decision time" in leaks["Settled On"]
    assert "Created" not in leaks


def test_a_column_carrying_most_of_the_signal_is_reported_whatever_its_name() -> None:
    """A figure known only after the sales call, always filled, innocently named: the
    name and fill signs miss it; its share of the model's contributions does not."""
    import numpy as np
    import pandas as pd

    from pyrometer.predictive.features import learn_schema
    from pyrometer.predictive.leakage import dominant_column, find_leaks, per_column
    from pyrometer.predictive.models import LightGBMModel

    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(n) < 0.25).astype(int)
    frame = pd.DataFrame(
        {
            "minutes": np.round(rng.normal(0, 1, n) + 1.2 * y, 2),  # written after the call
            "employees": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "visits": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "won": y,
        }
    ).astype(object)
    schema, cleaned = learn_schema(frame, "won", None, [])
    assert find_leaks(schema, cleaned, y) == []  # the older signs see nothing
    X = schema.design(cleaned)
    model = LightGBMModel(0).fit(X, y)
    names, by_column = per_column(schema, model.contributions(X))
    leak = dominant_column(names, by_column)
    assert leak is not None and leak.column == "minutes"
    assert "of the model's signal" in leak.message() and "next column" in leak.message()
    # Without it no column stands out: two of similar weight share the signal.
    schema.features = [f for f in schema.features if f.name != "minutes"]
    X = schema.design(cleaned)
    names, by_column = per_column(schema, LightGBMModel(0).fit(X, y).contributions(X))
    assert dominant_column(names, by_column) is None
